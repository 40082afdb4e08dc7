// Package postfixtest runs a real Postfix, smtp-sink and swaks for
// end-to-end tests, the way net/http/httptest runs an HTTP server.
//
// splitrelay's routing only works because of how Postfix treats recipients
// a milter adds: transport_maps route them, smtp_generic_maps restore them,
// and NOTIFY/ORCPT survive only when passed along (see POSTFIX.md). None of
// that can be checked against a fake MTA, so end-to-end tests start a
// private Postfix from the distribution's packages:
//
//   - Start builds a Postfix instance in a fresh temporary directory with its
//     own config, queue and data directories, its smtpd on a free loopback
//     port, logging to a file, local delivery switched off and every
//     destination without an explicit transport refused, so the instance
//     never reaches beyond 127.0.0.1 and never touches /etc/postfix or the
//     machine's own Postfix. With Options.IPv6 it also listens on [::1],
//     and Send connects there from an IPv6 Mail.Source.
//   - StartSink runs Postfix's smtp-sink as a downstream server that dumps
//     every transaction to a file; Messages parses those dumps, so a test can
//     assert the envelope (MAIL FROM, each RCPT TO with its ESMTP parameters)
//     and the message a destination received.
//   - Send drives swaks against the instance and returns its transcript and
//     exit code, so a test can assert what the SMTP client was told.
//
// Everything is bounded in time and cleaned up with t.Cleanup; processes are
// stopped by PID (or with `postfix stop` for the instance). When a test fails,
// the tail of the instance's log is written to t.Log.
//
// These tests need root (Postfix's master runs as root and drops to the
// postfix user) and the postfix and swaks packages. Without them Require skips
// the test, unless SPLITRELAY_E2E=1 is set, as `make test` does, in which case
// it fails: CI can never pass by skipping.
package postfixtest
