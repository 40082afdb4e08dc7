package sendmail

import (
	"bufio"
	"fmt"
	"io"
	"strings"
)

// WriteMC writes the sendmail.mc additions: m4 to append at the end of
// sendmail.mc. What Sendmail cannot express comes first, as dnl comments
// that m4 drops. Every line that reaches sendmail.cf is m4-quoted.
func (c *Config) WriteMC(w io.Writer) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "dnl # ---- splitrelay: generated from %s by splitrelay sendmail; append to sendmail.mc ----\n", oneLine(c.Source))
	if len(c.Unsupported) > 0 {
		fmt.Fprintln(bw, "dnl # What this configuration needs that Sendmail cannot express:")
		for _, u := range c.Unsupported {
			comment(bw, "dnl #   - ", "dnl #     ", u)
		}
	}
	fmt.Fprintln(bw, "dnl #")
	comment(bw, "dnl # ", "dnl # ", "The milter; F=T: when splitrelay cannot be reached, clients get a 4xx and keep their mail (never accepted unrouted).")
	fmt.Fprintf(bw, "INPUT_MAIL_FILTER(`%s', `S=%s, F=T, T=%s')dnl\n", FilterName, c.Milter, FilterTimeouts)

	comment(bw, "dnl # ", "dnl # ", "The macros splitrelay reads, added to your Milter.macros lists when missing (Sendmail ignores the list a milter asks for).")
	fmt.Fprintln(bw, "define(`SPLITRELAY_MACRO', `ifdef(`$1', `ifelse(defn(`$1'), `', `define(`$1', `$2')', `ifelse(regexp(defn(`$1'), `\\(^\\|[^a-zA-Z0-9_{}]\\)$2\\([^a-zA-Z0-9_{}]\\|$\\)'), `-1', `define(`$1', defn(`$1')`, $2')')')', `define(`$1', `$2')')')dnl")
	for _, m := range c.Macros {
		fmt.Fprintf(bw, "SPLITRELAY_MACRO(`%s', `%s')dnl\n", m.List, m.Name)
	}
	fmt.Fprintln(bw, "undefine(`SPLITRELAY_MACRO')dnl")

	if len(c.Relay) > 0 {
		comment(bw, "dnl # ", "dnl # ", "The [relay] policy, as far as Sendmail can express it (splitrelay enforces all of it).")
		for _, l := range c.Relay {
			fmt.Fprintln(bw, l)
		}
	}

	fmt.Fprintln(bw, "LOCAL_CONFIG")
	fmt.Fprintln(bw, quote("# splitrelay: host labels of balanced routes, the deferral program, and the routing namespace as a pseudo-domain (no DNS lookups)"))
	fmt.Fprintln(bw, quote("K"+LabelMap+" regex -a@LABEL ^p[0-9]+(s[0-9]+)?$"))
	fmt.Fprintln(bw, quote("D{SplitrelayDefer}exit 75"))
	fmt.Fprintln(bw, quote("CP"+c.Suffix))

	fmt.Fprintln(bw, "MAILER_DEFINITIONS")
	for _, m := range c.Mailers {
		fmt.Fprintln(bw, quote("# "+m.Comment))
		fmt.Fprintln(bw, quote(m.Line()))
	}
	fmt.Fprintln(bw, quote("# routed addresses whose route Sendmail does not know: exit 75 (EX_TEMPFAIL) keeps them queued"))
	fmt.Fprintln(bw, quote("M"+DeferMailer+",\tP=/bin/sh, F=lsDFMq, T=DNS/RFC822/X-Unix, A=sh -c ${SplitrelayDefer} $u"))

	fmt.Fprintln(bw, "LOCAL_RULE_0")
	for _, r := range c.Rules {
		if r.Comment != "" {
			fmt.Fprintln(bw, quote("# splitrelay: "+r.Comment))
		}
		fmt.Fprintln(bw, quote(r.Line()))
	}

	fmt.Fprintln(bw, "LOCAL_RULESETS")
	ns := tokens(c.Suffix)
	reply := fmt.Sprintf("$#error $@ %s $: \"%d %s\"", NamespaceReply.Enhanced, NamespaceReply.Code, NamespaceReply.Text)
	for _, l := range []string{
		"# splitrelay: clients may never address the routing namespace themselves",
		"SLocal_check_rcpt",
		"R$*\t$: $1 $| $>SplitrelayRcpt $1",
		"R$* $| $#$*\t$#$2",
		"R$* $| $*\t$: $1",
		"SSplitrelayRcpt",
		"R$*\t$: $>canonify $1",
		"R$* < @ " + ns + " . > $*\t" + reply,
		"R$* < @ " + ns + " > $*\t" + reply,
		"R$* < @ $+ . " + ns + " . > $*\t" + reply,
		"R$* < @ $+ . " + ns + " > $*\t" + reply,
	} {
		fmt.Fprintln(bw, quote(l))
	}
	fmt.Fprintln(bw, "divert(0)dnl")
	fmt.Fprintln(bw, "dnl # ---- end of splitrelay ----")
	return bw.Flush()
}

// WriteText writes c for a human: how to apply it, what Sendmail cannot
// express, the sendmail.mc block and the access database entries.
func (c *Config) WriteText(w io.Writer) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "# Sendmail configuration for splitrelay, generated from %s.\n", c.Source)
	comment(bw, "# ", "# ", "Append the sendmail.mc block below to the end of /etc/mail/sendmail.mc "+
		"(splitrelay sendmail -c FILE --format mc >> /etc/mail/sendmail.mc prints it alone), add the access entries, "+
		"rebuild sendmail.cf and the access database (make -C /etc/mail) and restart sendmail.")
	fmt.Fprintln(bw, "#")
	if len(c.Unsupported) == 0 {
		fmt.Fprintln(bw, "# Sendmail can express everything this configuration needs.")
	} else {
		fmt.Fprintln(bw, "# What this configuration needs that Sendmail CANNOT express:")
		for _, u := range c.Unsupported {
			comment(bw, "#   - ", "#     ", u)
		}
	}
	if len(c.Notes) > 0 {
		fmt.Fprintln(bw, "#")
		for _, n := range c.Notes {
			comment(bw, "# ", "# ", n)
		}
	}
	fmt.Fprintln(bw, "\n# ---- sendmail.mc ----")
	if err := bw.Flush(); err != nil {
		return err
	}
	if err := c.WriteMC(bw); err != nil {
		return err
	}
	if len(c.Access) > 0 {
		fmt.Fprintln(bw, "\n# ---- /etc/mail/access (then make -C /etc/mail) ----")
		for _, a := range c.Access {
			fmt.Fprintln(bw, a)
		}
	}
	return bw.Flush()
}

// quote m4-quotes one line of configuration text, so that m4 copies it as
// it is: words such as dnl, include or define in it are not expanded.
// Generated text never holds m4's quote characters (route names are DNS
// labels, descriptions pass through oneLine).
func quote(s string) string { return "`" + s + "'" }

// comment writes text as lines of at most 78 columns, the first starting
// with first and the others with next.
func comment(w io.Writer, first, next, text string) {
	line, prefix := "", first
	for _, word := range strings.Fields(text) {
		if line != "" && len(prefix)+len(line)+1+len(word) > 78 {
			fmt.Fprintf(w, "%s%s\n", prefix, line)
			line, prefix = "", next
		}
		if line != "" {
			line += " "
		}
		line += word
	}
	if line != "" {
		fmt.Fprintf(w, "%s%s\n", prefix, line)
	}
}
