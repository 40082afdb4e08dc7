// Package sendmailtest runs a real, private Sendmail 8.17 for end-to-end
// tests, beside the Postfix of milter/postfixtest and without removing it,
// the way net/http/httptest runs an HTTP server. It is a test harness: no
// product code imports it.
//
// Debian installs one MTA at a time, so the Sendmail under test is never
// installed: contrib/scripts/deps.sh downloads Debian's packages
// (apt-get download sendmail-bin sendmail-base sendmail-cf m4 libwrap0)
// into a cache directory (CacheDir), and the harness unpacks them with
// dpkg -x into a private root next to them, once:
//
//   - the sendmail binary is copied without its setgid bit (the dynamic
//     loader ignores LD_LIBRARY_PATH for setgid programs, and the private
//     root's libwrap0 may be the only one on the machine);
//   - the m4 configuration files are relocated: every path naming
//     /usr/share/sendmail/cf names the private copy instead;
//   - m4 itself comes from the private root.
//
// Start then builds sendmail.cf the way an administrator does: Debian's
// stock sendmail.mc (cf/debian/sendmail.mc, with MAIL_SETTINGS_DIR and its
// /etc/mail/ includes pointing into the instance's directory), then
// Options.MC verbatim (the output of `splitrelay sendmail --format mc`),
// then the harness's own overrides (loopback port, queue and state files
// in the instance's directory, destinations for the test domains, TLS,
// SASL), all through m4, with no hand edits of the generated part.
//
// The daemon runs in its own UTS and mount namespaces (unshare -u -m):
// a fully qualified host name (with a short one Sendmail sleeps a minute
// looking for a domain), /dev/log bound to a datagram socket of the
// harness (Sendmail logs only to syslog; Log returns those lines), and,
// for SMTP AUTH, a private Cyrus SASL configuration bound over
// /usr/lib/sasl2. Nothing of the machine's /etc/mail, /etc/postfix or
// services is read or changed; the daemon is stopped by its PID (its
// process group), and the queue runners and deliveries that started
// groups of their own are waited for, then killed by PID (they are
// recognised by their working directory, the instance's queue).
//
// Pitfalls met on the way (Sendmail 8.17.1.9, Debian 12): with a short
// host name Sendmail sleeps a minute; TrustedUser=smmta (Debian's) is an
// unknown user here and makes the daemon exit 70 without a word, so the
// harness sets root; the stock greet_pause, conncontrol and ratecontrol
// features need access database entries for 127/8; on a shared machine
// the load average passes RefuseLA and QueueLA (connections refused,
// queue runs skipped), so both are set out of reach; canonify adds the
// trailing dot only to names it resolved, so the harness's destination
// rules match both forms; FEATURE() after MAILER() is an m4 error, so the
// harness defines _ACCEPT_UNRESOLVABLE_DOMAINS_ directly.
//
// Sinks and clients are milter/postfixtest's: StartSink (smtp-sink) and
// SendTo (swaks). Sendmail prefixes RCPT replies with "<address>... ".
//
// Without root, the cached packages, dpkg, unshare or mount, Require skips
// the test, or fails it under SPLITRELAY_E2E=1 as `make test` sets.
package sendmailtest
