package postfixtest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// EnvKeep is the environment variable that keeps the temporary directories
// of instances and sinks (their logs, queues and dumps) after a test, for
// debugging. Their paths are logged.
const EnvKeep = "SPLITRELAY_E2E_KEEP"

// startTimeout bounds how long Start waits for smtpd to accept connections.
const startTimeout = 15 * time.Second

// Options describe a private Postfix instance.
type Options struct {
	// RelayDomains become relay_domains: the domains smtpd accepts mail for
	// from any client, e.g. "example.com".
	RelayDomains []string
	// Transport maps a domain (or any transport(5) key) to its next hop,
	// e.g. "example.com" -> "smtp:[127.0.0.1]:2601" (see Sink.NextHop). It is
	// written to a texthash: table named by transport_maps. A destination
	// without an entry is refused (see Start), so use bracketed IP next hops.
	Transport map[string]string
	// Mynetworks becomes mynetworks: clients that may relay anywhere.
	// Default "127.0.0.0/8". To test relay policy from an outside client,
	// narrow it (e.g. "127.0.0.1/32") and send with Mail.Source "127.0.0.2".
	Mynetworks string
	// IPv6 makes smtpd listen on [::1]:Port as well as on 127.0.0.1:Port
	// (inet_protocols = all, inet_interfaces = 127.0.0.1, [::1]), so that
	// a client can connect over IPv6: Send connects there when
	// Mail.Source is an IPv6 address ("::1"). Off, the instance is IPv4
	// only (inet_protocols = ipv4).
	IPv6 bool
	// Main holds extra main.cf settings, applied after (and so overriding)
	// everything Start sets.
	Main map[string]string
}

// Instance is a running private Postfix.
type Instance struct {
	Dir       string // root of everything below; mode 0755 so the postfix user reaches it
	ConfigDir string // Dir/etc: main.cf, master.cf and the transport table
	QueueDir  string // Dir/spool: queue_directory
	LogFile   string // Dir/postfix.log: maillog_file
	Port      int    // smtpd listens on 127.0.0.1:Port (and on [::1]:Port with Options.IPv6)
	IPv6      bool   // Options.IPv6: smtpd listens on [::1]:Port too

	env []string // MAIL_CONFIG=ConfigDir, so no command reaches /etc/postfix
}

// Start creates and starts a private Postfix in a fresh temporary directory.
// It registers a cleanup that stops it (and logs the tail of its log if the
// test failed).
//
// main.cf starts empty (Postfix's defaults, `postconf -d`) so nothing of the
// machine's own configuration leaks in; master.cf is copied from the
// package's pristine copy (PristineMasterCF) with every chroot switched
// off and every inet service replaced by one smtpd on 127.0.0.1:Port. On top
// of the defaults Start sets:
//   - inet_interfaces = 127.0.0.1, inet_protocols = ipv4 (with
//     Options.IPv6: inet_interfaces = 127.0.0.1, [::1], inet_protocols =
//     all, and a second smtpd on [::1]:Port), myhostname =
//     mx.test.example, maillog_file = Dir/postfix.log;
//   - mydestination empty and local delivery disabled: nothing is local;
//   - relay_domains, mynetworks and transport_maps from opt, and
//     smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination;
//   - relay_transport and default_transport = error:…, so a destination
//     without a transport entry bounces at once instead of reaching for DNS
//     or the network (smtp_host_lookup = native for named next hops);
//   - queue_run_delay = 1s, minimal_backoff_time = 1s and
//     maximal_backoff_time = 2s, so deferred mail is retried quickly;
//   - smtpd TLS (security level may) with a self-signed certificate
//     generated for the instance, so Mail.TLS works.
func Start(t testing.TB, opt Options) *Instance {
	t.Helper()
	Require(t)
	var err error
	for range portAttempts {
		var in *Instance
		if in, err = start(t, opt); err == nil {
			return in
		}
		if !errors.Is(err, errPortTaken) {
			break
		}
	}
	t.Fatalf("postfixtest: %v", err)
	return nil
}

