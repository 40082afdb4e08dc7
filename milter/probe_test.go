package milter

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	gomilter "github.com/d--j/go-milter"

	"github.com/splitrelay/splitrelay/rules"
)

// countingObserver records sessions and callbacks.
type countingObserver struct {
	nopObserver
	sessions, callbacks, protocolErrors int
}

func (o *countingObserver) Session(d int)                  { o.sessions += d }
func (o *countingObserver) Callback(string, time.Duration) { o.callbacks++ }
func (o *countingObserver) ProtocolError()                 { o.protocolErrors++ }

// The probe makes a full round trip up to RCPT, also with a relay policy
// that refuses clients without an address, and is left out of the counts.
func TestProbe(t *testing.T) {
	relay := strings.ReplaceAll(testConfig, "%DRY%", "false") + `
[relay]
require_network = true
networks = [{ cidr = "192.0.2.0/24", description = "t", enabled = true }]
`
	for name, cfg := range map[string]string{"split": strings.ReplaceAll(testConfig, "%DRY%", "false"), "relay": relay} {
		t.Run(name, func(t *testing.T) {
			rs, err := rules.Load("t.toml", []byte(cfg), nil)
			if err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			s := New(rs, slog.New(slog.NewTextHandler(&lockedWriter{w: &buf}, &slog.HandlerOptions{Level: slog.LevelDebug})))
			obs := &countingObserver{}
			s.SetObserver(obs)
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			go s.Serve(ln)
			defer s.Shutdown(context.Background())
			network, addr := ProbeAddr(ln)
			for range 3 {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				err := Probe(ctx, network, addr, rs.Domains[0])
				cancel()
				if err != nil {
					t.Fatalf("probe: %v\n%s", err, buf.String())
				}
			}
			if obs.sessions != 0 || obs.callbacks != 0 || obs.protocolErrors != 0 {
				t.Errorf("probe counted: %+v", obs)
			}
			if strings.Contains(buf.String(), "level=WARN") || strings.Contains(buf.String(), "level=ERROR") {
				t.Errorf("probe logged a problem:\n%s", buf.String())
			}
		})
	}
}

func TestProbeFails(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// accepts and never answers: a hung daemon
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	defer ln.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	if err := Probe(ctx, "tcp", ln.Addr().String(), "example.com"); err == nil {
		t.Fatal("probe of a hung milter succeeded")
	}
	if err := Probe(context.Background(), "unix", "/nonexistent/milter.sock", "example.com"); err == nil {
		t.Fatal("probe of a missing socket succeeded")
	}
}

func TestProbeAddr(t *testing.T) {
	ln, err := net.Listen("tcp", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	network, addr := ProbeAddr(ln)
	if network != "tcp" || !strings.HasPrefix(addr, "127.0.0.1:") {
		t.Errorf("ProbeAddr = %s %s", network, addr)
	}
}

// A real MTA session counts while it lasts.
func TestSessionsCounted(t *testing.T) {
	c, _, s := startServer(t, false)
	obs := &countingObserver{}
	s.SetObserver(obs)
	sess, err := c.Session(nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sess.Conn("mx.client.test", '4', 25, "192.0.2.99"); err != nil {
		t.Fatal(err)
	}
	if _, err := sess.Helo("client.test"); err != nil {
		t.Fatal(err)
	}
	// the server has handled connect once it answers a later command
	if _, err := sess.Mail("a@client.test", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := sess.Rcpt("alice@example.com", ""); err != nil {
		t.Fatal(err)
	}
	if got := s.Stats().sessions.Load(); got != 1 {
		t.Errorf("sessions during a session = %d, want 1", got)
	}
	sess.Close()
	deadline := time.Now().Add(10 * time.Second)
	for s.Stats().sessions.Load() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("sessions after close = %d, want 0", s.Stats().sessions.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !strings.HasPrefix(s.Stats().String(), "0 sessions, 0 messages") {
		t.Errorf("stats: %s", s.Stats())
	}
}

// A failed negotiation is a protocol error: counted and logged.
func TestProtocolErrorCounted(t *testing.T) {
	rs, err := rules.Load("t.toml", []byte(strings.ReplaceAll(testConfig, "%DRY%", "false")), nil)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var buf bytes.Buffer
	logs := func() string { mu.Lock(); defer mu.Unlock(); return buf.String() }
	s := New(rs, slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return buf.Write(p)
	}), nil)))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(ln)
	defer s.Shutdown(context.Background())
	c := gomilter.NewClient("tcp", ln.Addr().String(), gomilter.WithMaximumVersion(2), gomilter.WithAction(0), gomilter.WithProtocols(0))
	if sess, err := c.Session(nil); err == nil {
		sess.Close()
	}
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(logs(), `msg="milter protocol error"`) {
		if time.Now().After(deadline) {
			t.Fatalf("no protocol error logged:\n%s", logs())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if n := s.Stats().protocolErrors.Load(); n != 1 {
		t.Errorf("%d protocol errors counted, want 1", n)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
