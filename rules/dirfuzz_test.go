package rules

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzDirectoryFiles: no users file or Google export may panic the loader;
// every problem names its file, and what loads resolves without panicking.
func FuzzDirectoryFiles(f *testing.F) {
	cases, _ := filepath.Glob(filepath.Join(testdataDir, "google", "*.csv"))
	cases = append(cases, filepath.Join(testdataDir, "users-aliases.txt"), filepath.Join(testdataDir, "users-dup.txt"))
	for _, c := range cases {
		data, err := os.ReadFile(c)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	const config = `[organization]
domains = ["example.com"]
domain_aliases = { "example.net" = "example.com" }
[directory]
recipient_delimiter = "+-"
users_files = ["u.txt"]
google_exports = ["g.csv"]
`
	f.Fuzz(func(t *testing.T, data []byte) {
		rs, err := Load("f.toml", []byte(config), mapFiles{"u.txt": string(data), "g.csv": string(data)})
		if err != nil {
			for _, e := range err.(Errors) {
				if e.File == "" || e.Msg == "" {
					t.Fatalf("problem without file or message: %#v", e)
				}
			}
			return
		}
		d := rs.Directory()
		for _, l := range []string{"alice", "alice+x", "Al-b", ""} {
			d.Resolve(l, "example.com")
			d.Resolve(l, "example.net")
		}
		d.Member("sales@example.com", "alice@example.com")
		_ = rs.Summary()
	})
}
