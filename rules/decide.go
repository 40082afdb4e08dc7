package rules

import (
	"strings"

	"github.com/emersion/go-message/mail"
)

// routingReply refuses a client-supplied recipient in the routing
// namespace. 5.1.2 is "bad destination system address" (RFC 3463): the
// .invalid domain is not a system anyone may address.
var routingReply = Reply{Code: 550, Enhanced: "5.1.2", Text: "Bad destination system address"}

// CheckRecipient is the RCPT TO time check. It refuses a client-supplied
// recipient that names the routing namespace in any form (as the domain,
// after a percent hack or a bang path, with a trailing dot, in any case):
// only the milter may put addresses there, or a client could pick a route
// itself. ok is false with the reply to send and the reason to log.
func (rs *Ruleset) CheckRecipient(addr string) (reply Reply, reason string, ok bool) {
	if rs.inNamespace(addr) {
		return routingReply, "recipient is in the routing namespace ." + rs.Milter.RoutingSuffix, false
	}
	return Reply{}, "", true
}

func (rs *Ruleset) inNamespace(addr string) bool {
	s := strings.ToLower(addr)
	suffix := rs.suffix
	bare := suffix[1:]
	if a, err := parseAddress(addr); err == nil && underDomain(a.domain, bare) {
		return true
	}
	// Anywhere else in the address (user%host.route.suffix@ours,
	// host.route.suffix!user@ours, "...@x.suffix"@ours): refuse too.
	return strings.Contains(s, suffix) || strings.Contains(s, "@"+bare) || strings.HasPrefix(s, bare)
}

// RoutedAddress is addr rewritten into route r's routing namespace,
// local@domain.<route>.<suffix>, or local@domain.<label>.<route>.<suffix>
// on a multiple-host route with the host label of choice c (host.go);
// Postfix's transport map sends it to the route's transport and hosts,
// whose smtp_generic_maps restore local@domain.
func (rs *Ruleset) RoutedAddress(addr string, r *Route, c Choice) string {
	a, err := parseAddress(addr)
	if err != nil {
		return ""
	}
	ns := r.Name + rs.suffix
	if l := r.Label(c); l != "" {
		ns = l + "." + ns
	}
	return a.local + "@" + a.domain + "." + ns
}

// Decide returns the decision for every recipient of env, as if they were
// given one by one at RCPT TO (the relay policy, without the rolling
// limits, which only RCPT TO time checks with a Usage), and for the
// message: the size limit and the sender rewriting of relayed mail.
func (rs *Ruleset) Decide(env Envelope) Decision {
	d := Decision{Recipients: make([]Recipient, 0, len(env.Recipients))}
	d.Kind, d.KindReason = rs.kind(env.HeaderFrom)
	sender, senderOK := address{}, false
	if env.Sender != "" {
		if a, err := parseAddress(env.Sender); err == nil {
			sender, senderOK = a, true
		}
	}
	accepted := env
	accepted.Recipients = make([]string, 0, len(env.Recipients))
	for _, rcpt := range env.Recipients {
		r := rs.CheckRcpt(accepted, rcpt, nil)
		switch {
		case r.Action == Reject:
		case r.Relay:
			d.Relay = true
			accepted.Recipients = append(accepted.Recipients, rcpt)
		default:
			r = rs.decideRecipient(d.Kind, sender, senderOK, env.Sender, rcpt)
			accepted.Recipients = append(accepted.Recipients, rcpt)
		}
		d.Recipients = append(d.Recipients, r)
	}
	if d.Relay {
		rs.decideRelayMessage(env, sender, senderOK, &d)
	}
	d.choose(env.Rand)
	return d
}

// decideRelayMessage applies the message-level relay policy: the real size
// and, with allowed_senders = "any", the rewriting of a sender outside our
// domains to postmaster@<our domain>.
func (rs *Ruleset) decideRelayMessage(env Envelope, sender address, senderOK bool, d *Decision) {
	if lim := rs.Relay.Limits.MessageSize; lim > 0 && max(env.Size, env.SizeParam) > lim {
		d.Reject = &ReplyTooBig
	}
	if rs.Relay.AllowedSenders == AnySender && env.Sender != "" && !(senderOK && rs.ours(sender.domain)) {
		if dom := rs.postmasterDomain(env.Client); dom != "" {
			d.Sender, d.SenderRewritten = "postmaster@"+dom, true
			d.SenderReason = "sender outside our domains relayed with allowed_senders = any"
		}
	}
}

