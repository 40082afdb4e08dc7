package postfix

import (
	"bufio"
	"fmt"
	"io"
	"strings"
)

// WriteText writes c for a human to read and copy: the main.cf settings,
// the master.cf entries and the content of every map file, with comments.
func (c *Config) WriteText(w io.Writer) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "# Postfix configuration for splitrelay, generated from %s.\n", c.Source)
	comment(bw, "", "Merge the main.cf settings into main.cf, keeping your own list elements (postconf -e), add the master.cf entries to master.cf (postconf -M), install the map files, then run \"postfix reload\". "+
		"The --format postconf script does all this, records what it added and backs up main.cf and master.cf first; "+
		"--format diff shows what it would change; --detach takes it all away again.")

	fmt.Fprintf(bw, "\n# ---- main.cf ----\n")
	for _, s := range c.Main {
		comment(bw, "", s.Comment+mergeHint(s.Merge))
		if s.When != "" {
			fmt.Fprintf(bw, "#%s = ..., %s\n", s.Name, s.Value)
			continue
		}
		fmt.Fprintf(bw, "%s = %s\n", s.Name, s.Value)
	}
	fmt.Fprintln(bw, "#")
	for _, n := range c.Notes {
		comment(bw, "", n)
	}

	fmt.Fprintf(bw, "\n# ---- master.cf ----\n")
	for i, s := range c.Master {
		if i > 0 {
			fmt.Fprintln(bw)
		}
		for _, n := range s.Comments {
			comment(bw, "", n)
		}
		fmt.Fprintf(bw, "%-10s %-5s %-7s %-7s %-7s %-7s %-7s %s\n",
			s.Name, s.Type, s.Private, s.Unpriv, s.Chroot, s.Wakeup, s.Maxproc, s.Command)
		for _, p := range s.Params {
			fmt.Fprintf(bw, "  -o %s=%s\n", p.Name, p.Value)
		}
	}

	for _, m := range c.Maps {
		fmt.Fprintf(bw, "\n# ---- %s ----\n", m.Path)
		bw.WriteString(m.Content)
	}
	return bw.Flush()
}

// mergeHint says how a setting combines with an existing value.
func mergeHint(m Merge) string {
	switch m {
	case Append:
		return " (append to the current value)"
	case Prepend:
		return " (insert before the current value)"
	}
	return " (replaces your value: the postconf script prints the old one, --detach restores it)"
}

// comment writes text as "# " lines of at most 78 columns; indent goes
// before the "#".
func comment(w io.Writer, indent, text string) {
	line := ""
	for _, word := range strings.Fields(text) {
		if line != "" && len(indent)+2+len(line)+1+len(word) > 78 {
			fmt.Fprintf(w, "%s# %s\n", indent, line)
			line = ""
		}
		if line != "" {
			line += " "
		}
		line += word
	}
	if line != "" {
		fmt.Fprintf(w, "%s# %s\n", indent, line)
	}
}

// WriteDetachText says, for a human, what --detach --format postconf does.
func (c *Config) WriteDetachText(w io.Writer) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "# Removing splitrelay from Postfix (generated from %s).\n", c.Source)
	comment(bw, "", "Run the script of \"splitrelay postfix --detach --format postconf\" (with the same --postfix-config-dir and --map-dir as when attaching), "+
		"then \"postfix reload\"; \"--detach --format diff\" shows what it changes. It copies main.cf and master.cf first, then:")
	fmt.Fprintf(bw, "\n# ---- main.cf and master.cf, unchanged since attaching ----\n")
	comment(bw, "", "A file that nobody but splitrelay changed since attaching (its SHA-256 is still the one recorded in "+c.Record()+
		" when the postconf script last ran) gets back its copy from before the first attach, "+
		"FILE.splitrelay-YYYYmmddHHMMSS in the Postfix configuration directory, byte for byte (cp -p: owner and mode too). "+
		"A file changed since, or whose copy is missing or changed, or one that sha256sum (GNU coreutils) cannot check, is worked on with postconf instead, as below.")
	fmt.Fprintf(bw, "\n# ---- main.cf, changed since attaching ----\n")
	comment(bw, "", "Everything recorded in "+c.Record()+" is taken away with postconf, and the script warns that main.cf is not restored and names the copy: "+
		"each element we added to a list, each value we set. "+
		"A parameter gets back the value it had before splitrelay first touched it, or leaves main.cf again if it was not there; "+
		"one that you changed since keeps your change, without our elements. "+
		"postconf writes each parameter it changes on one line: a value you spread over several lines comes back joined (same meaning, "+
		"comment lines inside it stay below it), and a parameter you set twice gets its last value in both places. With this configuration these are:")
	for _, s := range c.Main {
		switch s.Merge {
		case Replace:
			fmt.Fprintf(bw, "#   %s: back to its value from before splitrelay set it to %q\n", s.Name, s.Value)
		default:
			fmt.Fprintf(bw, "#   %s: without %s\n", s.Name, s.Value)
		}
	}
	fmt.Fprintf(bw, "\n# ---- master.cf, changed since attaching ----\n")
	comment(bw, "", "Every service whose name starts with "+ServicePrefix+" is removed (postconf -MX), with the same warning.")
	fmt.Fprintf(bw, "\n# ---- %s ----\n", c.MapDir)
	comment(bw, "", "The record and the map files are deleted, and the directory if it is then empty.")
	comment(bw, "", "Until Postfix is reloaded without smtpd_milters naming splitrelay, stopping the daemon tempfails all mail (milter default_action=tempfail): detach first, then remove the package.")
	return bw.Flush()
}
