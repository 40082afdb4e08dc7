// Package sdtest is systemd's side of sd_notify(3) for tests: a unixgram
// socket whose datagrams (READY=1, STATUS=…, WATCHDOG=1) a test waits for.
// It is not part of the splitrelay binary.
package sdtest

import (
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Socket is systemd's side of sd_notify: a unixgram socket the
// test reads.
type Socket struct {
	Path string // for NOTIFY_SOCKET
	msgs chan string
}

// New listens on a fresh socket in a temporary directory.
func New(t testing.TB) *Socket {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	n := &Socket{Path: path, msgs: make(chan string, 1000)}
	go func() {
		buf := make([]byte, 4096)
		for {
			k, err := c.Read(buf)
			if err != nil {
				close(n.msgs)
				return
			}
			n.msgs <- string(buf[:k])
		}
	}()
	t.Cleanup(func() { c.Close() })
	return n
}

// Wait returns the first datagram for which ok holds, skipping others.
func (n *Socket) Wait(t testing.TB, what string, ok func(string) bool) string {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case m, open := <-n.msgs:
			if !open {
				t.Fatalf("notify socket closed waiting for %s", what)
			}
			if ok(m) {
				return m
			}
		case <-timeout:
			t.Fatalf("no %s from the daemon", what)
		}
	}
}

// Has matches a datagram holding every one of parts.
func Has(parts ...string) func(string) bool {
	return func(m string) bool {
		for _, p := range parts {
			if !strings.Contains(m, p) {
				return false
			}
		}
		return true
	}
}
