package main

import (
	"encoding/json"
	"io"

	"github.com/splitrelay/splitrelay/milter/postfix"
	"github.com/splitrelay/splitrelay/rules"
)

// explainJSON is `explain --format json`: the data of the text output, for
// scripts. Field names are part of the public interface: add, never rename.
type explainJSON struct {
	Config     string          `json:"config"`
	ConfigID   string          `json:"config_id"`
	MailFrom   string          `json:"mail_from"`
	HeaderFrom string          `json:"header_from"`
	Kind       string          `json:"kind"`
	KindReason string          `json:"kind_reason"`
	DryRun     bool            `json:"dry_run"`
	Relay      bool            `json:"relay"`
	NewSender  string          `json:"new_mail_from,omitempty"`
	Reject     string          `json:"reject,omitempty"` // message-level refusal at end of message
	Recipients []recipientJSON `json:"recipients"`
}

type recipientJSON struct {
	Rcpt    string      `json:"rcpt"`
	Stored  string      `json:"stored_rcpt,omitempty"`
	Account string      `json:"account"`
	Action  string      `json:"action"` // accept | route | reject | tempfail
	Reply   string      `json:"reply,omitempty"`
	Relay   bool        `json:"relay"`
	Rule    string      `json:"rule,omitempty"`
	Reason  string      `json:"reason"`
	Route   *viaJSON    `json:"route,omitempty"`
	Copies  []viaJSON   `json:"copies"`
	Trace   []traceJSON `json:"trace,omitempty"`
}

type viaJSON struct {
	Route     string `json:"route"`
	Rule      string `json:"rule"`
	Routed    string `json:"routed_rcpt"`
	Transport string `json:"transport,omitempty"`
	Host      string `json:"host"`
}

type traceJSON struct {
	Rule    string `json:"rule"`
	Matched bool   `json:"matched"`
	Why     string `json:"why"`
}

func writeExplainJSON(w io.Writer, rs *rules.Ruleset, from, headerFrom string, d rules.Decision) int {
	out := explainJSON{
		Config: rs.Name, ConfigID: rs.ID, MailFrom: from, HeaderFrom: headerFrom,
		Kind: d.Kind.String(), KindReason: d.KindReason, DryRun: rs.Milter.DryRun, Relay: d.Relay,
		Recipients: make([]recipientJSON, 0, len(d.Recipients)),
	}
	if d.SenderRewritten {
		out.NewSender = d.Sender
	}
	if d.Reject != nil {
		out.Reject = d.Reject.String()
	}
	via := func(r rules.Recipient, rt *rules.Route, c rules.Choice, rule string) viaJSON {
		v := viaJSON{Route: rt.Name, Rule: rule, Routed: rs.RoutedAddress(r.Addr, rt, c), Host: rt.Chosen(c).String()}
		if t, err := postfix.Transport(rt, c); err == nil {
			v.Transport = t
		}
		return v
	}
	for _, r := range d.Recipients {
		j := recipientJSON{Rcpt: r.Address, Account: r.Account.String(), Action: r.Action.String(),
			Relay: r.Relay, Rule: r.Rule, Reason: r.Reason, Copies: []viaJSON{}}
		if r.Addr.Key != "" {
			j.Stored = r.Addr.Stored()
		}
		if r.Action == rules.Reject || r.Action == rules.Defer {
			j.Reply = r.Reply.String()
		}
		if r.Route != nil {
			v := via(r, r.Route, r.Choice, r.Rule)
			j.Route = &v
		}
		for _, c := range r.Copies {
			j.Copies = append(j.Copies, via(r, c.Route, c.Choice, c.Rule))
		}
		for _, t := range r.Trace {
			j.Trace = append(j.Trace, traceJSON{Rule: t.Rule, Matched: t.Matched, Why: t.Why})
		}
		out.Recipients = append(out.Recipients, j)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(out); err != nil {
		return 1
	}
	return 0
}
