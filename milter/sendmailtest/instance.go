package sendmailtest

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/splitrelay/splitrelay/milter/postfixtest"
)

// EnvKeep keeps the instance directories after a test (as postfixtest).
const EnvKeep = postfixtest.EnvKeep

// Hostname is the instance's fully qualified host name ($j).
const Hostname = "sendmail.test.example"

// startTimeout bounds how long Start waits for the daemon to listen.
const startTimeout = 20 * time.Second

const pollInterval = 50 * time.Millisecond

// stragglerWait bounds how long Stop waits for deliveries in progress.
const stragglerWait = 15 * time.Second

// Options describe a private Sendmail.
type Options struct {
	// MC is appended verbatim to Debian's stock sendmail.mc: the output of
	// `splitrelay sendmail --format mc`.
	MC string
	// RelayDomains are the domains Sendmail accepts mail for from any
	// client (RELAY_DOMAIN), e.g. "example.com".
	RelayDomains []string
	// Transport sends a domain's mail to a loopback port (a sink, see
	// postfixtest.Sink.Port) with a plain SMTP mailer. Other destinations
	// are looked up in /etc/hosts only (no DNS) and bounce.
	Transport map[string]int
	// Access are lines of the access database (FEATURE(access_db)), e.g.
	// "Connect:127.0.0.3 RELAY"; the harness adds GreetPause, ClientRate
	// and ClientConn exemptions for 127.
	Access []string
	// SASL, when not empty, makes Sendmail offer SMTP AUTH (PLAIN and
	// LOGIN, only after STARTTLS) for these users (login -> password),
	// from a private Cyrus sasldb.
	SASL map[string]string
	// IPv6 adds a daemon on [::1]:Port beside the one on 127.0.0.1:Port
	// (DAEMON_OPTIONS(`Family=inet6, Name=MTA-v6, Port=Port, Addr=::1')),
	// so that a client can connect over IPv6: Send connects there when
	// Mail.Source is an IPv6 address ("::1").
	IPv6 bool
	// Extra is m4 appended after everything else.
	Extra string
}

// Instance is a running private Sendmail.
type Instance struct {
	Dir    string // everything: etc/mail, the queue, the state files
	CF     string // Dir/sendmail.cf
	MCFile string // Dir/sendmail.mc, as given to m4
	Port   int    // the daemon listens on 127.0.0.1:Port (and on [::1]:Port with Options.IPv6)

	root *Root
	opt  Options

	mu   sync.Mutex
	log  strings.Builder
	sock *net.UnixConn

	cmd  *exec.Cmd
	done chan error
}

// Start builds sendmail.cf from the stock sendmail.mc and opt, starts the
// daemon on a free loopback port and registers a cleanup that stops it
// (logging the tail of its syslog if the test failed).
func Start(t testing.TB, opt Options) *Instance {
	t.Helper()
	r := Require(t)
	in := &Instance{root: r, opt: opt, Dir: makeTempDir(t)}
	in.CF = filepath.Join(in.Dir, "sendmail.cf")
	in.MCFile = filepath.Join(in.Dir, "sendmail.mc")
	t.Cleanup(func() {
		in.stop()
		if in.sock != nil {
			in.sock.Close()
		}
		if t.Failed() {
			t.Logf("sendmailtest: %s syslog tail:\n%s", in.Dir, tail(in.Log(), 60))
		}
		removeTempDir(t, in.Dir)
	})
	if err := in.prepare(); err != nil {
		t.Fatalf("sendmailtest: %v", err)
	}
	var err error
	for range 3 {
		if opt.IPv6 {
			in.Port = postfixtest.FreePortIPv6(t)
		} else {
			in.Port = postfixtest.FreePort(t)
		}
		if err = in.build(); err != nil {
			t.Fatalf("sendmailtest: %v", err)
		}
		if err = in.start(); err == nil {
			return in
		}
	}
	t.Fatalf("sendmailtest: %v\nsyslog:\n%s", err, tail(in.Log(), 40))
	return nil
}

// Addr is the daemon's address, 127.0.0.1:Port.
func (in *Instance) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(in.Port)) }

// Addr6 is the daemon's IPv6 address, [::1]:Port (Options.IPv6), or ""
// when it listens on IPv4 only.
func (in *Instance) Addr6() string {
	if !in.opt.IPv6 {
		return ""
	}
	return net.JoinHostPort("::1", strconv.Itoa(in.Port))
}

// Send sends one message to the instance with postfixtest's client, to
// Addr6 when m.Source is an IPv6 address, else to Addr.
func (in *Instance) Send(t testing.TB, m postfixtest.Mail) (transcript string, exitCode int) {
	t.Helper()
	return postfixtest.SendTo(t, m.Server(t, in.Addr(), in.Addr6()), m)
}

