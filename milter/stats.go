package milter

import (
	"fmt"
	"sync/atomic"
	"time"
)

// Stats counts traffic since the daemon started, for systemd's STATUS=
// line (the Prometheus metrics, when enabled, hold the details). Its
// methods are the Observer's and are safe for concurrent use.
type Stats struct {
	sessions       atomic.Int64
	messages       atomic.Uint64
	tempfails      atomic.Uint64
	routed, copied atomic.Uint64
	rejects        atomic.Uint64
	protocolErrors atomic.Uint64
}

var _ Observer = (*Stats)(nil)

func (st *Stats) Recipient(action, _, _ string) {
	switch action {
	case "route":
		st.routed.Add(1)
	case "copy":
		st.copied.Add(1)
	}
}

func (st *Stats) Message(outcome string) {
	st.messages.Add(1)
	if outcome == "tempfail" {
		st.tempfails.Add(1)
	}
}

func (st *Stats) Rejected(string)                { st.rejects.Add(1) }
func (st *Stats) Callback(string, time.Duration) {}
func (st *Stats) Session(delta int)              { st.sessions.Add(int64(delta)) }
func (st *Stats) ProtocolError()                 { st.protocolErrors.Add(1) }

// String is a one-line traffic summary: "2 sessions, 10 messages (1
// tempfailed), 3 routed, 1 copied, 2 rejected, 0 protocol errors".
func (st *Stats) String() string {
	return fmt.Sprintf("%d sessions, %d messages (%d tempfailed), %d routed, %d copied, %d rejected, %d protocol errors",
		st.sessions.Load(), st.messages.Load(), st.tempfails.Load(), st.routed.Load(), st.copied.Load(),
		st.rejects.Load(), st.protocolErrors.Load())
}

// Stats returns the server's traffic counters.
func (s *Server) Stats() *Stats { return s.stats }
