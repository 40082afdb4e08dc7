package main

import (
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/netip"
	"strings"

	"github.com/splitrelay/splitrelay/milter/postfix"
	"github.com/splitrelay/splitrelay/rules"
)

const explainFlags = `  --from ADDR           envelope sender (MAIL FROM); "" for the null sender
  --to ADDR             envelope recipient (RCPT TO); repeat for more
  --header-from VALUE   the From header (default: the --from address)
  --client IP           the SMTP client's address
  --helo NAME           its HELO/EHLO name
  --auth USER           its SMTP AUTH identity
  --tls                 the session uses TLS
                        (the last four feed the relay policy, for recipients outside our domains)
  --seed N              seed for picking the hosts of multiple-host routes by
                        load (default: random, as the milter picks them)
  --trace               every rule, for every recipient, with why it matched or not
  --format FORMAT       text (default) or json (the same data, for scripts)
`

// listFlag is a repeatable string flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(s string) error { *l = append(*l, s); return nil }

// cmdExplain is `splitrelay explain -c FILE --from ADDR --to ADDR...`: what
// the milter would do with each recipient of an envelope, without an MTA.
func cmdExplain(args []string, stdout, stderr io.Writer) int {
	fs, config := newFlags("explain", "-c FILE --from ADDR --to ADDR [--to ADDR...] [--header-from ADDR] [--client IP] [--helo NAME] [--auth USER] [--tls] [--trace] [--format text|json]", explainFlags, stdout, stderr)
	var to listFlag
	from := fs.String("from", "", "")
	headerFrom := fs.String("header-from", "", "")
	client := fs.String("client", "", "")
	helo := fs.String("helo", "", "")
	auth := fs.String("auth", "", "")
	tls := fs.Bool("tls", false, "")
	seed := fs.Uint64("seed", 0, "")
	trace := fs.Bool("trace", false, "")
	format := fs.String("format", "text", "")
	fs.Var(&to, "to", "")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if *format != "text" && *format != "json" {
		return usageError(fs, "--format: %q: want text or json", *format)
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if !set["from"] {
		return usageError(fs, "--from is required (--from \"\" for the null sender)")
	}
	if len(to) == 0 {
		return usageError(fs, "at least one --to is required")
	}
	if !set["header-from"] {
		*headerFrom = *from
	}

	rs, err := loadConfig(*config)
	if err != nil {
		printLoadError(stderr, err)
		return 1
	}

	c := rules.Client{Helo: *helo, Auth: *auth, TLS: *tls}
	if *client != "" {
		a, err := netip.ParseAddr(*client)
		if err != nil {
			return usageError(fs, "--client: %v", err)
		}
		c.Addr = a.Unmap()
	}
	rnd := rand.IntN
	if set["seed"] {
		rnd = rand.New(rand.NewPCG(*seed, *seed)).IntN
	}
	// The same transaction the milter drives: each --to is a RCPT TO
	// (without an MTA, its stored form is our own reading of it), then
	// end of message.
	t := rs.Begin(c, *from, 0, nil)
	if *trace {
		t.Trace()
	}
	for _, addr := range to {
		t.Rcpt(rules.RcptIn{Raw: addr})
	}
	d := t.End(rules.Message{HeaderFrom: *headerFrom, Rand: rnd})
	if *format == "json" {
		return writeExplainJSON(stdout, rs, *from, *headerFrom, d)
	}

	w := &explainWriter{w: stdout}
	w.field("", "config", rs.Name+" (config id "+rs.ID+")")
	w.field("", "envelope", "MAIL FROM:<"+*from+">")
	if *headerFrom == "" {
		w.field("", "header from", "(none)")
	} else {
		w.field("", "header from", *headerFrom)
	}
	w.field("", "message", d.Kind.String()+": "+d.KindReason)
	if set["client"] || set["helo"] || set["auth"] || set["tls"] {
		w.field("", "connection", connection(*client, *helo, *auth, *tls))
	}
	if rs.Relay == nil {
		w.field("", "relay", "no [relay] section: recipients outside our domains are left to Postfix")
	}
	if d.SenderRewritten {
		w.field("", "sender", "rewritten to <"+d.Sender+">: "+d.SenderReason)
	}
	if d.Reject != nil {
		w.field("", "message", "reject "+d.Reject.String()+" at end of message (message size)")
	}
	if rs.Milter.DryRun {
		w.field("", "dry run", "yes: the milter only logs these decisions; Postfix delivers every recipient unchanged and nothing is rejected")
	}

	for _, r := range d.Recipients {
		if r.Action == rules.Reject || r.Action == rules.Defer {
			r.Reason += " (refused at RCPT TO)"
		}
		fmt.Fprintln(stdout)
		w.recipient(rs, r, rs.Milter.DryRun)
		for _, tr := range r.Trace {
			mark := "no "
			if tr.Matched {
				mark = "yes"
			}
			w.field("  ", "trace", fmt.Sprintf("%s %q: %s", mark, tr.Rule, tr.Why))
		}
	}
	return w.err
}

// connection describes the session flags.
func connection(client, helo, auth string, tls bool) string {
	parts := []string{"client " + or(client, "-"), "helo " + or(helo, "-")}
	if auth != "" {
		parts = append(parts, "SMTP AUTH as "+auth)
	} else {
		parts = append(parts, "no SMTP AUTH")
	}
	if tls {
		parts = append(parts, "TLS")
	} else {
		parts = append(parts, "no TLS")
	}
	return strings.Join(parts, ", ")
}

func or(s, alt string) string {
	if s == "" {
		return alt
	}
	return s
}

// explainWriter writes "label      value" lines with aligned values.
type explainWriter struct {
	w   io.Writer
	err int // exit code: 1 after a write error
}

func (w *explainWriter) field(indent, label, value string) {
	if _, err := fmt.Fprintf(w.w, "%s%-*s %s\n", indent, 12-len(indent), label, value); err != nil {
		w.err = 1
	}
}

// recipient explains one recipient's decision.
func (w *explainWriter) recipient(rs *rules.Ruleset, r rules.Recipient, dryRun bool) {
	const in = "  "
	fmt.Fprintln(w.w, r.Address)
	dry := ""
	if dryRun && (r.Action != rules.Keep || len(r.Copies) > 0) {
		dry = "  (dry run: logged, not done)"
	}
	if r.Action == rules.Defer {
		w.field(in, "action", "tempfail "+r.Reply.String()+dry)
		w.field(in, "postfix", "nothing: the client keeps the recipient and retries")
		w.field(in, "reason", r.Reason)
		return
	}
	if r.Action == rules.Reject {
		w.field(in, "action", "reject "+r.Reply.String()+dry)
		w.field(in, "postfix", "nothing: the recipient is refused")
		switch {
		case r.Relay:
			w.field(in, "rule", "the [relay] policy (recipient outside our domains)")
		case r.Rule != "":
			w.field(in, "rule", r.Rule)
		case r.Reply.Enhanced == "5.1.2":
			w.field(in, "rule", "none (built-in routing namespace check)")
		default:
			w.field(in, "rule", "the [relay] policy")
		}
		w.field(in, "reason", r.Reason)
		return
	}
	if r.Account == rules.External {
		w.field(in, "account", "external (not in organization.domains)")
	} else {
		w.field(in, "account", r.Account.String())
	}
	w.field(in, "action", action(r)+dry)
	if r.Route != nil {
		w.field(in, "postfix", routed(rs, r.Addr, r.Route, r.Choice))
		w.field(in, "host", host(r.Route, r.Choice))
	} else {
		stored := r.Address
		if r.Addr.Key != "" {
			stored = r.Addr.Stored()
		}
		w.field(in, "postfix", stored+"  (unchanged: Postfix's own routing)")
	}
	for _, c := range r.Copies {
		w.field(in, "", routed(rs, r.Addr, c.Route, c.Choice)+"  (copy)")
		w.field(in, "", host(c.Route, c.Choice)+"  (copy)")
	}
	switch {
	case r.Route != nil:
		w.field(in, "rule", fmt.Sprintf("%q (route via %s)", r.Rule, r.Route.Name))
	case len(r.Copies) == 0:
		w.field(in, "rule", "none")
	}
	for _, c := range r.Copies {
		w.field(in, "rule", fmt.Sprintf("%q (copy via %s)", c.Rule, c.Route.Name))
	}
	w.field(in, "reason", r.Reason)
	if r.Relay {
		w.field(in, "relay", "allowed by the [relay] policy")
	} else if r.Account == rules.External && rs.Relay == nil {
		w.field(in, "relay", "not judged by splitrelay: Postfix's smtpd_relay_restrictions decide")
	}
}

// action is accept, route via R, copy via R, or both.
func action(r rules.Recipient) string {
	var parts []string
	if r.Route != nil {
		parts = append(parts, "route via "+r.Route.Name)
	}
	for _, c := range r.Copies {
		parts = append(parts, "copy via "+c.Route.Name)
	}
	if len(parts) == 0 {
		return "accept"
	}
	if r.Route == nil {
		parts = append([]string{"accept"}, parts...)
	}
	return strings.Join(parts, " + ")
}

// routed is the address Postfix sees for route rt and host choice c, its
// transport and next hops.
func routed(rs *rules.Ruleset, addr rules.Address, rt *rules.Route, c rules.Choice) string {
	s := rs.RoutedAddress(addr, rt, c)
	t, err := postfix.Transport(rt, c)
	if err != nil {
		return s + " -> (no Postfix transport: " + err.Error() + ")"
	}
	return s + " -> " + t
}

// host names the host the message goes to first on route rt, and how it
// was picked.
func host(rt *rules.Route, c rules.Choice) string {
	h := rt.Chosen(c).String()
	if rt.MXLookup {
		h = "MX hosts of " + h
	}
	if !rt.Multiple() {
		return h
	}
	return fmt.Sprintf("%s (primary %d of %d, load %d%%, picked for this message; the other hosts follow if it fails)",
		h, c.Primary+1, len(rt.Primary), rt.Primary[c.Primary].Load)
}
