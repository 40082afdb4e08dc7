// Package milter adapts the rule engine to the milter protocol: protocol
// events in (envelope, From header), rules decisions out (recipient
// deletions and additions in the routing namespace, RCPT rejections). It
// owns the logging of decisions.
//
// Postfix gives a milter no way to choose a transport, so a routed
// recipient bob@example.com is replaced by bob@example.com.<route>.<suffix>;
// Postfix's transport_maps send that to the route's transport, whose
// smtp_generic_maps restore bob@example.com (see milter/postfix and
// POSTFIX.md in the design notes).
package milter

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/splitrelay/splitrelay/milter/limits"
	"github.com/splitrelay/splitrelay/milter/wire"
	"github.com/splitrelay/splitrelay/rules"
)

// Protocol is what we ask Postfix to send and which replies we give.
//
// We need the connection (client address) and HELO (name, TLS macros), MAIL
// FROM (sender, SIZE, {auth_authen}), RCPT TO (with a reply: the relay
// policy and the routing-namespace check refuse recipients there), the
// headers (for From, no reply), the body and end of message. We skip
// unknown commands and the end-of-headers event.
//
// The body comes without replies (SMFIP_NR_BODY): the relay size limit
// needs the real size and dsn.go the text of Postfix's own notices.
// Postfix then pipelines a small message's body with the end of message,
// so it costs no extra system call, where answering its first chunk with
// SKIP cost a round trip per message: measured with make bench, SKIP gave
// 0.97x the no-op C milter's msg/s at 1.03x its CPU, no replies 1.05x at
// 0.89x. The price is that a large body streams through the milter (read
// in 64 KB chunks, nothing kept).
//
// We keep the reply to DATA: a milter that does not answer a small packet
// leaves Postfix's next write waiting for a delayed ACK, the ~40 ms
// per-message stall measured in POSTFIX.md; on TCP we also re-arm
// TCP_QUICKACK after every read (quickack_linux.go) for the packets that
// want no reply.
const Protocol = wire.ProtoNoUnknown | wire.ProtoNoEOH |
	wire.ProtoNRConn | wire.ProtoNRHelo | wire.ProtoNRMail |
	wire.ProtoNRHeader | wire.ProtoNRBody

// Actions are the modifications we may make: replace recipients, with
// ESMTP arguments (NOTIFY, ORCPT) on the added ones, and the envelope
// sender (allowed_senders = "any" rewrites it to postmaster@), and the body
// of Postfix's own delivery notices (dsn.go).
const Actions = wire.ActAddRcpt | wire.ActDelRcpt | wire.ActAddRcptPar | wire.ActChangeFrom | wire.ActChangeBody

// macroRequests are the macros we read, per stage, asked for at
// negotiation so that an administrator who trimmed milter_*_macros cannot
// silently turn off TLS or AUTH detection (which would fail closed: relay
// refused). Postfix honours a milter's macro list (protocol 6,
// SMFIF_SETSYMLIST), and it replaces milter_rcpt_macros: {rcpt_addr}, the
// recipient as Postfix stores it, is only sent because we ask (session.go).
var macroRequests = []struct {
	stage uint32
	names string
}{
	{wire.SymConnect, "v j"},                      // MTA version and name
	{wire.SymHelo, "{tls_version}"},               // after STARTTLS
	{wire.SymMail, "{auth_authen} {tls_version}"}, // SASL login, TLS
	{wire.SymRcpt, "i {rcpt_addr}"},               // queue ID, stored recipient
	{wire.SymData, "i"},
	{wire.SymEOM, "i"},
}

// Server serves the milter protocol with the current rules. Rules can be
// swapped at any time (SIGHUP); each transaction keeps the rules it started
// with.
type Server struct {
	rules   atomic.Pointer[rules.Ruleset]
	log     *slog.Logger
	connSeq atomic.Uint64
	now     func() time.Time
	obs     Observer
	stats   *Stats
	lobs    LimitsObserver
	limits  limits.Store
	// instance and txSeq name transactions (limits.go).
	instance string
	txSeq    atomic.Uint64
	// negTimeout is NegotiationTimeout (tests shorten it).
	negTimeout time.Duration

	// connections, for Shutdown
	mu        sync.Mutex
	closing   atomic.Bool
	listeners map[net.Listener]struct{}
	conns     map[net.Conn]struct{}
	done      chan struct{} // closed when the last connection ends during Shutdown
}

