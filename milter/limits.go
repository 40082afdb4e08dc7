package milter

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"

	"github.com/splitrelay/splitrelay/milter/limits"
	"github.com/splitrelay/splitrelay/rules"
)

// The milter's side of the relay limits: each transaction gets an
// identifier unique across a fleet of gateways; the rules reserve its relay
// recipients at RCPT TO through txLimiter; the session commits the
// reservations when it accepts the message and releases them in every
// other case (abort, RSET, a new MAIL FROM, a refusal or tempfail at end
// of message, the connection closing).

// SetLimits sets the store of the relay counters; call it before Serve.
// Without one the Server counts in memory.
func (s *Server) SetLimits(st limits.Store) { s.limits = st }

// Limits returns the store of the relay counters.
func (s *Server) Limits() limits.Store { return s.limits }

// instanceID names this process in transaction identifiers: host, PID and
// a random part, so that two gateways sharing Redis never collide.
func instanceID() string {
	host, _ := os.Hostname()
	var b [4]byte
	rand.Read(b[:])
	return fmt.Sprintf("%s.%d.%s", host, os.Getpid(), hex.EncodeToString(b[:]))
}

// txLimiter binds the store to one transaction.
type txLimiter struct{ ss *session }

var _ rules.Limiter = txLimiter{}

func (l txLimiter) Reserve(r rules.Reservation) (rules.Exceeded, error) {
	ss := l.ss
	if ss.limitTx == "" {
		ss.limitTx = fmt.Sprintf("%s.%d", ss.s.instance, ss.s.txSeq.Add(1))
	}
	r.Tx = ss.limitTx
	ex, err := ss.s.limits.Reserve(r)
	if err == nil && ex == rules.NotExceeded {
		ss.reserved = true
	}
	if ex != rules.NotExceeded {
		ss.s.lobs.Exceeded(ex.String())
	}
	return ex, err
}

// commit counts the transaction's reservations: the message is accepted.
func (ss *session) commit() error {
	if !ss.reserved {
		return nil
	}
	ss.reserved = false
	return ss.s.limits.Commit(ss.limitTx)
}

// release drops the transaction's reservations, if any, and ends it.
func (ss *session) release() {
	if ss.reserved {
		ss.s.limits.Release(ss.limitTx)
	}
	ss.reserved, ss.limitTx = false, ""
}