func start(t testing.TB, opt Options) (*Instance, error) {
	dir := makeTempDir(t, "splitrelay-pf-")
	in := &Instance{
		Dir:       dir,
		ConfigDir: filepath.Join(dir, "etc"),
		QueueDir:  filepath.Join(dir, "spool"),
		LogFile:   filepath.Join(dir, "postfix.log"),
		IPv6:      opt.IPv6,
	}
	if opt.IPv6 {
		in.Port = FreePortIPv6(t)
	} else {
		in.Port = FreePort(t)
	}
	in.env = []string{"MAIL_CONFIG=" + in.ConfigDir}
	t.Cleanup(func() { in.cleanup(t) })

	if err := in.configure(opt); err != nil {
		return nil, fmt.Errorf("configure %s: %w", dir, err)
	}
	_, err := in.run("postfix", "start")
	if err == nil {
		// `postfix start` returns once master is initialised (master -w);
		// master itself holds the smtpd listener.
		var pid int
		if pid, err = in.masterPID(); err == nil {
			err = waitListen(pid, in.Port, nil, startTimeout)
		}
		if err == nil && in.IPv6 {
			// master has opened every listener by the time it is
			// initialised; the v6 one checked all the same, bounded.
			err = waitAccept(in.Addr6(), startTimeout)
		}
	}
	if err != nil {
		if portTaken(in.Port) || in.IPv6 && portTaken6(in.Port) {
			err = fmt.Errorf("%w (%w)", err, errPortTaken)
		}
		return nil, fmt.Errorf("%w\n%s", err, tail(in.Log(), 40))
	}
	return in, nil
}

// masterPID reads master's pid file.
func (in *Instance) masterPID() (int, error) {
	data, err := os.ReadFile(filepath.Join(in.QueueDir, "pid", "master.pid"))
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(data)))
}

// Addr is smtpd's address, "127.0.0.1:Port".
func (in *Instance) Addr() string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(in.Port))
}

// Addr6 is smtpd's IPv6 address, "[::1]:Port" (Options.IPv6), or "" when
// the instance listens on IPv4 only.
func (in *Instance) Addr6() string {
	if !in.IPv6 {
		return ""
	}
	return net.JoinHostPort("::1", strconv.Itoa(in.Port))
}

func (in *Instance) configure(opt Options) error {
	dataDir := filepath.Join(in.Dir, "data")
	for _, d := range []string{in.ConfigDir, in.QueueDir, dataDir} {
		if err := os.Mkdir(d, 0o755); err != nil {
			return err
		}
	}
	if err := chownTo(dataDir, "postfix"); err != nil {
		return err
	}
	if err := copyMasterCF(filepath.Join(in.ConfigDir, "master.cf")); err != nil {
		return err
	}
	// An empty main.cf is `postconf -d`: the compiled-in defaults.
	if err := os.WriteFile(filepath.Join(in.ConfigDir, "main.cf"), nil, 0o644); err != nil {
		return err
	}
	if err := in.writeTransport(opt.Transport); err != nil {
		return err
	}
	if err := in.configureMaster(); err != nil {
		return err
	}
	if err := in.postconfSet(in.mainSettings(opt, dataDir)); err != nil {
		return err
	}
	return in.postconfSet(opt.Main)
}

