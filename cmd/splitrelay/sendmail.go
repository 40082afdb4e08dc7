package main

import (
	"fmt"
	"io"
	"slices"

	"github.com/splitrelay/splitrelay/milter/sendmail"
)

// init registers the command after main.go's init made the table (files
// initialise in name order), listed after postfix in the overview.
func init() {
	commands["sendmail"] = command{cmdSendmail, "sendmail -c FILE [--format text|mc]\n                              print the Sendmail side of a configuration (sendmail.mc additions)"}
	i := slices.Index(commandOrder, "postfix") + 1
	commandOrder = slices.Insert(commandOrder, i, "sendmail")
}

const sendmailFlags = `  --format text|mc      text (default): how to apply it, what Sendmail cannot express for this
                        configuration, the sendmail.mc block and access database entries;
                        mc: only the m4 block to append to sendmail.mc
`

// cmdSendmail is `splitrelay sendmail -c FILE [--format text|mc]`.
func cmdSendmail(args []string, stdout, stderr io.Writer) int {
	fs, config := newFlags("sendmail", "-c FILE [--format text|mc]", sendmailFlags, stdout, stderr)
	format := fs.String("format", "text", "")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if *format != "text" && *format != "mc" {
		return usageError(fs, "--format %q: want text or mc", *format)
	}
	rs, err := loadConfig(*config)
	if err != nil {
		printLoadError(stderr, err)
		return 1
	}
	c, err := sendmail.Generate(rs)
	if err != nil {
		fmt.Fprintf(stderr, "splitrelay sendmail: %v\n", err)
		return 1
	}
	if *format == "mc" {
		err = c.WriteMC(stdout)
	} else {
		err = c.WriteText(stdout)
	}
	if err != nil {
		fmt.Fprintf(stderr, "splitrelay sendmail: %v\n", err)
		return 1
	}
	return 0
}
