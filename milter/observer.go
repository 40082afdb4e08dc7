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
}

type nopObserver struct{}

func (nopObserver) Recipient(string, string, string) {}
func (nopObserver) Message(string)                   {}
func (nopObserver) Rejected(string)                  {}
func (nopObserver) Callback(string, time.Duration)   {}

// limits.Observer, and Exceeded, for the relay limits.
func (nopObserver) StoreOp(string, string, time.Duration, bool) {}
func (nopObserver) Fallback(bool)                               {}
func (nopObserver) Exceeded(string)                             {}

// SetObserver sets the Observer; call it before Serve.
func (s *Server) SetObserver(o Observer) {
	if o == nil {
		o = nopObserver{}
	}
	s.obs = o
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
