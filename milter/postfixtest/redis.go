package postfixtest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"
)

// Redis is a private redis-server (Debian's redis-server package) on a
// loopback port with its own directory and no persistence, for the shared
// relay limits. Stop and Start let a test take it down and bring it back
// on the same port; the test's cleanup stops it by PID. The same type
// runs the processes of a Sentinel or a Cluster (rediscluster.go).
type Redis struct {
	Dir  string
	Port int
	bin  string
	args []string // the command line after the binary, for a restart
	cmd  *exec.Cmd
	done chan error
}

// URL is the redis:// URL of the server, database 0.
func (r *Redis) URL() string { return fmt.Sprintf("redis://127.0.0.1:%d/0", r.Port) }

// StartRedis starts a private redis-server. args are added to its
// command line: "--appendonly", "yes" keeps the data across Stop and
// Start (Redis writes its append-only file at a clean shutdown), as a
// production Redis would.
func StartRedis(t testing.TB, args ...string) *Redis {
	t.Helper()
	return startRedis(t, "redis", func(int) []string { return args }, nil)
}

// startRedis starts a redis-server as StartRedis does; who names it in
// failures, args gives the options that follow the standard ones for a
// port (called again for each port tried), pre what comes first on the
// command line (a configuration file).
func startRedis(t testing.TB, who string, args func(port int) []string, pre []string) *Redis {
	t.Helper()
	bin, err := lookTool("redis-server")
	if err != nil {
		missing(t, "redis-server not found (apt-get install redis-server, or make deps)")
	}
	r := &Redis{Dir: makeTempDir(t, "splitrelay-"+who+"-"), bin: bin}
	var lastErr error
	for range portAttempts {
		r.Port = FreePort(t)
		r.args = append(append(slices.Clone(pre), "--port", strconv.Itoa(r.Port), "--bind", "127.0.0.1",
			"--dir", r.Dir, "--save", "", "--appendonly", "no", "--daemonize", "no",
			"--protected-mode", "yes", "--logfile", ""), args(r.Port)...)
		if lastErr = r.start(); lastErr == nil {
			break
		}
	}
	if lastErr != nil {
		t.Fatalf("postfixtest: start %s (redis-server): %v\n%s", who, lastErr, r.logTail())
	}
	t.Cleanup(func() {
		r.Stop(t)
		if t.Failed() {
			t.Logf("postfixtest: %s log (%s):\n%s", who, r.Dir, r.logTail())
		}
		removeTempDir(t, r.Dir)
	})
	return r
}

func (r *Redis) start() error {
	logf, err := os.OpenFile(filepath.Join(r.Dir, "redis.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	r.cmd = exec.Command(r.bin, r.args...)
	r.cmd.Stdout, r.cmd.Stderr = logf, logf
	if err := r.cmd.Start(); err != nil {
		return err
	}
	r.done = make(chan error, 1)
	go func() { r.done <- r.cmd.Wait() }()
	if err := waitListen(r.cmd.Process.Pid, r.Port, r.done, startTimeout); err != nil {
		r.kill()
		return err
	}
	return nil
}

// Start brings a stopped server back on its port (empty: no persistence).
func (r *Redis) Start(t testing.TB) {
	t.Helper()
	if r.cmd != nil {
		return
	}
	if err := r.start(); err != nil {
		t.Fatalf("postfixtest: restart redis-server on %d: %v\n%s", r.Port, err, r.logTail())
	}
}

// Stop stops the server (SIGTERM, then SIGKILL after a bound).
func (r *Redis) Stop(t testing.TB) {
	if r.cmd == nil {
		return
	}
	_ = r.cmd.Process.Signal(os.Interrupt)
	select {
	case <-r.done:
	case <-time.After(commandTimeout):
		r.kill()
		return
	}
	r.cmd = nil
}

func (r *Redis) kill() {
	_ = r.cmd.Process.Kill()
	<-r.done
	r.cmd = nil
}

func (r *Redis) logTail() string {
	b, _ := os.ReadFile(filepath.Join(r.Dir, "redis.log"))
	return tail(string(b), 30)
}
