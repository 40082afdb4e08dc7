package e2e

import (
	"bytes"
	"fmt"
	"github.com/splitrelay/splitrelay/cmd/splitrelay/internal/routetest"
	"math"
	"net"
	"net/smtp"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/splitrelay/splitrelay/milter/postfixtest"
)

// End-to-end tests of routes with every option of Google's "Add route":
// load balancing over primary hosts with fallback to the other primaries
// and to the secondary table, and the TLS requirements, through the real
// splitrelay binary in front of a private Postfix.

// routeConfig is a configuration template: {{LISTEN}} is the milter
// address, {{ROUTES}} the [routes.NAME] tables of the test. Nobody is in
// the directory, so every recipient is unrecognized and takes the route.
const routeConfig = `
[milter]
listen = "{{LISTEN}}"

[log]
level = "debug"

[organization]
domains = ["example.com"]

{{ROUTES}}

[[split_delivery]]
name = "Everyone is on the legacy servers"
messages = ["inbound", "internal"]
accounts = ["unrecognized"]
route = "legacy"
`

// newRouteSite starts Postfix, the normal-delivery sink and the daemon for
// the [routes.legacy] table given. ca, when not nil, becomes Postfix's
// smtp_tls_CAfile: the trust anchor for require_ca_signed.
func newRouteSite(t *testing.T, routes string, ca *routetest.CA) *site {
	t.Helper()
	postfixtest.Require(t)
	s := &site{t: t, bin: binary(t), sinks: map[string]*postfixtest.Sink{}}
	s.gmail = postfixtest.StartSink(t, "gmail")
	s.pf = postfixtest.Start(t, postfixtest.Options{
		RelayDomains: []string{"example.com"},
		Transport:    map[string]string{"example.com": s.gmail.NextHop()},
		Main:         map[string]string{"smtp_tls_loglevel": "1"},
	})
	if ca != nil {
		// pf.Dir is readable by the postfix user, unlike t.TempDir().
		s.pf.Postconf(t, "-e", "smtp_tls_CAfile="+ca.WriteFile(t, s.pf.Dir))
	}
	s.network, s.addr = "unix", filepath.Join(s.pf.QueueDir, "splitrelay", "milter.sock")
	config := strings.ReplaceAll(routeConfig, "{{ROUTES}}", routes)
	config = strings.ReplaceAll(config, "{{LISTEN}}", "unix:"+s.addr)
	s.cfgPath = filepath.Join(s.pf.Dir, "splitrelay.toml")
	s.writeConfig(config)
	s.attach()
	s.d = s.start()
	return s
}

// sendMany sends n messages, one recipient each (prefix<i>@example.com),
// in one SMTP session: fast, and bounded by timeout. It returns the
// recipients.
func (s *site) sendMany(prefix string, n int, timeout time.Duration) []string {
	s.t.Helper()
	conn, err := net.DialTimeout("tcp", s.pf.Addr(), 5*time.Second)
	if err != nil {
		s.t.Fatal(err)
	}
	conn.SetDeadline(time.Now().Add(timeout))
	c, err := smtp.NewClient(conn, "mx.test.example")
	if err != nil {
		s.t.Fatal(err)
	}
	defer c.Close()
	if err := c.Hello("client.test"); err != nil {
		s.t.Fatal(err)
	}
	var rcpts []string
	for i := range n {
		rcpt := fmt.Sprintf("%s%d@example.com", prefix, i)
		if err := c.Mail("sender@elsewhere.test"); err != nil {
			s.t.Fatalf("message %d: MAIL: %v", i, err)
		}
		if err := c.Rcpt(rcpt); err != nil {
			s.t.Fatalf("message %d: RCPT: %v", i, err)
		}
		w, err := c.Data()
		if err != nil {
			s.t.Fatalf("message %d: DATA: %v", i, err)
		}
		fmt.Fprintf(w, "From: sender@elsewhere.test\r\nTo: %s\r\nSubject: balance %d\r\n\r\nmessage %d\r\n", rcpt, i, i)
		if err := w.Close(); err != nil {
			s.t.Fatalf("message %d: end of data: %v", i, err)
		}
		rcpts = append(rcpts, rcpt)
	}
	c.Quit()
	return rcpts
}

