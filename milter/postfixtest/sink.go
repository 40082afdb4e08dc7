package postfixtest

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Sink is a downstream SMTP server: Postfix's smtp-sink, which accepts
// every transaction and dumps it to a file (see ParseDump).
type Sink struct {
	Name string // smtp-sink's hostname (-h): greeting, EHLO reply, Received
	Addr string // 127.0.0.1:Port
	Port int
	Dir  string // dumps in Dir/dump, smtp-sink's own output in Dir/sink.log

	// Args are extra smtp-sink options, e.g. "-f", "RCPT" to refuse every
	// recipient with a 5xx (StartSinkArgs).
	Args []string

	dumpDir string
	cmd     *exec.Cmd
	done    chan error // receives cmd.Wait's result
}

// StartSink starts an smtp-sink named name on a free loopback port and
// registers a cleanup that stops it.
func StartSink(t testing.TB, name string) *Sink {
	t.Helper()
	return StartSinkArgs(t, name)
}

// StartSinkArgs is StartSink with extra smtp-sink(1) options: "-f", "RCPT"
// makes a server that refuses every recipient (5xx), "-r", "RCPT" one
// that defers them (4xx).
func StartSinkArgs(t testing.TB, name string, args ...string) *Sink {
	t.Helper()
	Require(t)
	dir := makeTempDir(t, "splitrelay-sink-")
	s := &Sink{Name: name, Dir: dir, dumpDir: filepath.Join(dir, "dump"), Args: args}
	t.Cleanup(func() {
		s.Stop(t)
		if t.Failed() {
			out, _ := os.ReadFile(filepath.Join(dir, "sink.log"))
			t.Logf("postfixtest: sink %s (%s) received %d message(s); its output:\n%s", name, s.Addr, len(s.messages(t)), out)
		}
		removeTempDir(t, dir)
	})
	if err := os.Mkdir(s.dumpDir, 0o755); err != nil {
		t.Fatalf("postfixtest: %v", err)
	}
	if os.Geteuid() == 0 {
		if err := chownTo(s.dumpDir, "nobody"); err != nil {
			t.Fatalf("postfixtest: %v", err)
		}
	}
	var err error
	for range portAttempts {
		s.Port = FreePort(t)
		s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(s.Port))
		if err = s.start(); !errors.Is(err, errPortTaken) {
			break
		}
	}
	if err != nil {
		t.Fatalf("postfixtest: %v", err)
	}
	return s
}

// NextHop is the transport(5) next hop that delivers to the sink,
// "smtp:[127.0.0.1]:Port".
func (s *Sink) NextHop() string {
	return fmt.Sprintf("smtp:[127.0.0.1]:%d", s.Port)
}

// Start (re)starts smtp-sink on the sink's port, e.g. after Stop to let
// deferred mail through.
func (s *Sink) Start(t testing.TB) {
	t.Helper()
	if s.cmd != nil {
		t.Fatalf("postfixtest: sink %s is already running", s.Name)
	}
	if err := s.start(); err != nil {
		t.Fatalf("postfixtest: %v", err)
	}
}

func (s *Sink) start() error {
	args := []string{"-4", "-h", s.Name, "-d", filepath.Join(s.dumpDir, "%Y%m%d%H%M%S.")}
	if os.Geteuid() == 0 {
		args = append(args, "-u", "nobody") // required as root
	}
	args = append(args, s.Args...)
	args = append(args, s.Addr, "256")
	logf, err := os.OpenFile(filepath.Join(s.Dir, "sink.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(tool("smtp-sink"), args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start smtp-sink: %w", err)
	}
	s.cmd, s.done = cmd, make(chan error, 1)
	go func() { s.done <- cmd.Wait() }()

	if err := waitListen(cmd.Process.Pid, s.Port, s.done, startTimeout); err != nil {
		if errors.Is(err, errExited) {
			s.cmd = nil
		} else {
			s.kill()
		}
		if portTaken(s.Port) {
			err = fmt.Errorf("%w (%w)", err, errPortTaken)
		}
		out, _ := os.ReadFile(filepath.Join(s.Dir, "sink.log"))
		return fmt.Errorf("smtp-sink %s: %w\n%s", strings.Join(args, " "), err, tail(string(out), 10))
	}
	return nil
}