// decideRecipient applies split delivery to a recipient that CheckRcpt
// has already let through (routing namespace refused, relay judged).
func (rs *Ruleset) decideRecipient(kind Kind, sender address, senderOK bool, rawSender, rcpt string) Recipient {
	r := Recipient{Address: rcpt}
	a, err := parseAddress(rcpt)
	if err != nil {
		r.Reason = "recipient address has no domain we can read; left to the MTA"
		return r
	}
	if !rs.ours(a.domain) {
		r.Reason = "recipient domain " + a.domain + " is not ours; split delivery does not apply"
		return r
	}
	r.Account = rs.account(a)
	for _, rule := range rs.Rules {
		if !rule.affects(kind, r.Account) ||
			!rs.matchAny(rule.Senders, sender, senderOK, rawSender) ||
			!rs.matchAny(rule.Recipients, a, true, rcpt) {
			continue
		}
		if rule.AlsoDeliver {
			r.addCopy(rule)
			continue
		}
		if r.Route == nil {
			r.Action, r.Route, r.Rule = Reroute, rule.Route, rule.Name
		}
	}
	// Never a copy via the route the recipient already takes.
	if r.Route != nil {
		kept := r.Copies[:0]
		for _, c := range r.Copies {
			if c.Route != r.Route {
				kept = append(kept, c)
			}
		}
		r.Copies = kept
	}
	switch {
	case r.Route != nil:
		r.Reason = r.Account.String() + " " + kind.String() + " recipient matched rule"
	case len(r.Copies) > 0:
		r.Reason = r.Account.String() + " " + kind.String() + " recipient: normal delivery plus dual delivery"
	default:
		r.Reason = r.Account.String() + " " + kind.String() + " recipient: no rule matched; normal delivery"
	}
	return r
}

func (r *Recipient) addCopy(rule *Rule) {
	for _, c := range r.Copies {
		if c.Route == rule.Route {
			return
		}
	}
	r.Copies = append(r.Copies, Copy{Route: rule.Route, Rule: rule.Name})
}

// kind classifies the message by its From header: internal when every
// author's domain is ours, a subdomain of one, or a parent domain of one
// (Google's "internal - receiving"); inbound otherwise, including when there
// is no From header or it cannot be read (an unreadable From header is not
// evidence of an internal sender).
func (rs *Ruleset) kind(headerFrom string) (Kind, string) {
	if strings.TrimSpace(headerFrom) == "" {
		return Inbound, "no From header"
	}
	domains := fromDomains(headerFrom)
	if len(domains) == 0 {
		return Inbound, "From header has no address we can read"
	}
	for _, d := range domains {
		if !rs.internalDomain(d) {
			return Inbound, "From header domain " + d + " is not ours"
		}
	}
	return Internal, "From header domain " + domains[0] + " is ours"
}

// fromDomains extracts the normalised author domains of a From header
// (RFC 5322 mailbox-list, RFC 2047 display names). When strict parsing
// fails, the addr-specs in angle brackets are used.
func fromDomains(v string) []string {
	var addrs []string
	if list, err := mail.ParseAddressList(v); err == nil {
		for _, a := range list {
			addrs = append(addrs, a.Address)
		}
	} else {
		for rest := v; ; {
			i := strings.IndexByte(rest, '<')
			j := strings.IndexByte(rest[max(i, 0):], '>')
			if i < 0 || j < 0 {
				break
			}
			addrs = append(addrs, rest[i+1:i+j])
			rest = rest[i+j+1:]
		}
		if len(addrs) == 0 && strings.Count(v, "@") == 1 && !strings.ContainsAny(v, " <>,") {
			addrs = append(addrs, strings.TrimSpace(v))
		}
	}
	var out []string
	for _, s := range addrs {
		if a, err := parseAddress(s); err == nil && !strings.HasPrefix(a.domain, "[") {
			out = append(out, a.domain)
		} else {
			return nil // one unreadable author: do not call it internal
		}
	}
	return out
}

// internalDomain is Google's test: one of our domains, a subdomain of one,
// or a parent domain of one. A parent must keep at least two labels, so a
// bare top-level domain never makes mail internal.
func (rs *Ruleset) internalDomain(d string) bool {
	for _, dom := range rs.Domains {
		if underDomain(d, dom) || strings.Contains(d, ".") && strings.HasSuffix(dom, "."+d) {
			return true
		}
	}
	return false
}
