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
// process group: the children it forked).
//
// Sinks and clients are milter/postfixtest's: StartSink (smtp-sink) and
// SendTo (swaks). Sendmail prefixes RCPT replies with "<address>... ".
//
// Without root, the cached packages, dpkg, unshare or mount, Require skips
// the test, or fails it under SPLITRELAY_E2E=1 as `make test` sets.
package sendmailtest
