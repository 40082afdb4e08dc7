package milter

import (
	"log/slog"

	"github.com/splitrelay/splitrelay/rules"
)

// HeloObserver is an Observer that also counts relay clients with a HELO
// name the seed advises against ([relay] log_bad_helo). It is a separate
// interface so that Observers that do not care need not change.
type HeloObserver interface {
	// BadHelo is one SMTP session that relayed (or tried to) with a bad
	// HELO name; label is rules.HeloLocalhost or rules.HeloGatewayName.
	BadHelo(label string)
}

// heloCheck is a session's HELO verdict: set at each HELO/EHLO, reported
// once per session, at its first relay recipient.
type heloCheck struct {
	label    string // rules.BadHelo's label, "" for a real name
	reported bool
}

// noteHelo is the Helo hook: it compares the name with localhost names and
// the gateway's own name (macro j, Postfix's $myhostname).
func (ss *session) noteHelo(name string) {
	ss.helo.label = rules.BadHelo(name, ss.c.macro("j"))
}

// reportHelo is the RcptTo hook: on the session's first relay recipient
// (accepted or refused), a bad HELO is logged and counted when
// log_bad_helo is on. Mail to our domains is not concerned: the seed's
// advice is for the servers that relay through us.
func (ss *session) reportHelo(relay bool) {
	if !relay || ss.helo.label == "" || ss.helo.reported || ss.rules == nil ||
		ss.rules.Relay == nil || !ss.rules.Relay.LogBadHelo {
		return
	}
	ss.helo.reported = true
	ss.log.Warn("relay client HELO is not a real name", slog.String(KeyHelo, ss.client.Helo), slog.String(KeyReason, ss.helo.label))
	if o, ok := ss.s.obs.(HeloObserver); ok {
		o.BadHelo(ss.helo.label)
	}
}

// BadHelo passes a bad HELO on to those of the two Observers that count
// them (observer.go's tee).
func (t tee) BadHelo(label string) {
	for _, o := range t {
		if h, ok := o.(HeloObserver); ok {
			h.BadHelo(label)
		}
	}
}

var _ HeloObserver = tee{}
