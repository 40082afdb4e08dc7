package milter

import (
	"time"

	"github.com/splitrelay/splitrelay/milter/limits"
)

// Observer is told what the milter decides, for metrics. The daemon passes
// a Prometheus implementation; the default does nothing. Methods are
// called on the hot path: they must be cheap and safe for concurrent use.
type Observer interface {
	// Recipient is one recipient's outcome: action is accept, route, copy
	// or reject; route and rule are "" when none applies. In dry run the
	// would-be action is reported.
	Recipient(action, route, rule string)
	// Message is one message's outcome at end of message: accept or
	// tempfail.
	Message(outcome string)
	// Rejected is a refusal sent to the client, by a stable reason label
	// (routing_namespace, ...).
	Rejected(reason string)
	// Callback is how long a milter callback took (stage: rcpt, eom).
	Callback(stage string, d time.Duration)
	// Session is an MTA session (milter connection) that starts (delta
	// 1) or ends (-1); the watchdog's probe is not counted.
	Session(delta int)
	// ProtocolError is a milter protocol problem (a broken or timed-out
	// connection, a failed negotiation, a malformed packet: conn.go), or
	// one the watchdog probe's go-milter client reported.
	ProtocolError()
}

type nopObserver struct{}

func (nopObserver) Recipient(string, string, string) {}
func (nopObserver) Message(string)                   {}
func (nopObserver) Rejected(string)                  {}
func (nopObserver) Callback(string, time.Duration)   {}
func (nopObserver) Session(int)                      {}
func (nopObserver) ProtocolError()                   {}

// limits.Observer, and Exceeded, for the relay limits.
func (nopObserver) StoreOp(string, string, time.Duration, bool) {}
func (nopObserver) Fallback(bool)                               {}
func (nopObserver) Exceeded(string)                             {}

// SetObserver sets the Observer; call it before Serve. The server's own
// Stats are kept whatever the Observer.
func (s *Server) SetObserver(o Observer) {
	if o == nil {
		o = nopObserver{}
	}
	s.obs = tee{s.stats, o}
	if lo, ok := o.(LimitsObserver); ok {
		s.lobs = lo
	} else {
		s.lobs = nopObserver{}
	}
}

// LimitsObserver is an Observer that is also told about the relay limit
// store and the limits reached; SetObserver uses it when o implements it.
type LimitsObserver interface {
	limits.Observer
	// Exceeded is a relay recipient refused (in dry run: that would be)
	// because a rolling limit was reached, by the limit's label.
	Exceeded(limit string)
}

// tee tells two Observers.
type tee [2]Observer

func (t tee) Recipient(action, route, rule string) {
	t[0].Recipient(action, route, rule)
	t[1].Recipient(action, route, rule)
}
func (t tee) Message(outcome string) { t[0].Message(outcome); t[1].Message(outcome) }
func (t tee) Rejected(reason string) { t[0].Rejected(reason); t[1].Rejected(reason) }
func (t tee) Callback(stage string, d time.Duration) {
	t[0].Callback(stage, d)
	t[1].Callback(stage, d)
}
func (t tee) Session(delta int) { t[0].Session(delta); t[1].Session(delta) }
func (t tee) ProtocolError()    { t[0].ProtocolError(); t[1].ProtocolError() }
