package e2e

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/splitrelay/splitrelay/milter/postfixtest"
	"github.com/splitrelay/splitrelay/rules"
)

// The end-to-end suite runs the real splitrelay binary in front of a real,
// private Postfix (milter/postfixtest), configured only through
// `splitrelay postfix --format postconf`, with smtp-sinks standing in for
// the primary system (Gmail) and the routes.

var (
	buildOnce sync.Once
	builtBin  string
	buildErr  error
)

// TestMain removes the binary built for the run.
func TestMain(m *testing.M) {
	code := m.Run()
	if builtBin != "" {
		os.RemoveAll(filepath.Dir(builtBin))
	}
	os.Exit(code)
}

// binary builds splitrelay once per test run.
func binary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "splitrelay-bin-")
		if err != nil {
			buildErr = err
			return
		}
		builtBin = filepath.Join(dir, "splitrelay")
		out, err := exec.Command("go", "build", "-o", builtBin, "..").CombinedOutput() // cmd/splitrelay
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return builtBin
}

// site is one test's world: Postfix, the sinks and the daemon.
type site struct {
	t        *testing.T
	bin      string
	pf       *postfixtest.Instance
	gmail    *postfixtest.Sink // normal delivery for example.com
	internet *postfixtest.Sink // the outside world: elsewhere.test
	sinks    map[string]*postfixtest.Sink
	cfgPath  string
	network  string // where the milter listens: "unix" or "tcp"
	addr     string
	d        *daemon
	before   map[string][]byte // main.cf and master.cf before attaching
}

// siteConfig is a configuration template: {{ROUTES}} is replaced by a
// [routes.NAME] table per sink, {{LISTEN}} by the milter address.
func newSite(t *testing.T, routeNames []string, config string) *site {
	t.Helper()
	return newSiteOn(t, routeNames, config, "unix")
}

// newSiteOn is newSite with the milter on a unix socket ("unix") or on a
// loopback TCP port ("inet").
func newSiteOn(t *testing.T, routeNames []string, config, network string) *site {
	t.Helper()
	return newSiteSinks(t, routeNames, config, network, nil)
}

// newSiteSinks is newSiteOn with extra smtp-sink options per route sink
// (postfixtest.StartSinkArgs), e.g. {"legacy": {"-f", "RCPT"}}.
func newSiteSinks(t *testing.T, routeNames []string, config, network string, sinkArgs map[string][]string) *site {
	t.Helper()
	return newSiteFull(t, routeNames, config, network, sinkArgs, nil)
}

// newSiteFull is newSiteSinks with prepare, which makes the private Postfix
// a site of its own (main.cf settings, master.cf services) before
// splitrelay is attached; site.before keeps main.cf and master.cf as they
// were then.
func newSiteFull(t *testing.T, routeNames []string, config, network string, sinkArgs map[string][]string, prepare func(*postfixtest.Instance)) *site {
	t.Helper()
	return newSiteWith(t, routeNames, config, siteOptions{network: network, sinkArgs: sinkArgs, prepare: prepare})
}

// siteOptions are newSiteWith's choices beyond the routes and the config.
type siteOptions struct {
	network  string                      // "unix" (default) or "inet", as newSiteOn
	sinkArgs map[string][]string         // as newSiteSinks
	prepare  func(*postfixtest.Instance) // as newSiteFull
	ipv6     bool                        // smtpd on [::1] too (postfixtest.Options.IPv6)
}

