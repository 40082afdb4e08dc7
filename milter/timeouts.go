package milter

import "time"

// Timeouts on the milter connection. Postfix opens one milter connection
// per SMTP session and sends a packet per client command (and the
// message's headers and body at DATA), so ReadTimeout bounds the client's
// idle time as much as Postfix's: it must outlast every pause a relay
// client may take between two commands, and the whole transfer of a
// message's body when the body is not sent to us (no relay size limit).
//
// The clients of seed 003 wait long: GroupWise's GWIA is set to 5-minute
// command and TCP read timeouts, Sendmail's default idle time is an hour,
// Qmail's 1,200 s, and Postfix's smtpd itself waits smtpd_timeout (300 s
// by default) for each client command. A read timeout at or below these
// would close the milter connection under a slow but legitimate session;
// Postfix would then apply milter_default_action (tempfail) to a message
// that did nothing wrong.
const (
	// ReadTimeout is how long the milter waits for Postfix's next packet:
	// libmilter's default (smfi_settimeout, 7210 s), two hours and ten
	// seconds. Postfix ends the milter connection with the SMTP session,
	// so a long value holds nothing open that Postfix does not.
	ReadTimeout = 7210 * time.Second
	// NegotiationTimeout bounds the wait for the option negotiation, the
	// first packet: an MTA sends it as soon as it has connected, so
	// whatever connects and says nothing (a port scan of an inet listen
	// address) is dropped instead of holding a connection for
	// ReadTimeout.
	NegotiationTimeout = 10 * time.Second
	// WriteTimeout bounds writing a reply to Postfix, which is waiting
	// for it (milter_command_timeout, 30 s by default, on its side).
	WriteTimeout = 30 * time.Second
)
