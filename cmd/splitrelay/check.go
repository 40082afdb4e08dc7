package main

import (
	"fmt"
	"io"
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
	return 0
}