// prepare creates the directory tree, the files the stock configuration
// reads, the TLS certificate, the SASL database and the syslog socket.
func (in *Instance) prepare() error {
	for _, d := range []string{"etc/mail/m4", "mqueue", "lib/host_status", "run", "dev", "tls", "sasl2"} {
		if err := os.MkdirAll(filepath.Join(in.Dir, d), 0o755); err != nil {
			return err
		}
	}
	if err := os.Chmod(filepath.Join(in.Dir, "mqueue"), 0o700); err != nil {
		return err
	}
	files := map[string]string{
		"etc/mail/m4/dialup.m4":     "",
		"etc/mail/m4/provider.m4":   "",
		"etc/mail/local-host-names": "",
		"etc/mail/aliases":          "postmaster: root\nMAILER-DAEMON: postmaster\n",
		"etc/mail/service.switch":   "hosts files\naliases files\n",
	}
	for _, f := range []string{"null", "zero", "random", "urandom"} {
		files["dev/"+f] = "" // mount points for the real devices
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(in.Dir, name), []byte(content), 0o644); err != nil {
			return err
		}
	}
	if err := writeServerCert(filepath.Join(in.Dir, "tls"), Hostname); err != nil {
		return err
	}
	if len(in.opt.SASL) > 0 {
		if err := in.sasl(); err != nil {
			return err
		}
	}
	return in.listenSyslog()
}

// build writes sendmail.mc, runs m4 and makemap.
func (in *Instance) build() error {
	stock, err := os.ReadFile(filepath.Join(in.root.CFDir, "debian/sendmail.mc"))
	if err != nil {
		return err
	}
	etc := filepath.Join(in.Dir, "etc/mail") + "/"
	var b strings.Builder
	fmt.Fprintf(&b, "define(`MAIL_SETTINGS_DIR', `%s')dnl\n", etc)
	b.WriteString(strings.ReplaceAll(string(stock), "/etc/mail/", etc))
	b.WriteString(in.opt.MC)
	b.WriteString(in.overrides())
	b.WriteString(in.opt.Extra)
	if err := os.WriteFile(in.MCFile, []byte(b.String()), 0o644); err != nil {
		return err
	}
	cf, msg, err := runCmd(nil, in.root.M4, in.MCFile)
	if err != nil || strings.TrimSpace(msg) != "" {
		return fmt.Errorf("m4 %s: %v\n%s", in.MCFile, err, msg)
	}
	if err := os.WriteFile(in.CF, []byte(cf), 0o644); err != nil {
		return err
	}
	access := append([]string{"GreetPause:127\t0", "ClientRate:127\t0", "ClientConn:127\t0"}, in.opt.Access...)
	accessFile := filepath.Join(in.Dir, "etc/mail/access")
	if err := os.WriteFile(accessFile, []byte(strings.Join(access, "\n")+"\n"), 0o644); err != nil {
		return err
	}
	if _, msg, err := runCmd(strings.NewReader(strings.Join(access, "\n")+"\n"), in.root.Makemap, "-C", in.CF, "hash", accessFile); err != nil {
		return fmt.Errorf("makemap: %v: %s", err, msg)
	}
	return nil
}

