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
	comment(bw, "", "Merge the main.cf settings into main.cf (postconf -e), add the master.cf entries to master.cf (postconf -M), install the map files, then run \"postfix reload\".")

	fmt.Fprintf(bw, "\n# ---- main.cf ----\n")
	for _, s := range c.Main {
		comment(bw, "", s.Comment+mergeHint(s.Merge))
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
	return ""
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
