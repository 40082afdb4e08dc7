package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/splitrelay/splitrelay/cmd/splitrelay/internal/sdtest"
	"github.com/splitrelay/splitrelay/milter"
	"github.com/splitrelay/splitrelay/rules"
)

// The watchdog is fed only while the probe succeeds; STATUS= says why not.
func TestMonitorStarvesWatchdog(t *testing.T) {
	ns := sdtest.New(t)
	t.Setenv("NOTIFY_SOCKET", ns.Path)
	rs, err := rules.Load("t.toml", []byte("[organization]\ndomains = [\"example.com\"]\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	st := newStatus(rs, &milter.Stats{})
	var mu sync.Mutex
	fail := true
	probe := func(context.Context) error {
		mu.Lock()
		defer mu.Unlock()
		if fail {
			return errors.New("hung")
		}
		return nil
	}
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&lockedBuffer{b: &logs}, nil))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go monitor(ctx, log, st, 200*time.Millisecond, probe)
	for range 3 {
		m := ns.Wait(t, "STATUS=", sdtest.Has("STATUS="))
		if strings.Contains(m, "WATCHDOG=1") || !strings.Contains(m, "WATCHDOG PROBE FAILING: hung") {
			t.Fatalf("failing probe: %q", m)
		}
	}
	mu.Lock()
	fail = false
	mu.Unlock()
	m := ns.Wait(t, "WATCHDOG=1", sdtest.Has("WATCHDOG=1"))
	if strings.Contains(m, "FAILING") {
		t.Errorf("recovered probe: %q", m)
	}
	cancel()
}

type lockedBuffer struct {
	mu sync.Mutex
	b  *bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func TestWatchdogInterval(t *testing.T) {
	tests := []struct {
		usec, pid string
		want      time.Duration
	}{
		{"", "", 0},
		{"30000000", "", 30 * time.Second},
		{"30000000", fmt.Sprint(os.Getpid()), 30 * time.Second},
		{"30000000", "1", 0}, // meant for another process
		{"x", "", 0},
	}
	for _, tc := range tests {
		t.Setenv("WATCHDOG_USEC", tc.usec)
		t.Setenv("WATCHDOG_PID", tc.pid)
		if got := watchdogInterval(); got != tc.want {
			t.Errorf("WATCHDOG_USEC=%q WATCHDOG_PID=%q: %v, want %v", tc.usec, tc.pid, got, tc.want)
		}
	}
}
