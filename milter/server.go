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
	"sync/atomic"
	"time"

	gomilter "github.com/d--j/go-milter"

	"github.com/splitrelay/splitrelay/milter/limits"
	"github.com/splitrelay/splitrelay/rules"
)

// Protocol is what we ask Postfix to send and which replies we give.
//
// We need the connection (client address) and HELO (name, TLS macros), MAIL
// FROM (sender, SIZE, {auth_authen}), RCPT TO (with a reply: the relay
// policy and the routing-namespace check refuse recipients there), the
// headers (for From, no reply) and end of message. We skip unknown
// commands and the end-of-headers event. The body comes without replies
// (see negotiate; dsn.go keeps it only for Postfix's own notices). We keep the reply to
// DATA: a milter that does not answer a small packet leaves Postfix's next
// write waiting for a delayed ACK, the ~40 ms per-message stall measured in
// POSTFIX.md; on TCP we also re-arm TCP_QUICKACK after every read
// (quickack_linux.go) for the packets that want no reply.
const Protocol = gomilter.OptNoUnknown | gomilter.OptNoEOH |
	gomilter.OptNoConnReply | gomilter.OptNoHeloReply | gomilter.OptNoMailReply |
	gomilter.OptNoHeaderReply

// Actions are the modifications we may make: replace recipients, with
// ESMTP arguments (NOTIFY, ORCPT) on the added ones, and the envelope
// sender (allowed_senders = "any" rewrites it to postmaster@), and the body
// of Postfix's own delivery notices (dsn.go).
const Actions = gomilter.OptAddRcpt | gomilter.OptRemoveRcpt | gomilter.OptAddRcptWithArgs | gomilter.OptChangeFrom | gomilter.OptChangeBody

// Server serves the milter protocol with the current rules. Rules can be
// swapped at any time (SIGHUP); each transaction keeps the rules it started
// with.
type Server struct {
	rules   atomic.Pointer[rules.Ruleset]
	log     *slog.Logger
	srv     *gomilter.Server
	connSeq atomic.Uint64
	now     func() time.Time
	obs     Observer
	stats   *Stats
	lobs    LimitsObserver
	limits  limits.Store
	// instance and txSeq name transactions (limits.go).
	instance string
	txSeq    atomic.Uint64
}

// New returns a Server deciding with rs and logging to log.
func New(rs *rules.Ruleset, log *slog.Logger) *Server {
	s := &Server{log: log, now: time.Now, stats: &Stats{}, lobs: nopObserver{}, instance: instanceID()}
	s.obs = tee{s.stats, nopObserver{}}
	reportWarnings(s)
	s.limits = limits.NewMemory(func() time.Time { return s.now() })
	s.rules.Store(rs)
	s.srv = gomilter.NewServer(
		gomilter.WithProtocol(Protocol),
		gomilter.WithAction(Actions),
		gomilter.WithMilter(func() gomilter.Milter { return s.newSession() }),
		gomilter.WithNegotiationCallback(s.negotiate),
		// Ask for the macros we read, per stage, so that an administrator
		// who trimmed milter_*_macros cannot silently turn off TLS or AUTH
		// detection (which would fail closed: relay refused). Postfix
		// honours a milter's macro list (protocol 6, SMFIF_SETSYMLIST).
		gomilter.WithMacroRequest(gomilter.StageHelo, []gomilter.MacroName{gomilter.MacroTlsVersion}),
		gomilter.WithMacroRequest(gomilter.StageMail, []gomilter.MacroName{gomilter.MacroAuthAuthen, gomilter.MacroTlsVersion}),
		gomilter.WithMacroRequest(gomilter.StageConnect, []gomilter.MacroName{gomilter.MacroMTAVersion, gomilter.MacroMTAFQDN}),
		gomilter.WithMacroRequest(gomilter.StageRcpt, []gomilter.MacroName{gomilter.MacroQueueId, gomilter.MacroRcptAddr}),
		gomilter.WithMacroRequest(gomilter.StageData, []gomilter.MacroName{gomilter.MacroQueueId}),
		gomilter.WithMacroRequest(gomilter.StageEOM, []gomilter.MacroName{gomilter.MacroQueueId}),
		gomilter.WithReadTimeout(ReadTimeout), // timeouts.go
		gomilter.WithWriteTimeout(WriteTimeout),
	)
	return s
}

// negotiate accepts milter protocol 6 only (we need add-recipient with
// ESMTP arguments and the no-reply flags). The body comes without replies
// (SMFIP_NR_BODY): the relay size limit needs the real size and dsn.go the
// text of Postfix's own notices. Postfix then pipelines a small message's
// body with the end of message, so it costs no extra system call, where
// answering its first chunk with SKIP cost a round trip per message:
// measured with make bench, SKIP gave 0.97x the no-op C milter's msg/s at
// 1.03x its CPU, no replies 1.05x at 0.89x. The price is that a large
// body streams through the milter (read in 64 KB chunks, nothing kept).
func (s *Server) negotiate(mtaVersion, _ uint32, mtaActions, actions gomilter.OptAction, mtaProtocol, protocol gomilter.OptProtocol, offered gomilter.DataSize) (uint32, gomilter.OptAction, gomilter.OptProtocol, gomilter.DataSize, error) {
	if mtaVersion < 6 {
		return 0, 0, 0, 0, fmt.Errorf("milter: MTA speaks milter protocol %d, splitrelay needs 6 (Postfix: milter_protocol = 6)", mtaVersion)
	}
	if actions&mtaActions != actions {
		return 0, 0, 0, 0, fmt.Errorf("milter: MTA does not offer the actions we need: offered %v, need %v", mtaActions, actions)
	}
	protocol |= gomilter.OptNoBodyReply
	if protocol&mtaProtocol != protocol {
		return 0, 0, 0, 0, fmt.Errorf("milter: MTA does not offer the protocol options we need: offered %v, need %v", mtaProtocol, protocol)
	}
	return 6, actions, protocol, offered, nil
}

// SetRules swaps the rules atomically; transactions already past MAIL FROM
// finish with the rules they started with.
func (s *Server) SetRules(rs *rules.Ruleset) { s.rules.Store(rs) }

// Rules returns the rules in force.
func (s *Server) Rules() *rules.Ruleset { return s.rules.Load() }

// Serve accepts milter connections on ln until Shutdown.
func (s *Server) Serve(ln net.Listener) error {
	err := s.srv.Serve(wrapListener(ln))
	if errors.Is(err, gomilter.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown stops accepting connections and waits, until ctx is done, for
// the MTA to finish the sessions in progress.
func (s *Server) Shutdown(ctx context.Context) error { return s.srv.Shutdown(ctx) }

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