// newSiteWith is the site constructor the others call.
func newSiteWith(t *testing.T, routeNames []string, config string, o siteOptions) *site {
	t.Helper()
	network, sinkArgs, prepare := o.network, o.sinkArgs, o.prepare
	postfixtest.Require(t)
	s := &site{t: t, bin: binary(t), sinks: map[string]*postfixtest.Sink{}}
	s.gmail = postfixtest.StartSink(t, "gmail")
	s.internet = postfixtest.StartSink(t, "internet")
	var routes strings.Builder
	for _, name := range routeNames {
		sk := postfixtest.StartSinkArgs(t, name, sinkArgs[name]...)
		s.sinks[name] = sk
		fmt.Fprintf(&routes, "[routes.%s]\ndescription = \"test sink %s\"\nhost = \"127.0.0.1\"\nport = %d\n\n", name, name, sk.Port)
	}
	s.pf = postfixtest.Start(t, postfixtest.Options{
		RelayDomains: []string{"example.com", "example.org"},
		Transport: map[string]string{
			"example.com":    s.gmail.NextHop(),
			"example.org":    s.gmail.NextHop(),
			"elsewhere.test": s.internet.NextHop(),
			// the rest of the world, so that a relay refusal is the
			// policy's, not the instance's missing transport
			"*": s.internet.NextHop(),
		},
		// the site's own relay list, as Debian writes it
		Main: map[string]string{"smtpd_relay_restrictions": "permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination"},
		IPv6: o.ipv6,
	})
	// The socket lives inside Postfix's queue directory, as in production
	// (a chrooted smtpd reaches it as unix:splitrelay/milter.sock).
	s.network, s.addr = "unix", filepath.Join(s.pf.QueueDir, "splitrelay", "milter.sock")
	if network == "inet" {
		s.network, s.addr = "tcp", fmt.Sprintf("127.0.0.1:%d", postfixtest.FreePort(t))
	}
	listen := map[string]string{"unix": "unix:", "tcp": "inet:"}[s.network] + s.addr
	config = strings.ReplaceAll(config, "{{ROUTES}}", routes.String())
	// Never the machine's /var/lib/splitrelay: {{STATE_DIR}} in a [state]
	// of the test's own, else a [state] section added.
	stateDir := filepath.Join(s.pf.Dir, "state")
	if !strings.Contains(config, "[state]") {
		config += fmt.Sprintf("\n[state]\ndir = %q\n", stateDir)
	}
	config = strings.ReplaceAll(config, "{{STATE_DIR}}", stateDir)
	config = strings.ReplaceAll(config, "{{LISTEN}}", listen)
	s.cfgPath = filepath.Join(s.pf.Dir, "splitrelay.toml")
	s.writeConfig(config)
	if prepare != nil {
		prepare(s.pf)
	}
	s.before = s.cf()
	s.attach()
	s.d = s.start()
	return s
}

// cf returns main.cf and master.cf of the private Postfix.
func (s *site) cf() map[string][]byte {
	s.t.Helper()
	m := map[string][]byte{}
	for _, f := range []string{"main.cf", "master.cf"} {
		data, err := os.ReadFile(filepath.Join(s.pf.ConfigDir, f))
		if err != nil {
			s.t.Fatal(err)
		}
		m[f] = data
	}
	return m
}

func (s *site) writeConfig(config string) {
	s.t.Helper()
	if err := os.WriteFile(s.cfgPath, []byte(config), 0o644); err != nil {
		s.t.Fatal(err)
	}
}

// attach applies `splitrelay postfix --format postconf` to the private
// Postfix and reloads it: exactly what an administrator runs.
func (s *site) attach() {
	s.t.Helper()
	out, err := exec.Command(s.bin, "postfix", "-c", s.cfgPath, "--format", "postconf",
		"--postfix-config-dir", s.pf.ConfigDir, "--map-dir", filepath.Join(s.pf.Dir, "maps"),
		"--queue-dir", s.pf.QueueDir).Output()
	if err != nil {
		s.t.Fatalf("splitrelay postfix: %v\n%s", err, exitStderr(err))
	}
	s.pf.Shell(s.t, string(out))
	s.pf.Reload(s.t)
}

func exitStderr(err error) string {
	if ee, ok := err.(*exec.ExitError); ok {
		return string(ee.Stderr)
	}
	return ""
}

// daemon is a running `splitrelay run`.
type daemon struct {
	cmd  *exec.Cmd
	mu   sync.Mutex
	log  bytes.Buffer
	done chan struct{}
}

