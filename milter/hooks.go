package milter

import (
	"fmt"
	"sync"
	"sync/atomic"

	gomilter "github.com/d--j/go-milter"
)

// Session accounting, and the warnings of the go-milter client that the
// watchdog probe (probe.go) uses, apart from the protocol callbacks in
// session.go.

// ProbeHost is the client name the watchdog's probe (Probe) connects with,
// with an unknown address family: Postfix never sends that pair for a
// real client (its unknown clients are named "unknown"), so the probe is
// left out of the counts and metrics.
const ProbeHost = "splitrelay-watchdog-probe.invalid"

// connected is called at the first event of an MTA session.
func (ss *session) connected(host, family string) {
	if host == ProbeHost && family == "unknown" {
		ss.probe = true
		return
	}
	if !ss.counted {
		ss.counted = true
		ss.s.obs.Session(1)
	}
}

// closed is called when the connection (or the MTA's use of it, at
// quit-new-connection) ends.
func (ss *session) closed() {
	if ss.counted {
		ss.counted = false
		ss.s.obs.Session(-1)
	}
}

// warnTo is the server that go-milter's warnings (what its client, the
// watchdog probe, finds wrong in our replies; the library reports them
// through one package variable) are logged and counted on: the last one
// created, which in the daemon is the only one.
var warnTo atomic.Pointer[Server]

var hookWarnings sync.Once

func reportWarnings(s *Server) {
	warnTo.Store(s)
	// The package variable is set once: servers created later (tests)
	// only swap warnTo, so no session goroutine reads it while it changes.
	hookWarnings.Do(func() {
		gomilter.LogWarning = func(format string, v ...any) {
			s := warnTo.Load()
			s.obs.ProtocolError()
			s.log.Warn("milter protocol error", KeyErr, fmt.Sprintf(format, v...))
		}
	})
}
