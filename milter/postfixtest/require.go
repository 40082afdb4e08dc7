package postfixtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
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
var tools = []string{"postfix", "postconf", "postqueue", "smtp-sink", "swaks"}

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

// waitPort waits until addr accepts TCP connections.
func waitPort(addr string, timeout time.Duration) error {
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
		time.Sleep(50 * time.Millisecond)
	}
}

// run runs a program with a bounded time and returns its stdout; the error
// carries stderr. env is added to the environment.
func run(env []string, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, tool(name), args...)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = time.Second
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}
