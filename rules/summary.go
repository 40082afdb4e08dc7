package rules

import (
	"fmt"
	"strings"
)

// Summary is the one-paragraph description `splitrelay check` prints: what
// an administrator should recognise as their intent.
func (rs *Ruleset) Summary() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: ok (config id %s). Organisation domains %s (and their subdomains). ", rs.Name, rs.ID, strings.Join(rs.Domains, ", "))
	fmt.Fprintf(&b, "Directory: %s, %s. ", plural(len(rs.users), "registered user"), plural(len(rs.groups), "group"))
	if len(rs.RouteNames) == 0 {
		b.WriteString("No routes. ")
	} else {
		var rts []string
		for _, n := range rs.RouteNames {
			rts = append(rts, rs.Routes[n].String())
		}
		fmt.Fprintf(&b, "%s: %s. ", plural(len(rts), "route"), strings.Join(rts, "; "))
	}
	var copies int
	for _, r := range rs.Rules {
		if r.AlsoDeliver {
			copies++
		}
	}
	fmt.Fprintf(&b, "%s (%d dual delivery), evaluated in file order. ", plural(len(rs.Rules), "split-delivery rule"), copies)
	b.WriteString(rs.relaySummary())
	fmt.Fprintf(&b, "Milter listens on %s; routing namespace .%s", rs.Milter.Listen, rs.Milter.RoutingSuffix)
	if rs.Milter.DryRun {
		b.WriteString("; DRY RUN: decisions are logged, nothing is changed or rejected")
		if rs.Relay != nil {
			b.WriteString(" (relay refusals too: Postfix's own smtpd_relay_restrictions are then the only relay control, keep the generated ones)")
		}
	}
	b.WriteString(".")
	return b.String()
}

// String describes a route in one line: name -> next hop and TLS policy.
func (r *Route) String() string {
	hop := r.hops()
	tls := "TLS optional"
	switch {
	case r.ValidateHostname:
		tls = "TLS required, CA-signed certificate, host name validated"
	case r.RequireCASigned:
		tls = "TLS required, CA-signed certificate"
	case r.RequireTLS:
		tls = "TLS required"
	case r.ImplicitTLS():
		tls = "implicit TLS on port 465, certificate not checked"
	}
	return fmt.Sprintf("%s -> %s (%s)", r.Name, hop, tls)
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

func (rs *Ruleset) relaySummary() string {
	r := rs.Relay
	if r == nil {
		return "No [relay] section: recipients outside our domains are left to the MTA's own relay restrictions. "
	}
	var auth []string
	if r.RequireNetwork {
		n := 0
		for _, x := range r.Networks {
			if x.Enabled {
				n++
			}
		}
		auth = append(auth, fmt.Sprintf("client in %s", plural(n, "enabled network")))
	}
	if r.RequireSMTPAuth {
		auth = append(auth, "SMTP AUTH over TLS")
	}
	if r.RequireTLS {
		auth = append(auth, "TLS")
	}
	l := r.Limits
	return fmt.Sprintf("Relay: senders %s, requires %s; limits %d recipients per message, %d bytes per message, %d messages and %d unique recipients per user per 24 h, %d recipients per 24 h and %d per 10 minutes for the organisation (0 = none). ",
		r.AllowedSenders, strings.Join(auth, " and "), l.RecipientsPerMessage, l.MessageSize,
		l.UserMessagesPerDay, l.UserRecipientsPerDay, l.OrgRecipientsPerDay, l.OrgRecipientsPer10Minutes) + rs.State.summary()
}
