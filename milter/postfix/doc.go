// Package postfix produces the Postfix side of a splitrelay configuration:
// the main.cf settings, the master.cf transports and the lookup tables that
// a loaded rules.Ruleset needs. It is pure: Generate returns a Config, and
// the renderers write text to an io.Writer; nothing here runs a command or
// touches /etc/postfix (cmd/splitrelay writes the map files).
//
// # Why the Postfix side exists: a milter cannot pick a transport
//
// The milter protocol gives a filter no way to choose a transport or a next
// hop (MILTER_README lists what a milter may change: headers, body,
// sender and recipients). splitrelay therefore routes by address. At the
// end of a message the milter replaces a recipient bob@example.com by
// bob@example.com.<route>.<suffix>, an address in the routing namespace
// (the suffix defaults to splitrelay.invalid; .invalid never resolves,
// RFC 2606). Then Postfix's own machinery does the rest:
//
//   - transport_maps (transport(5)) maps /\.<route>\.<suffix>$/ to a
//     dedicated transport splitrelay-<route> with the route's next hop;
//     "[host]:port" suppresses MX lookups, "host:port" performs them, and an
//     IPv6 address is written "[ipv6:2001:db8::1]:25" (smtp(8), "SMTP
//     DESTINATION SYNTAX"). A route with primary and secondary tables of
//     hosts is still one transport: the milter adds a host label to the
//     address (bob@example.com.p2.<route>.<suffix>: primary 2, picked by
//     load for this message), and the map sends each label to a next-hop
//     list (Postfix 3.5 and later) that starts with that host and falls
//     back to the others, secondaries last.
//   - Each splitrelay-<route> transport is a clone of the smtp service in
//     master.cf (master(5)) with "-o smtp_generic_maps=regexp:.../generic";
//     the generic table (generic(5)) turns the routed address back into
//     bob@example.com, so the next hop sees the original RCPT TO.
//   - smtpd_milters names the milter (MILTER_README); the entry carries
//     default_action=tempfail (Postfix 3.0 and later accept per-milter
//     settings in braces), so that mail is deferred, not misrouted, when
//     the milter is down.
//   - check_recipient_access (access(5)) with a regexp table rejects any
//     client-supplied recipient in the routing namespace, as a defence in
//     depth next to the milter's own RCPT check: it still holds with the
//     milter stopped or in dry_run.
//
// All tables are regexp tables (regexp_table(5)): no postmap step is
// needed, and they are case-insensitive by default. Postfix reads them
// when a process starts, so a change needs "postfix reload".
//
// Postfix applies virtual_alias_maps and recipient_canonical_maps to
// recipients a milter adds; an existing wildcard entry in those tables that
// matches the routing namespace would capture routed mail. The generated
// text repeats this warning for the administrator.
package postfix