// count waits until the sinks hold want recipients in all (the queue is
// empty first) and returns how many each received.
func count(t *testing.T, pf *postfixtest.Instance, want int, sinks ...*postfixtest.Sink) []int {
	t.Helper()
	pf.WaitQueueEmpty(t, 90*time.Second)
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, total := make([]int, len(sinks)), 0
		for i, sk := range sinks {
			for _, m := range sk.Messages(t) {
				got[i] += len(m.Rcpts)
			}
			total += got[i]
		}
		if total >= want || time.Now().After(deadline) {
			if total != want {
				t.Fatalf("sinks received %v = %d recipients, want %d", got, total, want)
			}
			return got
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestE2ERouteLoadBalancing: two primaries at 70/30 share the route's mail
// by load; with one primary stopped its share moves to the other; with
// both stopped the secondary takes everything. Downstream always sees the
// original recipient.
func TestE2ERouteLoadBalancing(t *testing.T) {
	a, b := postfixtest.StartSink(t, "primary-a"), postfixtest.StartSink(t, "primary-b")
	backup := postfixtest.StartSink(t, "secondary")
	s := newRouteSite(t, fmt.Sprintf(`[routes.legacy]
description = "two Exchange servers and a backup"
primary = [{ host = "127.0.0.1", port = %d, load = 70 }, { host = "127.0.0.1", port = %d, load = 30 }]
secondary = [{ host = "127.0.0.1", port = %d, load = 100 }]
`, a.Port, b.Port, backup.Port), nil)

	// 1. Balance. Each message picks primary A with p = 0.7: over n
	// messages A's count is binomial(n, 0.7), mean 0.7n, standard deviation
	// sqrt(n*0.7*0.3) (14.5 for n = 1000). Within 4 standard deviations
	// (±58, ±5.8 points) a correct implementation fails once in ~16,000
	// runs; a broken one (50/50: 500, or 60/40: 600) lands far outside.
	const n = 1000
	start := time.Now()
	rcpts := s.sendMany("u", n, 2*time.Minute)
	got := count(t, s.pf, n, a, b, backup)
	mean, sd := 0.7*n, math.Sqrt(n*0.7*0.3)
	t.Logf("%d messages at 70/30 in %v: primary A %d, primary B %d, secondary %d (expected A %.0f ± %.1f, tolerance ± %.1f)",
		n, time.Since(start).Round(time.Millisecond), got[0], got[1], got[2], mean, sd, 4*sd)
	if math.Abs(float64(got[0])-mean) > 4*sd || got[2] != 0 {
		t.Errorf("A %d, B %d, secondary %d: want A within %.0f ± %.1f and nothing on the secondary", got[0], got[1], got[2], mean, 4*sd)
	}
	// The original address downstream, never the routing namespace.
	seen := map[string]bool{}
	for _, sk := range []*postfixtest.Sink{a, b} {
		for _, m := range sk.Messages(t) {
			for _, r := range m.Rcpts {
				seen[r.Addr] = true
				if strings.Contains(r.Addr+r.Args, "splitrelay.invalid") {
					t.Errorf("routing namespace leaked downstream: %s %s", r.Addr, r.Args)
				}
			}
		}
	}
	for _, r := range rcpts {
		if !seen[r] {
			t.Errorf("%s not delivered under its own address", r)
			break
		}
	}
	// Our log names the chosen host next to the route; Postfix's the label.
	s.d.waitLog(t, 5*time.Second, `msg="recipient routed"`, "route=legacy", fmt.Sprintf("host=127.0.0.1:%d", a.Port))
	s.d.waitLog(t, 5*time.Second, `msg="recipient routed"`, "route=legacy", fmt.Sprintf("host=127.0.0.1:%d", b.Port))
	if !strings.Contains(s.pf.Log(), ".p2.legacy.splitrelay.invalid>") {
		t.Error("Postfix's log shows no address with host label p2")
	}

	// 2. Primary A stops: its share goes to B, none to the secondary.
	a.Stop(t)
	const n2 = 40
	s.sendMany("v", n2, time.Minute)
	got2 := count(t, s.pf, n+n2, a, b, backup)
	t.Logf("primary A stopped, %d messages: A %d, B %d, secondary %d", n2, got2[0]-got[0], got2[1]-got[1], got2[2]-got[2])
	if got2[0] != got[0] || got2[1] != got[1]+n2 || got2[2] != 0 {
		t.Errorf("with A stopped: A +%d, B +%d, secondary +%d; want all %d on B", got2[0]-got[0], got2[1]-got[1], got2[2], n2)
	}

	// 3. Both primaries stop: the secondary takes the mail.
	b.Stop(t)
	const n3 = 20
	s.sendMany("w", n3, time.Minute)
	got3 := count(t, s.pf, n+n2+n3, a, b, backup)
	t.Logf("both primaries stopped, %d messages: secondary %d", n3, got3[2])
	if got3[2] != n3 {
		t.Errorf("with both primaries stopped the secondary got %d, want %d", got3[2], n3)
	}
	if n := len(s.gmail.Messages(t)); n != 0 {
		t.Errorf("normal delivery got %d messages; every recipient is routed", n)
	}
}

// TestE2ERouteRequireTLS: a require_tls route towards a server without
// TLS keeps the message deferred (nothing is sent in clear); once a
// TLS-capable server listens there, it is delivered, over TLS.
func TestE2ERouteRequireTLS(t *testing.T) {
	plain := postfixtest.StartSink(t, "plain")
	s := newRouteSite(t, fmt.Sprintf(`[routes.legacy]
host = "127.0.0.1"
port = %d
require_tls = true
`, plain.Port), nil)
	id := s.send(postfixtest.Mail{From: "x@elsewhere.test", To: []string{"carol@example.com"}})
	e := s.pf.WaitDeferred(t, id, 30*time.Second)
	if len(e.Recipients) != 1 || !strings.Contains(e.Recipients[0].DelayReason, "TLS is required") {
		t.Errorf("deferred entry %+v: want a delay reason about TLS", e)
	}
	if q := s.pf.Queue(t); !strings.Contains(q, id) || !strings.Contains(q, "carol@example.com.legacy.splitrelay.invalid") {
		t.Errorf("postqueue -p does not show the deferred message:\n%s", q)
	}
	if msgs := plain.Messages(t); len(msgs) != 0 {
		t.Fatalf("the server without TLS received %d messages in clear", len(msgs))
	}

	// A TLS-capable server on the same address: the retry delivers.
	plain.Stop(t)
	cert := (*routetest.CA)(nil).Leaf(t, "localhost") // require_tls alone checks no certificate
	tlsSrv := routetest.StartSMTP(t, plain.Addr, "tls.test", routetest.ServerTLS{Cert: &cert})
	s.pf.Flush(t)
	s.pf.WaitQueueEmpty(t, 60*time.Second)
	if got := tlsSrv.Rcpts(); len(got) != 1 || got[0] != "carol@example.com" || !tlsSrv.AllTLS() {
		t.Errorf("TLS server got %q (all over TLS: %v), want carol@example.com over TLS", got, tlsSrv.AllTLS())
	}
}

// TestE2ERouteVerifiedTLS: require_ca_signed + validate_hostname is
// Postfix's "verify" with match=hostname: a self-signed certificate for
// the right name leaves the message deferred; a certificate from the
// trusted (test) CA naming the host gets it delivered.
func TestE2ERouteVerifiedTLS(t *testing.T) {
	ca := routetest.NewCA(t)
	port := postfixtest.FreePort(t)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	self := (*routetest.CA)(nil).Leaf(t, "localhost")
	selfSrv := routetest.StartSMTP(t, addr, "localhost", routetest.ServerTLS{Cert: &self})
	s := newRouteSite(t, fmt.Sprintf(`[routes.legacy]
host = "localhost"
port = %d
require_tls = true
require_ca_signed = true
validate_hostname = true
`, port), ca)
	id := s.send(postfixtest.Mail{From: "x@elsewhere.test", To: []string{"carol@example.com"}})
	e := s.pf.WaitDeferred(t, id, 30*time.Second)
	if len(e.Recipients) != 1 || !strings.Contains(e.Recipients[0].DelayReason, "certificate") {
		t.Errorf("deferred entry %+v: want a delay reason about the certificate", e)
	}
	if got := selfSrv.Rcpts(); len(got) != 0 {
		t.Fatalf("the server with a self-signed certificate received %q", got)
	}
	t.Logf("self-signed: deferred: %s", e.Recipients[0].DelayReason)

	// Postfix's own words (smtp_tls_loglevel = 1) say why.
	s.pf.WaitLog(t, "certificate verification failed for localhost.*self.signed", 10*time.Second)

	// A certificate from the trusted CA for another name: still deferred.
	selfSrv.Stop()
	other := ca.Leaf(t, "other.example.net")
	otherSrv := routetest.StartSMTP(t, addr, "localhost", routetest.ServerTLS{Cert: &other})
	s.pf.Flush(t)
	s.pf.WaitLog(t, "certificate verification failed for localhost.*hostname mismatch", 30*time.Second)
	s.pf.WaitDeferred(t, id, 30*time.Second)
	if got := otherSrv.Rcpts(); len(got) != 0 {
		t.Fatalf("the server with a certificate for another name received %q", got)
	}

	otherSrv.Stop()
	good := ca.Leaf(t, "localhost")
	goodSrv := routetest.StartSMTP(t, addr, "localhost", routetest.ServerTLS{Cert: &good})
	s.pf.Flush(t)
	s.pf.WaitQueueEmpty(t, 60*time.Second)
	if got := goodSrv.Rcpts(); len(got) != 1 || got[0] != "carol@example.com" || !goodSrv.AllTLS() {
		t.Errorf("CA-signed server got %q, want carol@example.com over TLS", got)
	}
	if !strings.Contains(s.pf.Log(), "Verified TLS connection established to localhost") {
		t.Errorf("Postfix did not log a verified TLS connection:\n%s", s.pf.Log())
	}
}

// TestExplainHosts: explain names the host picked for the message on a
// multiple-host route (reproducibly with --seed), and its next-hop list.
func TestExplainHosts(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "routes.toml")
	routes := `[routes.legacy]
primary = [{ host = "ex1.corp.example.com", load = 70 }, { host = "ex2.corp.example.com", load = 30 }]
secondary = [{ host = "backup.corp.example.com", port = 2525 }]
`
	config := strings.ReplaceAll(strings.ReplaceAll(routeConfig, "{{ROUTES}}", routes), "{{LISTEN}}", "inet:127.0.0.1:10028")
	if err := os.WriteFile(cfg, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	picked := map[string]bool{}
	for seed := range 20 {
		code, stdout, stderr := runCmd(t, "explain", "-c", cfg, "--from", "x@elsewhere.test", "--to", "carol@example.com", "--seed", fmt.Sprint(seed))
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		out := bytes.NewBufferString(stdout)
		for _, l := range strings.Split(out.String(), "\n") {
			if f := strings.Fields(l); len(f) > 1 && f[0] == "host" {
				picked[f[1]] = true
			}
		}
		if seed == 0 {
			golden(t, "../../../testdata/cmd/explain-hosts.golden", strings.ReplaceAll(out.String(), cfg, "routes.toml"))
		}
	}
	if !picked["ex1.corp.example.com:25"] || !picked["ex2.corp.example.com:25"] || len(picked) != 2 {
		t.Errorf("over 20 seeds explain picked %v, want both primaries and nothing else", picked)
	}
}