// Stop kills smtp-sink (by PID) and waits for it to exit; connections to
// its port are then refused. Transactions it had not finished are removed
// from the dump directory: their clients never got a 250 for them.
func (s *Sink) Stop(t testing.TB) {
	t.Helper()
	if err := s.kill(); err != nil {
		t.Errorf("postfixtest: %v", err)
	}
}

func (s *Sink) kill() error {
	if s.cmd == nil {
		return nil
	}
	p := s.cmd.Process
	// Freeze it, so the set of unfinished dumps cannot change before it dies.
	_ = p.Signal(syscall.SIGSTOP)
	unfinished := s.openDumps()
	_ = p.Kill()
	s.cmd = nil
	select {
	case <-s.done:
	case <-time.After(commandTimeout):
		return fmt.Errorf("smtp-sink pid %d did not exit after SIGKILL", p.Pid)
	}
	var errs []error
	for _, f := range unfinished {
		if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// openDumps returns the dump files smtp-sink has open: transactions in
// progress. It reads /proc/PID/fd (Linux; root may read it for the sink
// running as nobody).
func (s *Sink) openDumps() []string {
	if s.cmd == nil {
		return nil
	}
	fdDir := fmt.Sprintf("/proc/%d/fd", s.cmd.Process.Pid)
	fds, err := os.ReadDir(fdDir)
	if err != nil {
		return nil
	}
	var open []string
	for _, fd := range fds {
		target, err := os.Readlink(filepath.Join(fdDir, fd.Name()))
		if err == nil && filepath.Dir(target) == s.dumpDir {
			open = append(open, target)
		}
	}
	return open
}

// Messages returns the transactions the sink has completed so far, oldest
// first. Transactions still in progress are left out.
func (s *Sink) Messages(t testing.TB) []Message {
	t.Helper()
	return s.messages(t)
}

func (s *Sink) messages(t testing.TB) []Message {
	entries, err := os.ReadDir(s.dumpDir)
	if err != nil {
		t.Fatalf("postfixtest: %v", err)
	}
	// Only after listing: a dump closed in between is complete; one opened
	// in between is not listed.
	open := s.openDumps()
	type dump struct {
		msg Message
		mod time.Time
	}
	var dumps []dump
	for _, e := range entries {
		path := filepath.Join(s.dumpDir, e.Name())
		if slices.Contains(open, path) {
			continue
		}
		raw, err := os.ReadFile(path)
		if errors.Is(err, os.ErrNotExist) {
			continue // RSET: smtp-sink removed it
		}
		if err != nil {
			t.Fatalf("postfixtest: %v", err)
		}
		fi, err := os.Stat(path)
		if err != nil {
			continue
		}
		m, err := ParseDump(raw)
		if errors.Is(err, ErrIncompleteDump) {
			continue
		}
		if err != nil {
			t.Fatalf("postfixtest: %s: %v", path, err)
		}
		m.Sink, m.File = s.Name, path
		dumps = append(dumps, dump{m, fi.ModTime()})
	}
	slices.SortStableFunc(dumps, func(a, b dump) int { return a.mod.Compare(b.mod) })
	msgs := make([]Message, len(dumps))
	for i, d := range dumps {
		msgs[i] = d.msg
	}
	return msgs
}

// WaitMessages waits until the sink has completed at least n transactions
// and returns them all; it fails the test after timeout.
func (s *Sink) WaitMessages(t testing.TB, n int, timeout time.Duration) []Message {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		msgs := s.Messages(t)
		if len(msgs) >= n {
			return msgs
		}
		if time.Now().After(deadline) {
			t.Fatalf("postfixtest: sink %s has %d message(s) after %v, want %d; recipients so far: %v", s.Name, len(msgs), timeout, n, s.Recipients(t))
		}
		time.Sleep(pollInterval)
	}
}

// Recipients returns the envelope recipients (RCPT TO addresses) of all
// transactions completed so far, in order.
func (s *Sink) Recipients(t testing.TB) []string {
	t.Helper()
	var addrs []string
	for _, m := range s.Messages(t) {
		addrs = append(addrs, m.Recipients()...)
	}
	return addrs
}

func chownTo(path, name string) error {
	u, err := user.Lookup(name)
	if err != nil {
		return fmt.Errorf("look up user %s: %w", name, err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return os.Chown(path, uid, gid)
}
