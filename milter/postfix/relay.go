package postfix

import (
	"fmt"
	"slices"
	"strings"

	"golang.org/x/net/idna"

	"github.com/splitrelay/splitrelay/rules"
)

// relayRows are the recipient_access rows that leave relay recipients to
// the milter. Postfix cannot refuse a relay recipient with Google's words:
// an access(5) reply "550 5.7.0 Mail relay denied" reaches the client as
// "550 5.7.0 <unknown[192.0.2.9]>: Client host rejected: Mail relay
// denied" (measured, Postfix 3.7), and reject_unauth_destination says
// "554 5.7.1 <x>: Relay access denied". So:
//
//   - a recipient in our domains (or a subdomain, in A-label or U-label
//     form), and an unqualified local name, is DUNNO: the site's own
//     restrictions decide, as before;
//   - any other recipient (including user%host@ours and host!user@ours,
//     which rules count as relay) is OK: the site's relay restrictions do
//     not answer it, the milter does, with Google's reply, at the same RCPT.
//
// Nothing global (smtpd_recipient_limit, message_size_limit,
// reject_multi_recipient_bounce, mynetworks) is changed: relay limits are
// the milter's, for relay recipients only. With the milter stopped Postfix
// defers all mail (default_action=tempfail); with dry_run the rows are left
// out, so that the site's own relay restrictions stay in force.
func relayRows(rs *rules.Ruleset) (rows [][2]string, notes []string) {
	p := rs.Relay
	if p == nil {
		return nil, []string{"No [relay] section: recipients outside organization.domains are left to your smtpd_relay_restrictions."}
	}
	if rs.Milter.DryRun {
		return nil, []string{"milter.dry_run: the milter refuses nothing, so relay recipients are left to your smtpd_relay_restrictions " +
			"(generate again after switching dry_run off: then the milter answers them, with Google's replies)."}
	}
	rows = [][2]string{
		{`/^[^@%!]*$/`, "DUNNO"},
		{`/^[^@%!]+@([^@]+\.)?(` + strings.Join(domainAlternatives(rs.Domains), "|") + `)\.?$/`, "DUNNO"},
		{`/./`, "OK"},
	}
	notes = append(notes, "[relay]: recipients outside your domains are answered by the milter, with Google's replies "+
		"(Postfix cannot give them: its own refusals add \"Client host rejected:\" or say \"Relay access denied\"); "+
		"your smtpd_relay_restrictions and smtpd_recipient_restrictions still apply to recipients in your domains.")
	if p.RequireTLS || p.RequireSMTPAuth {
		notes = append(notes, "The relay policy needs STARTTLS: make sure smtpd_tls_security_level = may (or encrypt) with a certificate (smtpd_tls_chain_files).")
	}
	if p.Limits.MessageSize > 0 {
		notes = append(notes, fmt.Sprintf("relay.limits.message_size (%d bytes) is enforced by the milter, for relay mail only. "+
			"Postfix's own message_size_limit (default 10240000) applies to all mail and is left as it is: "+
			"a relayed message above it gets Postfix's reply, not Google's.", p.Limits.MessageSize))
	}
	return rows, notes
}

// domainAlternatives are the regexp alternatives for domains: each in its
// A-label form and, when it has one, its U-label form (Postfix 3.7 does
// not map one to the other in lookups, POSTFIX.md).
func domainAlternatives(domains []string) []string {
	var out []string
	for _, d := range domains {
		out = append(out, quoteRegexp(d))
		if u, err := idna.ToUnicode(d); err == nil && u != d {
			out = append(out, quoteRegexp(u))
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}
