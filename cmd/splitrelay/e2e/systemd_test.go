package e2e

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/splitrelay/splitrelay/cmd/splitrelay/internal/sdtest"
	"github.com/splitrelay/splitrelay/milter/postfixtest"
)

// TestSystemdNotify runs the daemon as systemd would (NOTIFY_SOCKET,
// WATCHDOG_USEC) and reloads it the way the unit's ExecReload= does:
// READY with STATUS= naming the configuration, WATCHDOG=1 fed by the probe,
// a refused reload that exits 1 and shows in STATUS=, an accepted one.
func TestSystemdNotify(t *testing.T) {
	bin := binary(t)
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "splitrelay.toml")
	good := fmt.Sprintf("[milter]\nlisten = \"inet:127.0.0.1:%d\"\n[organization]\ndomains = [\"example.com\"]\n[state]\ndir = %q\n", postfixtest.FreePort(t), filepath.Join(dir, "state"))
	if err := os.WriteFile(cfgPath, []byte(good), 0o644); err != nil {
		t.Fatal(err)
	}
	first, err := loadConfig(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	ns := sdtest.New(t)
	cmd := exec.Command(bin, "run", "-c", cfgPath)
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+ns.Path, "WATCHDOG_USEC=2000000", "JOURNAL_STREAM=")
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

	ready := ns.Wait(t, "READY=1", sdtest.Has("READY=1"))
	if !strings.Contains(ready, "STATUS=config "+first.ID+" loaded ") || !strings.Contains(ready, "0 sessions, 0 messages") {
		t.Errorf("READY without the status line: %q", ready)
	}
	ns.Wait(t, "WATCHDOG=1", sdtest.Has("WATCHDOG=1"))

	// A broken file: reload exits 1, says why, the daemon keeps its rules.
	broken := strings.Replace(good, `domains = ["example.com"]`, `domains = ["example.com"]`+"\nroute = 1", 1)
	if err := os.WriteFile(cfgPath, []byte(broken), 0o644); err != nil {
		t.Fatal(err)
	}
	code, stdout, errOut := runCmd(t, "reload", "-c", cfgPath, "--pid", pid)
	if code != 1 || stdout != "" || !strings.Contains(errOut, cfgPath+":5:1: organization.route: unknown key") ||
		!strings.Contains(errOut, "refused; the daemon keeps configuration "+first.ID) {
		t.Errorf("reload of a broken file: exit %d\nstdout %q\nstderr %q", code, stdout, errOut)
	}
	ns.Wait(t, "RELOADING=1", sdtest.Has("RELOADING=1", "MONOTONIC_USEC="))
	st := ns.Wait(t, "READY=1 after the refused reload", sdtest.Has("READY=1"))
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
	code, stdout, errOut = runCmd(t, "reload", "-c", cfgPath, "--pid", pid)
	if code != 0 || stdout != cfgPath+" reloaded: configuration "+second.ID+" in force\n" || errOut != "" {
		t.Errorf("reload: exit %d\nstdout %q\nstderr %q", code, stdout, errOut)
	}
	st = ns.Wait(t, "READY=1 after the reload", sdtest.Has("READY=1"))
	if !strings.Contains(st, "config "+second.ID) || strings.Contains(st, "REFUSED") {
		t.Errorf("status after the reload: %q", st)
	}
	ns.Wait(t, "WATCHDOG=1 after the reload", sdtest.Has("WATCHDOG=1"))
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
	code, _, errOut = runCmd(t, "reload", "-c", cfgPath, "--pid", pid)
	if code != 1 || !strings.Contains(errOut, "cannot reach the daemon") {
		t.Errorf("reload without a daemon: exit %d, %q", code, errOut)
	}
}
