package rules

import (
	"strings"

	"github.com/emersion/go-message/mail"
)

// routingReply refuses a client-supplied recipient in the routing
// namespace. 5.1.2 is "bad destination system address" (RFC 3463): the
// .invalid domain is not a system anyone may address.
var routingReply = Reply{Code: 550, Enhanced: "5.1.2", Text: "Bad destination system address"}

func (rs *Ruleset) inNamespace(addr string) bool {
	s := strings.ToLower(addr)
	suffix := rs.suffix
	bare := suffix[1:]
	if a, err := parseAddress(addr); err == nil && underDomain(a.ASCII, bare) {
		return true
	}
	// Anywhere else in the address (user%host.route.suffix@ours,
	// host.route.suffix!user@ours, "...@x.suffix"@ours): refuse too.
	return strings.Contains(s, suffix) || strings.Contains(s, "@"+bare) || strings.HasPrefix(s, bare)
}

// RoutedAddress is a rewritten into route r's routing namespace,
// local@domain.<route>.<suffix>, or local@domain.<label>.<route>.<suffix>
// on a multiple-host route with the host label of choice c (host.go);
// Postfix's transport map sends it to the route's transport and hosts,
// whose smtp_generic_maps restore local@domain. The local part and the
// domain are kept as stored (case, U-labels, subaddress), so the route's
// server receives the address exactly as the MTA stored it.
func (rs *Ruleset) RoutedAddress(a Address, r *Route, c Choice) string {
	ns := r.Name + rs.suffix
	if l := r.Label(c); l != "" {
		ns = l + "." + ns
	}
	return quoteLocal(a.Local) + "@" + a.Domain + "." + ns
}

// decideRelayMessage applies the message-level relay policy: the real size
// and, with allowed_senders = "any", the rewriting of a sender outside our
// domains to postmaster@<our domain>.
func (rs *Ruleset) decideRelayMessage(t *Tx, m Message, d *Decision) {
	if lim := rs.Relay.Limits.MessageSize; lim > 0 && max(m.Size, t.sizeParam) > lim {
		d.Reject = &ReplyTooBig
	}
	if rs.Relay.AllowedSenders == AnySender && t.sender != "" && !(t.fromOK && rs.ours(t.from.ASCII)) {
		if dom := rs.postmasterDomain(t.client); dom != "" {
			d.Sender, d.SenderRewritten = "postmaster@"+dom, true
			d.SenderReason = "sender outside our domains relayed with allowed_senders = any"
		}
	}
}

// split applies the split-delivery rules to an accepted recipient in our
// domains: the first matching rule that changes the route wins, every
// matching dual-delivery rule adds its copy (one per route, never via the
// route the recipient already takes). With t.trace every rule's outcome
// is recorded.
func (rs *Ruleset) split(kind Kind, t *Tx, r *Recipient) {
	for _, rule := range rs.Rules {
		why := ""
		if m := rs.mismatch(rule, kind, t, r); m != matched {
			why = "-"
			if t.trace {
				why = m.why(kind, t, r)
			}
		}
		if why == "" {
			switch {
			case rule.AlsoDeliver && r.hasCopy(rule.Route):
				why = "matched; a copy via route " + rule.Route.Name + " is already added"
			case rule.AlsoDeliver:
				r.Copies = append(r.Copies, Copy{Route: rule.Route, Rule: rule.Name})
			case r.Route != nil:
				why = "matched; rule " + r.Rule + " already chose the route"
			default:
				r.Action, r.Route, r.Rule = Reroute, rule.Route, rule.Name
			}
		}
		if t.trace {
			r.Trace = append(r.Trace, RuleTrace{Rule: rule.Name, Matched: why == "" || strings.HasPrefix(why, "matched"), Why: traceWhy(why, rule)})
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
}

// miss is which condition of a rule a recipient fails.
type miss int

const (
	matched     miss = iota
	missKind         // messages
	missAccount      // accounts
	missSender       // envelope senders
	missRcpt         // envelope recipients
)

// mismatch says which condition of rule recipient r of a message of kind
// fails, or matched.
func (rs *Ruleset) mismatch(rule *Rule, kind Kind, t *Tx, r *Recipient) miss {
	switch {
	case kind == Inbound && !rule.Messages.Inbound || kind == Internal && !rule.Messages.Internal:
		return missKind
	case !rule.affects(kind, r.Account):
		return missAccount
	case !rs.matchAny(rule.Senders, t.from, t.fromOK, t.sender):
		return missSender
	case !rs.matchAny(rule.Recipients, r.Addr, true, r.Address):
		return missRcpt
	}
	return matched
}

// why words a miss for explain --trace (built only when tracing).
func (m miss) why(kind Kind, t *Tx, r *Recipient) string {
	switch m {
	case missKind:
		return "messages: " + kind.String() + " messages are not selected"
	case missAccount:
		return "accounts: " + r.Account.String() + " recipients are not selected"
	case missSender:
		return "envelope senders: <" + t.sender + "> matches no entry"
	case missRcpt:
		return "envelope recipients: " + r.Addr.String() + " matches no entry"
	}
	return ""
}

func traceWhy(why string, rule *Rule) string {
	if why != "" {
		return why
	}
	if rule.AlsoDeliver {
		return "matched: copy via route " + rule.Route.Name
	}
	return "matched: route " + rule.Route.Name
}

func (r *Recipient) hasCopy(route *Route) bool {
	for _, c := range r.Copies {
		if c.Route == route {
			return true
		}
	}
	return false
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
	// Postfix hands the milter a folded header with its line breaks;
	// unfold it (RFC 5322 2.2.3) or a From with several authors, or one
	// long one, reads as unparseable and the message as inbound.
	v = unfold(v)
	if out, ok := simpleFromDomains(v); ok {
		return out
	}
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
		if a, err := parseAddress(s); err == nil && !strings.HasPrefix(a.ASCII, "[") {
			out = append(out, a.ASCII)
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

// unfold removes the CRLF (or bare LF) of folded header lines, keeping the
// white space that follows.
func unfold(v string) string {
	if !strings.ContainsAny(v, "\r\n") {
		return v
	}
	v = strings.ReplaceAll(v, "\r\n", "\n")
	return strings.ReplaceAll(strings.ReplaceAll(v, "\n\t", "\t"), "\n ", " ")
}

// simpleFromDomains reads the common From header without a full RFC 5322
// parser: "addr", "Name <addr>", and lists of them, where no display name
// holds quotes, comments, encoded words, group syntax or a second '<'.
// ok is false for anything else, which the full parser then reads. Most
// messages take this path: it saves the parser's ~20 allocations.
func simpleFromDomains(v string) (domains []string, ok bool) {
	if strings.ContainsAny(v, "\"()\\:;") || strings.Contains(v, "=?") {
		return nil, false
	}
	for part := range strings.SplitSeq(v, ",") {
		addr := strings.TrimSpace(part)
		if i := strings.IndexByte(addr, '<'); i >= 0 {
			j := strings.IndexByte(addr, '>')
			if j < i || strings.TrimSpace(addr[j+1:]) != "" || strings.IndexByte(addr[i+1:], '<') >= 0 {
				return nil, false
			}
			addr = addr[i+1 : j]
		} else if strings.ContainsAny(addr, " \t>") {
			return nil, false
		}
		a, err := parseAddress(addr)
		if err != nil || strings.HasPrefix(a.ASCII, "[") {
			return nil, false
		}
		domains = append(domains, a.ASCII)
	}
	return domains, len(domains) > 0
}