// start runs the daemon with group postfix, so its unix socket (0660) is
// reachable by Postfix's smtpd, as the packaged unit arranges.
func (s *site) start() *daemon {
	s.t.Helper()
	d := &daemon{done: make(chan struct{})}
	d.cmd = exec.Command(s.bin, "run", "-c", s.cfgPath)
	if g, err := user.LookupGroup("postfix"); err == nil {
		gid, _ := strconv.Atoi(g.Gid)
		d.cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(os.Getuid()), Gid: uint32(gid)}}
	}
	stderr, err := d.cmd.StderrPipe()
	if err != nil {
		s.t.Fatal(err)
	}
	if err := d.cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	t := s.t
	go func() {
		defer close(d.done)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			d.mu.Lock()
			d.log.WriteString(sc.Text() + "\n")
			d.mu.Unlock()
		}
		d.cmd.Wait()
	}()
	t.Cleanup(func() {
		d.stop()
		t.Logf("splitrelay log:\n%s", d.logs())
	})
	deadline := time.Now().Add(15 * time.Second)
	for {
		if c, err := net.Dial(s.network, s.addr); err == nil {
			c.Close()
			d.waitLog(t, 10*time.Second, `msg="splitrelay started"`)
			return d
		}
		select {
		case <-d.done:
			t.Fatalf("splitrelay exited at start:\n%s", d.logs())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("splitrelay did not listen on %s:\n%s", s.addr, d.logs())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (d *daemon) logs() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.log.String()
}

// stop sends SIGTERM (the daemon drains) and waits, bounded.
func (d *daemon) stop() {
	select {
	case <-d.done:
		return
	default:
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(40 * time.Second):
		d.cmd.Process.Kill()
		<-d.done
	}
}

// waitLog waits until the daemon's log has a line containing every part.
func (d *daemon) waitLog(t *testing.T, timeout time.Duration, parts ...string) string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		for _, line := range strings.Split(d.logs(), "\n") {
			if containsAll(line, parts) {
				return line
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no log line with %q in:\n%s", parts, d.logs())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func containsAll(s string, parts []string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}

// send sends one message and requires it to be queued; it returns the
// Postfix queue ID.
func (s *site) send(m postfixtest.Mail) string {
	s.t.Helper()
	tr, code := s.pf.Send(s.t, m)
	id, ok := postfixtest.QueueID(tr)
	if code != 0 || !ok {
		s.t.Fatalf("message not queued (exit %d):\n%s", code, tr)
	}
	return id
}

// landed waits until Postfix has delivered everything in its queue, then
// checks that each sink received exactly the wanted envelope recipients
// (sink name -> RCPT TO addresses; "gmail" is normal delivery) and returns
// the messages by sink.
func (s *site) landed(want map[string][]string) map[string][]postfixtest.Message {
	s.t.Helper()
	s.pf.WaitQueueEmpty(s.t, 30*time.Second)
	got := map[string][]postfixtest.Message{}
	for name, sk := range allSinks(s.gmail, s.internet, s.sinks) {
		msgs, rcpts := delivered(s.t, sk, len(want[name]))
		slices.Sort(rcpts)
		w := slices.Clone(want[name])
		slices.Sort(w)
		if !slices.Equal(rcpts, w) {
			s.t.Errorf("sink %s got recipients %q, want %q\npostfix log:\n%s", name, rcpts, w, s.pf.Log())
		}
		got[name] = msgs
	}
	return got
}

// allSinks names every sink of a site: "gmail" (normal delivery),
// "internet" and the routes'.
func allSinks(gmail, internet *postfixtest.Sink, routes map[string]*postfixtest.Sink) map[string]*postfixtest.Sink {
	all := map[string]*postfixtest.Sink{"gmail": gmail, "internet": internet}
	for n, sk := range routes {
		all[n] = sk
	}
	return all
}

// delivered returns sk's messages and their RCPT TO addresses once it has
// n recipients, or after 5 seconds: a delivered message is complete in the
// sink's dump once the sink has answered, and Messages leaves out
// transactions in progress.
func delivered(t *testing.T, sk *postfixtest.Sink, n int) ([]postfixtest.Message, []string) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; {
		msgs, rcpts := sk.Messages(t), []string(nil)
		for _, m := range msgs {
			for _, r := range m.Rcpts {
				rcpts = append(rcpts, r.Addr)
			}
		}
		if len(rcpts) >= n || time.Now().After(deadline) {
			return msgs, rcpts
		}
		time.Sleep(20 * time.Millisecond)
	}
}

var update = flag.Bool("update", false, "rewrite the golden files the end-to-end suite compares with")

// runCmd runs the splitrelay binary under test and returns its exit code
// and output.
func runCmd(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd := exec.Command(binary(t), args...)
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Fatalf("splitrelay %s: %v", strings.Join(args, " "), err)
		}
		code = ee.ExitCode()
	}
	return code, out.String(), errOut.String()
}

// loadConfig loads a configuration as the daemon does (users_files and
// other files relative to its directory), for its config id and rules.
func loadConfig(path string) (*rules.Ruleset, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return rules.Load(path, data, dirFiles(filepath.Dir(path)))
}

// dirFiles reads files relative to a directory.
type dirFiles string

func (d dirFiles) ReadFile(name string) ([]byte, error) {
	if !filepath.IsAbs(name) {
		name = filepath.Join(string(d), name)
	}
	return os.ReadFile(name)
}

// golden compares got with a golden file (-update rewrites it).
func golden(t *testing.T, file, got string) {
	t.Helper()
	if *update {
		if err := os.WriteFile(file, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("%v (go test -update creates it)", err)
	}
	if got != string(want) {
		t.Errorf("output differs from %s (go test -update rewrites it):\n--- got\n%s\n--- want\n%s", file, got, want)
	}
}
