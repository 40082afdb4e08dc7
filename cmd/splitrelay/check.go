package main

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/splitrelay/splitrelay/milter/postfix"
	"github.com/splitrelay/splitrelay/milter/sendmail"
	"github.com/splitrelay/splitrelay/rules"
)

const checkFlags = `  --postfix-config-dir DIR
                        also look at the Postfix configuration in DIR and warn about what would
                        bypass splitrelay (a master.cf service with its own -o smtpd_milters=) or
                        capture routed mail (virtual_alias_maps, recipient_canonical_maps entries
                        matching the routing namespace); warnings do not change the exit status
`

// cmdCheck is `splitrelay check -c FILE [--postfix-config-dir DIR]`: exit
// 0 and the ruleset's summary, or exit 1 and every problem,
// FILE:LINE:COL: path: message, on stderr. Warnings (what Sendmail cannot
// express; with --postfix-config-dir, what in that Postfix configuration
// bypasses splitrelay or captures routed mail) go to stderr too.
func cmdCheck(args []string, stdout, stderr io.Writer) int {
	fs, config := newFlags("check", "-c FILE [--postfix-config-dir DIR]", checkFlags, stdout, stderr)
	configDir := fs.String("postfix-config-dir", "", "")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	rs, err := loadConfig(*config)
	if err != nil {
		printLoadError(stderr, err)
		return 1
	}
	printWarnings(stderr, rs)
	fmt.Fprintln(stdout, rs.Summary())
	// What Sendmail cannot express: warnings on stderr, not errors
	// (Postfix sites can ignore them; the milter enforces everything
	// either way). stdout stays the one-paragraph summary.
	if c, err := sendmail.Generate(rs); err == nil {
		for _, u := range c.Unsupported {
			fmt.Fprintf(stderr, "warning: with Sendmail: %s\n", u)
		}
	}
	if *configDir != "" {
		if err := postfixWarnings(rs, *configDir, stderr); err != nil {
			fmt.Fprintf(stderr, "splitrelay check: %v\n", err)
			return 1
		}
	}
	return 0
}

// postfixWarnings runs the postconf script's warnings on the Postfix
// configuration in dir and prints them, "warning: …".
func postfixWarnings(rs *rules.Ruleset, dir string, w io.Writer) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	c, err := postfix.Generate(rs, postfix.Options{ConfigDir: abs, MapDir: filepath.Join(abs, "splitrelay")})
	if err != nil {
		return err
	}
	var script strings.Builder
	if err := c.WriteWarnings(&script); err != nil {
		return err
	}
	sh := exec.Command("sh", "-c", script.String())
	sh.Env = append(os.Environ(), "PATH="+os.Getenv("PATH")+":/usr/sbin:/sbin", "MAIL_CONFIG="+abs)
	out, err := sh.CombinedOutput()
	if err != nil {
		return fmt.Errorf("look at %s: %v\n%s", abs, err, out)
	}
	for l := range strings.Lines(string(out)) {
		if wl, ok := strings.CutPrefix(l, "# WARNING: "); ok {
			fmt.Fprint(w, "warning: with Postfix: "+wl)
		}
	}
	return nil
}

// printWarnings prints what loaded but deserves a look (duplicates, group
// cycles, alias collisions, rules that can never apply), one per line,
// FILE:LINE:COL: path: warning: message.
func printWarnings(w io.Writer, rs *rules.Ruleset) {
	for _, e := range rs.Warnings() {
		c := *e
		c.Msg = "warning: " + c.Msg
		fmt.Fprintln(w, c.Error())
	}
}
