// Package sendmail produces the Sendmail side of a splitrelay
// configuration: the sendmail.mc additions (m4) that a loaded
// rules.Ruleset needs, and a plain statement of what this configuration
// needs that Sendmail cannot express. It is pure, like milter/postfix:
// Generate returns a Config and the writers write text; nothing here runs
// m4 or touches /etc/mail.
//
// # Routing by address, the Sendmail way
//
// The milter routes a recipient by replacing bob@example.com with
// bob@example.com.<route>.<suffix> (milter/postfix explains why). Sendmail
// resolves every recipient, the ones a milter adds included, through
// ruleset 0 (parse), and one LOCAL_RULE_0 rule per route both picks the
// mailer and restores the address (Sendmail Installation and Operation
// Guide, "The Configuration File", R and M lines; cf/README, LOCAL_RULE_0):
//
//	R$* < @ $+ . legacy . splitrelay . invalid . > $*	$#splitrelay-legacy $@ [HOST] $: $1 < @ $2 . > $3
//
// The mailer splitrelay-legacy is a clone of the esmtp mailer whose A=
// names the route's port ("A=TCP $h PORT"). A balanced route gets one rule
// per host label (bob@example.com.p2.legacy.splitrelay.invalid), each with
// a colon-separated host list that starts with the chosen host and falls
// back to the others in order, as Postfix's next-hop lists do (measured:
// Sendmail tries "[h1]:[h2]" in order).
//
// What the rest of the block is for:
//
//   - INPUT_MAIL_FILTER with F=T: when the milter cannot be reached, the
//     client gets a 4xx and keeps the message (measured: 451 4.3.2 at
//     MAIL); explicit timeouts (FilterTimeouts) replace Sendmail's 5-minute
//     connect timeout.
//   - Milter.macros.*: Sendmail ignores the macro list a milter asks for,
//     so the macros splitrelay reads are added to the site's lists: i (the
//     queue ID) at end of message, {tls_version} after HELO,
//     {auth_authen} at MAIL.
//   - A regex map tells host labels (p<N>, p<N>s<M>) from domain labels: a
//     label this configuration does not know (mail queued under other
//     host tables) is deferred, never delivered to a mangled address.
//   - A routing-namespace address whose route Sendmail does not know (the
//     .mc not rebuilt after adding a route) goes to the splitrelay-defer
//     mailer, a program that exits 75 (EX_TEMPFAIL): the message stays in
//     the queue. "$#error $@ 4.x" on a milter-added recipient drops it
//     silently (measured), and with no catch-all the address would leak
//     to the smart host. The mailer's A= contains $u, else Sendmail would
//     speak SMTP to the program.
//   - The suffix joins class P (pseudo-domains), so that canonify neither
//     queries DNS for routed addresses nor leaves them without the
//     trailing dot the rules match.
//   - Local_check_rcpt refuses the routing namespace from clients (the
//     milter refuses it too; recipients a milter adds do not pass
//     check_rcpt).
//
// Every generated line is m4-quoted: a route named "dnl" or "include"
// would otherwise be eaten by m4.
package sendmail