func (in *Instance) mainSettings(opt Options, dataDir string) map[string]string {
	mynetworks := opt.Mynetworks
	if mynetworks == "" {
		mynetworks = "127.0.0.0/8"
	}
	const refuse = "error:5.4.4 postfixtest: no transport for this destination in the private instance (add it to Options.Transport)"
	s := map[string]string{
		"compatibility_level":      compatibilityLevel(),
		"queue_directory":          in.QueueDir,
		"data_directory":           dataDir,
		"inet_interfaces":          "127.0.0.1",
		"inet_protocols":           "ipv4",
		"maillog_file":             in.LogFile,
		"maillog_file_prefixes":    in.Dir,
		"myhostname":               "mx.test.example",
		"mydomain":                 "test.example",
		"myorigin":                 "$myhostname",
		"mydestination":            "",
		"local_recipient_maps":     "",
		"alias_maps":               "",
		"alias_database":           "",
		"local_transport":          "error:5.1.1 postfixtest: local delivery is disabled",
		"relay_transport":          refuse,
		"default_transport":        refuse,
		"relayhost":                "",
		"relay_domains":            strings.Join(opt.RelayDomains, ", "),
		"mynetworks":               mynetworks,
		"transport_maps":           "texthash:" + filepath.Join(in.ConfigDir, "transport"),
		"smtpd_relay_restrictions": "permit_mynetworks, reject_unauth_destination",
		"smtp_host_lookup":         "native",
		"queue_run_delay":          "1s",
		"minimal_backoff_time":     "1s",
		"maximal_backoff_time":     "2s",
		"biff":                     "no",
		"append_dot_mydomain":      "no",
	}
	if opt.IPv6 {
		// postconf(5), inet_interfaces: "127.0.0.1, [::1]" (the brackets
		// are allowed, not required). Both are loopback addresses, so the
		// smtp client still does not bind to one (it would with a single
		// non-loopback address); its next hops stay [127.0.0.1]:port.
		s["inet_interfaces"] = "127.0.0.1, [::1]"
		s["inet_protocols"] = "all"
	}
	if cert, key, err := writeServerCert(in.ConfigDir, "mx.test.example"); err == nil {
		s["smtpd_tls_cert_file"] = cert
		s["smtpd_tls_key_file"] = key
		s["smtpd_tls_security_level"] = "may"
	}
	return s
}

// configureMaster switches chroot off everywhere, replaces every inet
// service (smtp, and submission or smtps where a machine enabled them) with
// one smtpd on 127.0.0.1:Port (and one on [::1]:Port with IPv6), and adds
// the postlog service maillog_file needs where master.cf lacks it.
func (in *Instance) configureMaster() error {
	if _, err := in.run("postconf", "-F", "*/*/chroot = n"); err != nil {
		return err
	}
	services, err := in.run("postconf", "-M")
	if err != nil {
		return err
	}
	hasPostlog := false
	for _, line := range strings.Split(services, "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		switch {
		case f[1] == "inet":
			if _, err := in.run("postconf", "-MX", f[0]+"/inet"); err != nil {
				return err
			}
		case f[0] == "postlog" && f[1] == "unix-dgram":
			hasPostlog = true
		}
	}
	for _, listen := range []string{in.Addr(), in.Addr6()} {
		if listen == "" {
			continue
		}
		if _, err := in.run("postconf", "-M",
			listen+"/inet="+listen+" inet n - n - - smtpd"); err != nil {
			return err
		}
	}
	if !hasPostlog {
		_, err = in.run("postconf", "-M",
			"postlog/unix-dgram=postlog unix-dgram n - n - 1 postlogd")
	}
	return err
}

// postconfSet applies settings with one `postconf -e`.
func (in *Instance) postconfSet(settings map[string]string) error {
	if len(settings) == 0 {
		return nil
	}
	args := []string{"-e"}
	for _, k := range slices.Sorted(maps.Keys(settings)) {
		args = append(args, k+"="+settings[k])
	}
	_, err := in.run("postconf", args...)
	return err
}

func (in *Instance) writeTransport(transport map[string]string) error {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(transport)) {
		fmt.Fprintf(&b, "%s\t%s\n", k, transport[k])
	}
	return os.WriteFile(filepath.Join(in.ConfigDir, "transport"), []byte(b.String()), 0o644)
}

// SetTransport rewrites the transport table and reloads Postfix.
func (in *Instance) SetTransport(t testing.TB, transport map[string]string) {
	t.Helper()
	if err := in.writeTransport(transport); err != nil {
		t.Fatalf("postfixtest: %v", err)
	}
	in.Reload(t)
}

// Postconf runs `postconf -c ConfigDir args...` and returns its output.
func (in *Instance) Postconf(t testing.TB, args ...string) string {
	t.Helper()
	out, err := in.run("postconf", args...)
	if err != nil {
		t.Fatalf("postfixtest: %v", err)
	}
	return out
}

