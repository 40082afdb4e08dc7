package rules_test

import (
	"fmt"

	"github.com/splitrelay/splitrelay/rules"
)

// A subaddress, an alias and an alias domain all reach alice's account;
// a directory from a sync is overlaid without rebuilding the rules.
func ExampleDirectory_Resolve() {
	rs, err := rules.Load("splitrelay.toml", []byte(`
[organization]
domains = ["example.com"]
domain_aliases = { "example.net" = "example.com" }
[directory]
users = ["alice@example.com"]
[directory.aliases]
"al@example.com" = "alice@example.com"
`), nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	synced, _ := rules.BuildDirectory(&rules.Entries{Users: []string{"bob@example.com"}})
	rs = rs.WithDirectory(rs.Directory().Overlay(synced))
	for _, local := range []string{"alice+news", "Al", "bob", "carol"} {
		account, canonical := rs.Directory().Resolve(local, "example.net")
		fmt.Println(local+"@example.net:", account, canonical)
	}
	// Output:
	// alice+news@example.net: user alice@example.com
	// Al@example.net: user alice@example.com
	// bob@example.net: user bob@example.com
	// carol@example.net: unrecognized
}
