package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/splitrelay/splitrelay/milter"
	"github.com/splitrelay/splitrelay/milter/postfixtest"
	"github.com/splitrelay/splitrelay/rules"
)

// notifySocket is systemd's side of sd_notify: a unixgram socket the
// test reads.
type notifySocket struct {
	path string
	msgs chan string
}

func newNotifySocket(t *testing.T) *notifySocket {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	n := &notifySocket{path: path, msgs: make(chan string, 1000)}
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

// wait returns the first datagram for which ok holds, skipping others.
func (n *notifySocket) wait(t *testing.T, what string, ok func(string) bool) string {
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

func has(parts ...string) func(string) bool {
	return func(m string) bool { return containsAll(m, parts) }
}

// TestSystemdNotify runs the daemon as systemd would (NOTIFY_SOCKET,
// WATCHDOG_USEC) and reloads it the way the unit's ExecReload= does:
// READY with STATUS= naming the configuration, WATCHDOG=1 fed by the probe,
// a refused reload that exits 1 and shows in STATUS=, an accepted one.
func TestSystemdNotify(t *testing.T) {
	bin := binary(t)
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "splitrelay.toml")
	good := fmt.Sprintf("[milter]\nlisten = \"inet:127.0.0.1:%d\"\n[organization]\ndomains = [\"example.com\"]\n", postfixtest.FreePort(t))
	if err := os.WriteFile(cfgPath, []byte(good), 0o644); err != nil {
		t.Fatal(err)
	}
	first, err := loadConfig(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	ns := newNotifySocket(t)
	cmd := exec.Command(bin, "run", "-c", cfgPath)
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+ns.path, "WATCHDOG_USEC=2000000", "JOURNAL_STREAM=")
	var mu sync.Mutex
	var logs bytes.Buffer
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			mu.Lock()
			logs.WriteString(sc.Text() + "\n")
			mu.Unlock()
		}
		cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(40 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
		mu.Lock()
		t.Logf("splitrelay log:\n%s", logs.String())
		mu.Unlock()
	})
	pid := fmt.Sprint(cmd.Process.Pid)

	ready := ns.wait(t, "READY=1", has("READY=1"))
	if !strings.Contains(ready, "STATUS=config "+first.ID+" loaded ") || !strings.Contains(ready, "0 sessions, 0 messages") {
		t.Errorf("READY without the status line: %q", ready)
	}
	ns.wait(t, "WATCHDOG=1", has("WATCHDOG=1"))

	// A broken file: reload exits 1, says why, the daemon keeps its rules.
	broken := strings.Replace(good, `domains = ["example.com"]`, `domains = ["example.com"]`+"\nroute = 1", 1)
	if err := os.WriteFile(cfgPath, []byte(broken), 0o644); err != nil {
		t.Fatal(err)
	}
	code, stdout, errOut := runCmd("reload", "-c", cfgPath, "--pid", pid)
	if code != 1 || stdout != "" || !strings.Contains(errOut, cfgPath+":5:1: organization.route: unknown key") ||
		!strings.Contains(errOut, "refused; the daemon keeps configuration "+first.ID) {
		t.Errorf("reload of a broken file: exit %d\nstdout %q\nstderr %q", code, stdout, errOut)
	}
	ns.wait(t, "RELOADING=1", has("RELOADING=1", "MONOTONIC_USEC="))
	st := ns.wait(t, "READY=1 after the refused reload", has("READY=1"))
	if !strings.Contains(st, "config "+first.ID) || !strings.Contains(st, "RELOAD REFUSED") {
		t.Errorf("status after a refused reload: %q", st)
	}

	// A good change: reload exits 0 with the new id in force.
	changed := good + "# changed\n"
	if err := os.WriteFile(cfgPath, []byte(changed), 0o644); err != nil {
		t.Fatal(err)
	}
	second, err := loadConfig(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	code, stdout, errOut = runCmd("reload", "-c", cfgPath, "--pid", pid)
	if code != 0 || stdout != cfgPath+" reloaded: configuration "+second.ID+" in force\n" || errOut != "" {
		t.Errorf("reload: exit %d\nstdout %q\nstderr %q", code, stdout, errOut)
	}
	st = ns.wait(t, "READY=1 after the reload", has("READY=1"))
	if !strings.Contains(st, "config "+second.ID) || strings.Contains(st, "REFUSED") {
		t.Errorf("status after the reload: %q", st)
	}
	ns.wait(t, "WATCHDOG=1 after the reload", has("WATCHDOG=1"))
	mu.Lock()
	l := logs.String()
	mu.Unlock()
	for _, want := range []string{
		`msg="splitrelay started"`, "config_id=" + first.ID,
		`msg="reload refused; keeping the running rules"`,
		`msg="configuration reloaded"`, "config_id=" + second.ID,
	} {
		if !strings.Contains(l, want) {
			t.Errorf("log has no %q", want)
		}
	}

	// No daemon at that pid: exit 1, not a silent success.
	cmd.Process.Signal(syscall.SIGTERM)
	<-exited
	code, _, errOut = runCmd("reload", "-c", cfgPath, "--pid", pid)
	if code != 1 || !strings.Contains(errOut, "cannot reach the daemon") {
		t.Errorf("reload without a daemon: exit %d, %q", code, errOut)
	}
}

// The watchdog is fed only while the probe succeeds; STATUS= says why not.
func TestMonitorStarvesWatchdog(t *testing.T) {
	ns := newNotifySocket(t)
	t.Setenv("NOTIFY_SOCKET", ns.path)
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
		m := ns.wait(t, "STATUS=", has("STATUS="))
		if strings.Contains(m, "WATCHDOG=1") || !strings.Contains(m, "WATCHDOG PROBE FAILING: hung") {
			t.Fatalf("failing probe: %q", m)
		}
	}
	mu.Lock()
	fail = false
	mu.Unlock()
	m := ns.wait(t, "WATCHDOG=1", has("WATCHDOG=1"))
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
