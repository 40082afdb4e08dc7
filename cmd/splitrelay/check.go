package main

import (
	"fmt"
	"io"

	"github.com/splitrelay/splitrelay/milter/sendmail"
)

// cmdCheck is `splitrelay check -c FILE`: exit 0 and the ruleset's
// summary, or exit 1 and every problem, FILE:LINE:COL: path: message, on
// stderr.
func cmdCheck(args []string, stdout, stderr io.Writer) int {
	fs, config := newFlags("check", "-c FILE", "", stdout, stderr)
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	rs, err := loadConfig(*config)
	if err != nil {
		printLoadError(stderr, err)
		return 1
	}
	fmt.Fprintln(stdout, rs.Summary())
	// What Sendmail cannot express: warnings on stderr, not errors
	// (Postfix sites can ignore them; the milter enforces everything
	// either way). stdout stays the one-paragraph summary.
	if c, err := sendmail.Generate(rs); err == nil {
		for _, u := range c.Unsupported {
			fmt.Fprintf(stderr, "warning: with Sendmail: %s\n", u)
		}
	}
	return 0
}
