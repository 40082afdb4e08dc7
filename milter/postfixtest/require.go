package postfixtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// EnvE2E is the environment variable that turns a missing prerequisite into
// a test failure instead of a skip. `make test` sets it to 1.
const EnvE2E = "SPLITRELAY_E2E"

// commandTimeout bounds every Postfix command the package runs (postconf,
// postfix start/stop/reload, postqueue).
const commandTimeout = 30 * time.Second

// tools are the programs the package runs, found in PATH or in the
// directories Debian installs them to (a test's PATH often lacks /usr/sbin).
var tools = []string{"postfix", "postconf", "postqueue", "smtp-sink", "swaks", "sendmail"}

var toolPaths = sync.OnceValues(func() (map[string]string, error) {
	paths := make(map[string]string)
	var missing []string
	for _, name := range tools {
		p, err := lookTool(name)
		if err != nil {
			missing = append(missing, name)
			continue
		}
		paths[name] = p
	}
	if len(missing) > 0 {
		return paths, fmt.Errorf("postfixtest: %s not found (install the Debian packages: apt-get install postfix swaks, or run make deps)", strings.Join(missing, ", "))
	}
	return paths, nil
})

func lookTool(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/sbin", "/usr/bin", "/sbin", "/bin"} {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", exec.ErrNotFound
}

// tool returns the path of one of tools; call Require first.
func tool(name string) string {
	paths, _ := toolPaths()
	if p, ok := paths[name]; ok {
		return p
	}
	return name
}

// Require skips the test when Postfix, smtp-sink or swaks is missing or the
// test does not run as root (Postfix's master must), and fails it instead
// when SPLITRELAY_E2E=1.
func Require(t testing.TB) {
	t.Helper()
	_, err := toolPaths()
	if err == nil && os.Geteuid() != 0 {
		err = errors.New("postfixtest: a private Postfix needs root (its master process runs as root)")
	}
	if err == nil {
		return
	}
	missing(t, err.Error())
}

// missing skips the test for a missing prerequisite, or fails it under
// SPLITRELAY_E2E=1.
func missing(t testing.TB, what string) {
	t.Helper()
	if os.Getenv(EnvE2E) == "1" {
		t.Fatalf("%s (%s=1: end-to-end tests may not be skipped)", what, EnvE2E)
	}
	t.Skipf("%s; skipping (set %s=1 to make this a failure)", what, EnvE2E)
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("postfixtest: find a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// FreePortIPv6 returns a TCP port that was free a moment ago on both
// 127.0.0.1 and [::1], for a server that listens on both (Options.IPv6).
func FreePortIPv6(t testing.TB) int {
	t.Helper()
	for range 20 {
		if port := FreePort(t); !portTaken6(port) {
			return port
		}
	}
	t.Fatalf("postfixtest: no port free on both 127.0.0.1 and [::1] (has lo an IPv6 address?)")
	return 0
}

// errExited means a server process ended before it listened.
var errExited = errors.New("exited")

// errPortTaken means another process took the port FreePort found before
// our server could bind it; Start and StartSink then try another port, up
// to portAttempts times.
var errPortTaken = errors.New("port taken by another process")

const portAttempts = 3

// portTaken reports whether something listens on 127.0.0.1:port.
func portTaken(port int) bool {
	l, err := net.Listen("tcp4", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return errors.Is(err, syscall.EADDRINUSE)
	}
	l.Close()
	return false
}

// portTaken6 reports whether [::1]:port cannot be bound: something
// listens there, or the machine has no IPv6 loopback.
func portTaken6(port int) bool {
	l, err := net.Listen("tcp6", net.JoinHostPort("::1", strconv.Itoa(port)))
	if err != nil {
		return true
	}
	l.Close()
	return false
}

// waitAccept waits until addr accepts TCP connections.
func waitAccept(addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s does not accept connections after %v: %w", addr, timeout, err)
		}
		time.Sleep(pollInterval)
	}
}

// waitListen waits until process pid listens on 127.0.0.1:port, so that a
// port someone else took since FreePort is not mistaken for ours (where
// /proc cannot tell, until the port accepts connections). exited, if not
// nil, delivers the process's end.
func waitListen(pid, port int, exited <-chan error, timeout time.Duration) error {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	deadline := time.Now().Add(timeout)
	for {
		select {
		case err := <-exited:
			return fmt.Errorf("%w before listening on %s: %v", errExited, addr, err)
		default:
		}
		yes, known := listening(pid, port)
		if !known {
			if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
				c.Close()
				yes = true
			}
		}
		if yes {
			return nil
		}
		if time.Now().After(deadline) {
			if known {
				return fmt.Errorf("process %d does not listen on %s after %v (port taken?)", pid, addr, timeout)
			}
			return fmt.Errorf("%s does not accept connections after %v", addr, timeout)
		}
		time.Sleep(pollInterval)
	}
}

// listening reports whether process pid has a socket listening on
// 127.0.0.1:port, from /proc/net/tcp and /proc/PID/fd; known is false where
// they cannot be read.
func listening(pid, port int) (yes, known bool) {
	table, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		return false, false
	}
	fdDir := fmt.Sprintf("/proc/%d/fd", pid)
	fds, err := os.ReadDir(fdDir)
	if err != nil {
		return false, !errors.Is(err, os.ErrPermission)
	}
	// local_address is the IPv4 address in host byte order and the port,
	// in hex; state 0A is LISTEN.
	local := map[string]bool{fmt.Sprintf("0100007F:%04X", port): true, fmt.Sprintf("7F000001:%04X", port): true}
	inodes := map[string]bool{}
	for _, line := range strings.Split(string(table), "\n") {
		f := strings.Fields(line)
		if len(f) > 9 && local[f[1]] && f[3] == "0A" {
			inodes["socket:["+f[9]+"]"] = true
		}
	}
	for _, fd := range fds {
		if target, err := os.Readlink(filepath.Join(fdDir, fd.Name())); err == nil && inodes[target] {
			return true, true
		}
	}
	return false, true
}

// run runs a program with a bounded time and returns its stdout; the error
// carries stderr. env is added to the environment.
func run(env []string, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, tool(name), args...)
	cmd.Env = append(os.Environ(), env...)
	out, msg, err := runFiles(cmd, false)
	if err != nil {
		return out, fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(msg))
	}
	return out, nil
}

// runFiles runs cmd with its stdout and stderr (one file if combined) in
// temporary files, not pipes: `postfix start` and `postfix reload` leave
// background processes (master, postfix-script's checks) holding what they
// inherited, so reading a pipe to EOF waits for them (seen: reload failing
// with "WaitDelay expired before I/O complete").
func runFiles(cmd *exec.Cmd, combined bool) (stdout, stderr string, err error) {
	outf, err := os.CreateTemp("", "postfixtest-out-")
	if err != nil {
		return "", "", err
	}
	defer os.Remove(outf.Name())
	defer outf.Close()
	errf := outf
	if !combined {
		if errf, err = os.CreateTemp("", "postfixtest-err-"); err != nil {
			return "", "", err
		}
		defer os.Remove(errf.Name())
		defer errf.Close()
	}
	cmd.Stdout, cmd.Stderr = outf, errf
	err = cmd.Run()
	out, _ := os.ReadFile(outf.Name())
	msg, _ := os.ReadFile(errf.Name())
	return string(out), string(msg), err
}