// Shell runs `sh -e -c script` and returns its combined output, failing the
// test on error. MAIL_CONFIG names ConfigDir, so postconf and postfix
// commands in the script reach this instance even without -c, POSTFIX_DIR
// names Dir and /usr/sbin is in PATH. Use it to apply `splitrelay postfix --format postconf
// --postfix-config-dir ConfigDir` output.
func (in *Instance) Shell(t testing.TB, script string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", "-e", "-c", script)
	cmd.Env = append(os.Environ(), in.env...)
	cmd.Env = append(cmd.Env, "PATH="+os.Getenv("PATH")+":/usr/sbin:/sbin", "POSTFIX_DIR="+in.Dir)
	out, _, err := runFiles(cmd, true)
	if err != nil {
		t.Fatalf("postfixtest: sh -e -c %q: %v\n%s", script, err, out)
	}
	return out
}

// Reload runs `postfix reload`: new processes read main.cf, master.cf and
// the texthash: tables again.
func (in *Instance) Reload(t testing.TB) {
	t.Helper()
	if _, err := in.run("postfix", "reload"); err != nil {
		t.Fatalf("postfixtest: %v", err)
	}
}

// run runs a Postfix command with -c ConfigDir. It first backdates
// main.cf and master.cf: Postfix programs re-read a main.cf modified within
// the last second or two, 300 ms apart, until it is older, in case it is
// still being written (Postfix's dict_load_file, "pausing to let … finish
// changing"). Measured: 1.8 s for a `postconf -M` right after `postconf -e`.
func (in *Instance) run(name string, args ...string) (string, error) {
	past := time.Now().Add(-10 * time.Second)
	for _, f := range []string{"main.cf", "master.cf"} {
		_ = os.Chtimes(filepath.Join(in.ConfigDir, f), past, past) // missing before configure
	}
	return run(in.env, name, append([]string{"-c", in.ConfigDir}, args...)...)
}

func (in *Instance) cleanup(t testing.TB) {
	if t.Failed() {
		t.Logf("postfixtest: tail of %s:\n%s", in.LogFile, tail(in.Log(), 60))
		if q, err := in.run("postqueue", "-p"); err == nil {
			t.Logf("postfixtest: queue at the end:\n%s", q)
		}
	}
	if fileExists(filepath.Join(in.QueueDir, "pid", "master.pid")) {
		// `postfix stop` waits up to 5s for master to exit, then kills it.
		if _, err := in.run("postfix", "stop"); err != nil && !strings.Contains(err.Error(), "not running") {
			t.Logf("postfixtest: %v; aborting", err)
			if _, err := in.run("postfix", "abort"); err != nil {
				t.Logf("postfixtest: %v", err)
			}
		}
	}
	removeTempDir(t, in.Dir)
}

// compatibilityLevel is the newest level the installed Postfix knows of the
// ones we care about; setting it keeps the log free of backwards-compatibility
// warnings.
func compatibilityLevel() string {
	out, err := run(nil, "postconf", "-d", "-h", "mail_version")
	if err != nil {
		return "2"
	}
	var major, minor int
	if _, err := fmt.Sscanf(strings.TrimSpace(out), "%d.%d", &major, &minor); err != nil {
		return "2"
	}
	if major > 3 || major == 3 && minor >= 6 {
		return "3.6"
	}
	return "2"
}

// PristineMasterCF is the master.cf the Debian package ships, untouched by
// any site: the only template a test may start from (the machine's own
// /etc/postfix is the site's business and is never read).
const PristineMasterCF = "/usr/share/postfix/master.cf.dist"

// copyMasterCF copies the package's pristine master.cf.
func copyMasterCF(dst string) error {
	data, err := os.ReadFile(PristineMasterCF)
	if err != nil {
		return fmt.Errorf("no master.cf to start from (is the postfix package installed?): %w", err)
	}
	return os.WriteFile(dst, data, 0o644)
}