// overrides is the harness's m4: the instance's port, files and
// destinations.
func (in *Instance) overrides() string {
	d := in.Dir
	var b strings.Builder
	b.WriteString("dnl # ---- sendmailtest: the test instance ----\n")
	b.WriteString("define(`_DPO_', `')dnl\n")
	fmt.Fprintf(&b, "DAEMON_OPTIONS(`Family=inet, Name=MTA-v4, Port=%d, Addr=127.0.0.1')dnl\n", in.Port)
	if in.opt.IPv6 {
		fmt.Fprintf(&b, "DAEMON_OPTIONS(`Family=inet6, Name=MTA-v6, Port=%d, Addr=::1')dnl\n", in.Port)
	}
	for _, kv := range [][2]string{
		{"QUEUE_DIR", d + "/mqueue"},
		{"STATUS_FILE", d + "/lib/sendmail.st"},
		{"confHOST_STATUS_DIRECTORY", d + "/lib/host_status"},
		{"confPID_FILE", d + "/run/sendmail.pid"},
		{"confCONTROL_SOCKET_NAME", d + "/run/smcontrol"},
		{"confDEAD_LETTER_DROP", d + "/lib/dead.letter"},
		{"ALIAS_FILE", d + "/etc/mail/aliases"},
		{"confSERVICE_SWITCH_FILE", d + "/etc/mail/service.switch"},
		{"confTRUSTED_USER", "root"},
		{"confDONT_PROBE_INTERFACES", "True"},
		{"confTO_HOSTSTATUS", "1s"},
		{"confMIN_QUEUE_AGE", "0"},
		// The machine is shared: Sendmail refuses connections and skips
		// queue runs when the load average passes a few times the CPUs.
		{"confREFUSE_LA", "100000"},
		{"confQUEUE_LA", "100000"},
		{"confDELAY_LA", "0"},
		{"confSERVER_CERT", d + "/tls/cert.pem"},
		{"confSERVER_KEY", d + "/tls/key.pem"},
		{"confCACERT", d + "/tls/cert.pem"},
		{"confCACERT_PATH", d + "/tls"},
	} {
		fmt.Fprintf(&b, "define(`%s', `%s')dnl\n", kv[0], kv[1])
	}
	b.WriteString("define(`_ACCEPT_UNRESOLVABLE_DOMAINS_')dnl\n")
	if len(in.opt.SASL) > 0 {
		b.WriteString("define(`confAUTH_MECHANISMS', `PLAIN LOGIN')dnl\ndefine(`confAUTH_OPTIONS', `p')dnl\n")
	}
	for _, dom := range in.opt.RelayDomains {
		fmt.Fprintf(&b, "RELAY_DOMAIN(`%s')dnl\n", dom)
	}
	doms := make([]string, 0, len(in.opt.Transport))
	var ports []int
	for dom, p := range in.opt.Transport {
		doms = append(doms, dom)
		if !slices.Contains(ports, p) {
			ports = append(ports, p)
		}
	}
	slices.Sort(doms)
	slices.Sort(ports)
	if len(doms) > 0 {
		b.WriteString("MAILER_DEFINITIONS\n")
		for _, p := range ports {
			fmt.Fprintf(&b, "`Msendmailtest-%d,\tP=[IPC], F=mDFMuXa, S=EnvFromSMTP/HdrFromSMTP, R=EnvToSMTP, E=\\r\\n, L=990, T=DNS/RFC822/SMTP, A=TCP $h %d'\n", p, p)
		}
		b.WriteString("LOCAL_RULE_0\n")
		for _, dom := range doms {
			tok := strings.ReplaceAll(dom, ".", " . ")
			p := in.opt.Transport[dom]
			// canonify adds the trailing dot only to names it resolved
			fmt.Fprintf(&b, "`R$* < @ %s . > $*\t$#sendmailtest-%d $@ [127.0.0.1] $: $1 < @ %s . > $2'\n", tok, p, tok)
			fmt.Fprintf(&b, "`R$* < @ %s > $*\t$#sendmailtest-%d $@ [127.0.0.1] $: $1 < @ %s . > $2'\n", tok, p, tok)
		}
		b.WriteString("divert(0)dnl\n")
	}
	return b.String()
}

// script is the shell that sets up the namespaces and runs sendmail with
// args: a fully qualified host name, /dev with our syslog socket, and the
// private SASL configuration.
func (in *Instance) script(args ...string) string {
	d := in.Dir
	var b strings.Builder
	b.WriteString("set -e\nhostname " + Hostname + "\n")
	for _, f := range []string{"null", "zero", "random", "urandom"} {
		fmt.Fprintf(&b, "mount --bind /dev/%s %s/dev/%s\n", f, d, f)
	}
	fmt.Fprintf(&b, "mount --rbind %s/dev /dev\n", d)
	if len(in.opt.SASL) > 0 {
		fmt.Fprintf(&b, "mount --bind %s/sasl2 /usr/lib/sasl2\n", d)
	}
	fmt.Fprintf(&b, "export LD_LIBRARY_PATH=%s\n", in.root.LibDir)
	b.WriteString("exec " + in.root.Sendmail + " -C " + in.CF)
	for _, a := range args {
		b.WriteString(" " + a)
	}
	b.WriteString("\n")
	return b.String()
}

// command returns sendmail with args inside fresh namespaces.
func (in *Instance) command(args ...string) *exec.Cmd {
	cmd := exec.Command("unshare", "-u", "-m", "--propagation", "private", "sh", "-c", in.script(args...))
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	return cmd
}