// New returns a Server deciding with rs and logging to log.
func New(rs *rules.Ruleset, log *slog.Logger) *Server {
	s := &Server{log: log, now: time.Now, stats: &Stats{}, lobs: nopObserver{}, instance: instanceID(), negTimeout: NegotiationTimeout,
		listeners: map[net.Listener]struct{}{}, conns: map[net.Conn]struct{}{}}
	s.obs = tee{s.stats, nopObserver{}}
	reportWarnings(s) // the watchdog probe's go-milter client (hooks.go)
	s.limits = limits.NewMemory(func() time.Time { return s.now() })
	s.rules.Store(rs)
	return s
}

// SetRules swaps the rules atomically; transactions already past MAIL FROM
// finish with the rules they started with.
func (s *Server) SetRules(rs *rules.Ruleset) { s.rules.Store(rs) }

// Rules returns the rules in force.
func (s *Server) Rules() *rules.Ruleset { return s.rules.Load() }

// ErrServerClosed is returned by Serve after Shutdown.
var ErrServerClosed = errors.New("milter: server closed")

// Serve accepts milter connections on ln until Shutdown, and serves each
// in its own goroutine.
func (s *Server) Serve(ln net.Listener) error {
	ln = wrapListener(ln)
	s.mu.Lock()
	if s.closing.Load() {
		s.mu.Unlock()
		ln.Close()
		return nil
	}
	s.listeners[ln] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, ln)
		s.mu.Unlock()
	}()
	for {
		nc, err := ln.Accept()
		if err != nil {
			if s.closing.Load() {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(10 * time.Millisecond) // EMFILE and the like: retry, as net/http does
				continue
			}
			return err
		}
		if !s.track(nc, true) {
			nc.Close()
			continue
		}
		go func() {
			defer s.track(nc, false)
			s.serve(nc) // conn.go
		}()
	}
}

// track adds or removes a connection; it refuses new ones once Shutdown
// has begun.
func (s *Server) track(nc net.Conn, add bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if add {
		if s.closing.Load() {
			return false
		}
		s.conns[nc] = struct{}{}
		return true
	}
	delete(s.conns, nc)
	if len(s.conns) == 0 && s.done != nil {
		close(s.done)
		s.done = nil
	}
	return true
}

// Shutdown stops accepting connections and waits, until ctx is done, for
// the MTA to finish the sessions in progress. Postfix keeps a milter
// connection for a whole SMTP session and closes it at the end; when ctx
// ends first the remaining connections are closed, and Postfix applies
// milter_default_action to their messages in progress.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing.Store(true)
	for ln := range s.listeners {
		ln.Close()
	}
	var done chan struct{}
	if len(s.conns) > 0 {
		if s.done == nil { // a second Shutdown waits on the same channel
			s.done = make(chan struct{})
		}
		done = s.done
	}
	s.mu.Unlock()
	if done == nil {
		return nil
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		s.mu.Lock()
		for nc := range s.conns {
			nc.Close()
		}
		s.mu.Unlock()
		return ctx.Err()
	}
}

// Listen opens the listener for a [milter] listen address. A stale unix
// socket is removed first and the new one is made group-writable so that
// Postfix (same group) can connect.
func Listen(listen string) (net.Listener, error) {
	network, addr, err := rules.ParseListen(listen)
	if err != nil {
		return nil, err
	}
	if network != "unix" {
		return net.Listen(network, addr)
	}
	if err := os.MkdirAll(filepath.Dir(addr), 0o750); err != nil {
		return nil, fmt.Errorf("listen %s: %w", listen, err)
	}
	if fi, err := os.Lstat(addr); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("listen %s: %s exists and is not a socket", listen, addr)
		}
		if c, err := net.Dial("unix", addr); err == nil {
			c.Close()
			return nil, fmt.Errorf("listen %s: another process is serving this socket", listen)
		}
		os.Remove(addr)
	}
	ln, err := net.Listen("unix", addr)
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(addr, 0o660); err != nil {
		ln.Close()
		return nil, fmt.Errorf("listen %s: %w", listen, err)
	}
	return ln, nil
}