// start runs the daemon in the foreground (-bD) with queue runs every few
// seconds, and waits until it listens.
func (in *Instance) start() error {
	if out, err := in.run("-bi"); err != nil {
		return fmt.Errorf("newaliases: %v: %s", err, out)
	}
	cmd := in.command("-bD", "-q3s")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	logf, err := os.OpenFile(filepath.Join(in.Dir, "sendmail.out"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start sendmail: %w", err)
	}
	in.cmd, in.done = cmd, make(chan error, 1)
	go func() { in.done <- cmd.Wait() }()
	deadline := time.Now().Add(startTimeout)
	for {
		select {
		case err := <-in.done:
			in.cmd = nil
			out, _ := os.ReadFile(filepath.Join(in.Dir, "sendmail.out"))
			return fmt.Errorf("sendmail exited at start (%v): %s", err, out)
		default:
		}
		if accepts(in.Addr()) && (in.Addr6() == "" || accepts(in.Addr6())) &&
			strings.Contains(in.Log(), "starting daemon") {
			return nil
		}
		if time.Now().After(deadline) {
			in.stop()
			return fmt.Errorf("sendmail does not listen on %s after %v (port taken?)", strings.TrimSpace(in.Addr()+" "+in.Addr6()), startTimeout)
		}
		time.Sleep(pollInterval)
	}
}

// accepts reports whether addr accepts a TCP connection now.
func accepts(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// Stop stops the daemon (SIGTERM to its process group, by PID; SIGKILL
// after a bound); connections are then refused. Restart starts it again.
func (in *Instance) Stop(t testing.TB) {
	t.Helper()
	in.stop()
}

func (in *Instance) stop() {
	if in.cmd == nil {
		return
	}
	pgid := in.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-in.done:
	case <-time.After(commandTimeout):
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-in.done
	}
	// Children (deliveries, queue runs) of the group that outlived the
	// daemon: they were ours.
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	in.cmd = nil
	in.killStragglers()
}

// killStragglers waits for the processes of this instance that left its
// process group (Sendmail's queue runners and deliveries start their own)
// to finish what they do, then kills, by PID, those still there after
// stragglerWait. They are recognised by their working directory, the
// instance's private queue. Killing a delivery at once would deliver its
// message twice: the sink has it, the queue file is not yet removed.
func (in *Instance) killStragglers() {
	queue := filepath.Join(in.Dir, "mqueue")
	deadline, killed := time.Now().Add(stragglerWait), false
	for {
		var left []int
		procs, _ := os.ReadDir("/proc")
		for _, p := range procs {
			pid, err := strconv.Atoi(p.Name())
			if err != nil {
				continue
			}
			cwd, err := os.Readlink(filepath.Join("/proc", p.Name(), "cwd"))
			if err == nil && (cwd == queue || strings.HasPrefix(cwd, queue+"/")) {
				left = append(left, pid)
			}
		}
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			if killed {
				return // unkillable (uninterruptible sleep): give up, bounded
			}
			for _, pid := range left {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
			killed, deadline = true, time.Now().Add(2*time.Second)
		}
		time.Sleep(pollInterval)
	}
}

// Restart stops the daemon if it runs and starts it again on the same port.
func (in *Instance) Restart(t testing.TB) {
	t.Helper()
	in.stop()
	if err := in.start(); err != nil {
		t.Fatalf("sendmailtest: restart: %v", err)
	}
}

// Rebuild replaces Options.MC, rebuilds sendmail.cf and restarts the
// daemon: what an administrator does after regenerating the block.
func (in *Instance) Rebuild(t testing.TB, mc string) {
	t.Helper()
	in.opt.MC = mc
	in.stop()
	if err := in.build(); err != nil {
		t.Fatalf("sendmailtest: rebuild: %v", err)
	}
	if err := in.start(); err != nil {
		t.Fatalf("sendmailtest: restart: %v", err)
	}
}

// Reconfigure changes the options, rebuilds sendmail.cf and the access
// database and restarts the daemon on the same port.
func (in *Instance) Reconfigure(t testing.TB, change func(*Options)) {
	t.Helper()
	change(&in.opt)
	in.stop()
	if err := in.build(); err != nil {
		t.Fatalf("sendmailtest: reconfigure: %v", err)
	}
	if err := in.start(); err != nil {
		t.Fatalf("sendmailtest: restart: %v", err)
	}
}

// run runs sendmail with args in the instance's namespaces, bounded.
func (in *Instance) run(args ...string) (string, error) {
	cmd := in.command(args...)
	done := make(chan struct{})
	timer := time.AfterFunc(commandTimeout, func() {
		select {
		case <-done:
		default:
			if cmd.Process != nil {
				_ = cmd.Process.Kill()
			}
		}
	})
	defer timer.Stop()
	out, err := cmd.CombinedOutput()
	close(done)
	return string(out), err
}

// runCmd runs a program, bounded, with stdin; it returns stdout and stderr.
func runCmd(stdin *strings.Reader, name string, args ...string) (string, string, error) {
	cmd := exec.Command(name, args...)
	if stdin != nil {
		cmd.Stdin = stdin
	}
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		return "", "", err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return out.String(), errb.String(), err
	case <-time.After(commandTimeout):
		_ = cmd.Process.Kill()
		<-done
		return out.String(), errb.String(), errors.New("timed out")
	}
}
