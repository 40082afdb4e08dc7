package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/splitrelay/splitrelay/milter/postfixtest"
	"github.com/splitrelay/splitrelay/milter/sendmailtest"
)

// The Sendmail suite: the same splitrelay binary in front of a real,
// private Sendmail 8.17 (milter/sendmailtest), configured only by appending
// `splitrelay sendmail --format mc` to Debian's stock sendmail.mc, with the
// smtp-sinks of the Postfix suite as the primary system, the outside world
// and the routes.

// smSite is one Sendmail test's world.
type smSite struct {
	t        *testing.T
	bin      string
	sm       *sendmailtest.Instance
	gmail    *postfixtest.Sink // normal delivery for example.com and example.org
	internet *postfixtest.Sink // elsewhere.test
	sinks    map[string]*postfixtest.Sink
	cfgPath  string
	d        *daemon
	ds       *site // what the daemon helpers of harness_test.go need
}

// newSendmailSite starts the sinks, writes config ({{ROUTES}}: one route per
// sink; {{LISTEN}}: a loopback TCP port), starts Sendmail with the block
// `splitrelay sendmail --format mc` prints for it, and the daemon.
func newSendmailSite(t *testing.T, routeNames []string, config string, opt sendmailtest.Options) *smSite {
	t.Helper()
	return newSendmailSiteOn(t, routeNames, config, opt, "tcp")
}

// newSendmailSiteOn is newSendmailSite with the milter on a loopback TCP
// port ("tcp") or a unix socket ("unix", INPUT_MAIL_FILTER's S=local:).
func newSendmailSiteOn(t *testing.T, routeNames []string, config string, opt sendmailtest.Options, network string) *smSite {
	t.Helper()
	sendmailtest.Require(t)
	s := &smSite{t: t, bin: binary(t), sinks: map[string]*postfixtest.Sink{}}
	s.gmail = postfixtest.StartSink(t, "gmail")
	s.internet = postfixtest.StartSink(t, "internet")
	var routes strings.Builder
	for _, name := range routeNames {
		sk := postfixtest.StartSink(t, name)
		s.sinks[name] = sk
		fmt.Fprintf(&routes, "[routes.%s]\ndescription = \"test sink %s\"\nhost = \"127.0.0.1\"\nport = %d\n\n", name, name, sk.Port)
	}
	addr, listen := fmt.Sprintf("127.0.0.1:%d", postfixtest.FreePort(t)), ""
	if network == "unix" {
		addr = filepath.Join(t.TempDir(), "milter.sock")
		listen = "unix:" + addr
	} else {
		listen = "inet:" + addr
	}
	config = strings.ReplaceAll(config, "{{ROUTES}}", routes.String())
	config = strings.ReplaceAll(config, "{{LISTEN}}", listen)
	s.cfgPath = filepath.Join(t.TempDir(), "splitrelay.toml")
	s.writeConfig(config)
	opt.MC = s.mc()
	opt.RelayDomains = append(opt.RelayDomains, "example.com", "example.org")
	opt.Transport = map[string]int{"example.com": s.gmail.Port, "example.org": s.gmail.Port, "elsewhere.test": s.internet.Port}
	s.sm = sendmailtest.Start(t, opt)
	s.ds = &site{t: t, bin: s.bin, cfgPath: s.cfgPath, network: network, addr: addr}
	s.d = s.ds.start()
	return s
}

func (s *smSite) writeConfig(config string) {
	s.t.Helper()
	// Never the machine's /var/lib/splitrelay: a [state] of the test's own.
	if !strings.Contains(config, "[state]") {
		config += fmt.Sprintf("\n[state]\ndir = %q\n", filepath.Join(filepath.Dir(s.cfgPath), "state"))
	}
	if err := os.WriteFile(s.cfgPath, []byte(config), 0o644); err != nil {
		s.t.Fatal(err)
	}
}

// mc is what an administrator appends to sendmail.mc.
func (s *smSite) mc() string {
	s.t.Helper()
	out, err := exec.Command(s.bin, "sendmail", "-c", s.cfgPath, "--format", "mc").Output()
	if err != nil {
		s.t.Fatalf("splitrelay sendmail: %v\n%s", err, exitStderr(err))
	}
	return string(out)
}

// send sends one message and requires it to be queued; it returns the
// Sendmail queue ID.
func (s *smSite) send(m postfixtest.Mail) string {
	s.t.Helper()
	tr, code := s.sm.Send(s.t, m)
	id, ok := sendmailtest.QueueID(tr)
	if code != 0 || !ok {
		s.t.Fatalf("message not queued (exit %d):\n%s", code, tr)
	}
	return id
}

// landed waits until Sendmail's queue is empty, then checks that each sink
// received exactly the wanted envelope recipients.
func (s *smSite) landed(want map[string][]string) map[string][]postfixtest.Message {
	s.t.Helper()
	s.sm.WaitQueueEmpty(s.t, 60*time.Second)
	got := map[string][]postfixtest.Message{}
	for name, sk := range allSinks(s.gmail, s.internet, s.sinks) {
		msgs, rcpts := delivered(s.t, sk, len(want[name]))
		w := slices.Clone(want[name])
		if !slices.Equal(foldDomains(rcpts), foldDomains(w)) {
			s.t.Errorf("sink %s got recipients %q, want %q\nsendmail log:\n%s", name, rcpts, w, s.sm.Log())
		}
		got[name] = msgs
	}
	return got
}

// foldDomains sorts addresses with their domains lower-cased: whether the
// routed address keeps the client's domain case is the milter's business
// (the Postfix suite asserts it); this suite asserts where mail lands.
func foldDomains(addrs []string) []string {
	out := make([]string, len(addrs))
	for i, a := range addrs {
		if at := strings.LastIndexByte(a, '@'); at >= 0 {
			a = a[:at] + strings.ToLower(a[at:])
		}
		out[i] = a
	}
	slices.Sort(out)
	return out
}

// smReply is the reply to RCPT TO:<rcpt>; Sendmail puts "<rcpt>... "
// before the text.
func smReply(tr, rcpt string) string { return postfixtest.Reply(tr, "RCPT TO:<"+rcpt+">") }

// wantReply checks a Sendmail RCPT reply: code and enhanced code, then
// Sendmail's "<address>... " prefix, then text. Measured (8.17.1.9): 550
// replies, Sendmail's own or the milter's, carry the prefix; the milter's
// 452 and 530 reach the client verbatim (see wantPlainReply).
func wantReply(t *testing.T, tr, rcpt, codes, text string) {
	t.Helper()
	want := codes + " <" + rcpt + ">... " + text
	if r := smReply(tr, rcpt); !strings.HasPrefix(r, want) {
		t.Errorf("RCPT TO:<%s>: got %q, want %q\n%s", rcpt, r, want, tr)
	}
}

// wantPlainReply checks a RCPT reply that Sendmail passes on without the
// address prefix.
func wantPlainReply(t *testing.T, tr, rcpt, codes, text string) {
	t.Helper()
	want := codes + " " + text
	if r := smReply(tr, rcpt); !strings.HasPrefix(r, want) {
		t.Errorf("RCPT TO:<%s>: got %q, want %q\n%s", rcpt, r, want, tr)
	}
}

// TestSendmailSplitDelivery: one message whose recipients go to the
// primary system, to the legacy server and to both, each downstream with
// its original address, the client's NOTIFY and an ORCPT naming it.
func TestSendmailSplitDelivery(t *testing.T) {
	s := newSendmailSite(t, routes, config(false), sendmailtest.Options{})
	id := s.send(postfixtest.Mail{
		From:       "someone@elsewhere.test",
		HeaderFrom: "Someone <someone@elsewhere.test>",
		To:         []string{"alice@example.com", "carol@example.com", "sales@example.com", "dave@example.org", "Zed@Example.ORG"},
		RcptArgs:   map[string]string{"carol@example.com": "NOTIFY=SUCCESS,FAILURE"},
	})
	got := s.landed(map[string][]string{
		"gmail":   {"alice@example.com", "sales@example.com", "dave@example.org"},
		"legacy":  {"carol@example.com", "Zed@Example.ORG"},
		"archive": {"sales@example.com"},
	})
	checkLegacy(t, got["legacy"])
	s.d.waitLog(t, 5*time.Second, `msg="recipient routed"`, "queue_id="+id, "rcpt=carol@example.com",
		"routed_rcpt=carol@example.com.legacy.splitrelay.invalid", "route=legacy", `rule="Unknown addresses stay on the legacy server"`)
	s.d.waitLog(t, 5*time.Second, `msg="recipient copied"`, "queue_id="+id, "rcpt=sales@example.com", "route=archive")
	s.sm.WaitLog(t, id+`: to=.*<carol@example.com.legacy.splitrelay.invalid>.*mailer=splitrelay-legacy.*stat=Sent`, 5*time.Second)
}

// TestSendmailMessageKindAndFilters: inbound vs internal by the From
// header, and the envelope filters; the milter on a unix socket.
func TestSendmailMessageKindAndFilters(t *testing.T) {
	s := newSendmailSiteOn(t, routes, config(false), sendmailtest.Options{}, "unix")
	s.send(postfixtest.Mail{From: "p@partner.test", HeaderFrom: "p@partner.test", To: []string{"alice@example.com"}})
	s.send(postfixtest.Mail{From: "x@elsewhere.test", HeaderFrom: "x@elsewhere.test", To: []string{"bob@example.com"}})
	s.send(postfixtest.Mail{From: "boss@example.com", HeaderFrom: "The Boss <boss@hq.example.com>", To: []string{"bob@example.com"}})
	s.send(postfixtest.Mail{From: "p@PARTNER.test.example.net", HeaderFrom: "p@elsewhere.test", To: []string{"dave@example.org"}})
	s.landed(map[string][]string{
		"gmail":   {"bob@example.com", "bob@example.com", "dave@example.org"},
		"legacy":  {"alice@example.com"},
		"archive": {"bob@example.com"},
	})
	s.d.waitLog(t, 5*time.Second, `msg="recipient copied"`, "rcpt=bob@example.com", "kind=internal")
}

// TestSendmailRoutingNamespaceRefused: clients may not address the
// routing namespace: Sendmail refuses it (the generated Local_check_rcpt)
// and, with that removed, so does the milter.
func TestSendmailRoutingNamespaceRefused(t *testing.T) {
	s := newSendmailSite(t, routes, config(false), sendmailtest.Options{})
	bad := "bob@example.com.legacy.splitrelay.invalid"
	m := postfixtest.Mail{From: "x@elsewhere.test", To: []string{bad, "alice@example.com"}}
	tr, _ := s.sm.Send(t, m)
	wantReply(t, tr, bad, "550 5.1.2", "Bad destination system address")
	if s.d.logs() != "" && strings.Contains(s.d.logs(), "rcpt="+bad) {
		t.Errorf("Sendmail passed the namespace address to the milter:\n%s", s.d.logs())
	}
	// Defence in depth: without Sendmail's ruleset the milter refuses.
	mc := s.mc()
	i, j := strings.Index(mc, "LOCAL_RULESETS\n"), strings.LastIndex(mc, "divert(0)dnl")
	if i < 0 || j < i {
		t.Fatalf("no LOCAL_RULESETS block in:\n%s", mc)
	}
	s.sm.Rebuild(t, mc[:i]+mc[j:])
	tr, _ = s.sm.Send(t, m)
	wantReply(t, tr, bad, "550 5.1.2", "Bad destination system address")
	s.d.waitLog(t, 5*time.Second, `msg="recipient rejected"`, "rcpt="+bad)
	s.landed(map[string][]string{"gmail": {"alice@example.com", "alice@example.com"}})
}

// TestSendmailMilterDown: with the milter stopped (F=T) the client gets a
// 4xx and keeps the message; nothing is delivered.
func TestSendmailMilterDown(t *testing.T) {
	s := newSendmailSite(t, routes, config(false), sendmailtest.Options{})
	s.d.stop()
	tr, code := s.sm.Send(t, postfixtest.Mail{From: "x@elsewhere.test", To: []string{"carol@example.com", "alice@example.com"}})
	if _, ok := sendmailtest.QueueID(tr); ok || code == 0 {
		t.Errorf("message queued with the milter down (exit %d):\n%s", code, tr)
	}
	if !regexp.MustCompile(`(?m)^<\*\* +4\d\d 4\.`).MatchString(tr) {
		t.Errorf("milter down: want a 4xx tempfail:\n%s", tr)
	}
	s.landed(map[string][]string{})
}

// TestSendmailReload: SIGHUP with a broken file keeps the running rules;
// with a valid file the new rules apply, with Sendmail unchanged.
func TestSendmailReload(t *testing.T) {
	s := newSendmailSite(t, routes, config(false), sendmailtest.Options{})
	good, err := os.ReadFile(s.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	s.writeConfig(strings.Replace(string(good), `route = "legacy"`, `route = "nowhere"`, 1))
	s.d.cmd.Process.Signal(syscall.SIGHUP)
	s.d.waitLog(t, 10*time.Second, `msg="reload refused; keeping the running rules"`, `unknown route \"nowhere\"`)
	s.send(postfixtest.Mail{From: "x@elsewhere.test", To: []string{"carol@example.com"}})
	s.landed(map[string][]string{"legacy": {"carol@example.com"}})

	s.writeConfig(strings.Replace(string(good), `route = "legacy"`, `route = "archive"`, 1))
	s.d.cmd.Process.Signal(syscall.SIGHUP)
	s.d.waitLog(t, 10*time.Second, `msg="configuration reloaded"`)
	s.send(postfixtest.Mail{From: "x@elsewhere.test", To: []string{"carol@example.com"}})
	s.landed(map[string][]string{"legacy": {"carol@example.com"}, "archive": {"carol@example.com"}})
}

// TestSendmailUnmappedRoute: the daemon knows a route that sendmail.cf does
// not (the block not regenerated yet): the routed recipient is deferred
// and stays queued, the others are delivered; after the rebuild it is
// delivered to the new route.
func TestSendmailUnmappedRoute(t *testing.T) {
	s := newSendmailSite(t, routes, config(false), sendmailtest.Options{})
	full, err := os.ReadFile(s.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	// A third route, known to the daemon only.
	newer := postfixtest.StartSink(t, "newer")
	s.sinks["newer"] = newer
	cfg := strings.Replace(string(full), `route = "archive"`, `route = "newer"`, 1)
	cfg += fmt.Sprintf("\n[routes.newer]\nhost = \"127.0.0.1\"\nport = %d\n", newer.Port)
	s.writeConfig(cfg)
	s.d.cmd.Process.Signal(syscall.SIGHUP)
	s.d.waitLog(t, 10*time.Second, `msg="configuration reloaded"`)

	id := s.send(postfixtest.Mail{From: "x@elsewhere.test", To: []string{"sales@example.com", "alice@example.com"}})
	s.sm.WaitDeferred(t, id, 30*time.Second)
	s.gmail.WaitMessages(t, 1, 30*time.Second)
	if q := s.sm.QueueFile(t, id); !strings.Contains(q, "sales@example.com.newer.splitrelay.invalid") {
		t.Errorf("queued message lacks the routed recipient:\n%s", q)
	}
	if n := len(newer.Messages(t)); n != 0 {
		t.Errorf("newer got %d messages before Sendmail knew the route", n)
	}
	// The administrator regenerates the block and rebuilds sendmail.cf.
	s.sm.Rebuild(t, s.mc())
	s.sm.Flush(t)
	s.landed(map[string][]string{"gmail": {"alice@example.com", "sales@example.com"}, "newer": {"sales@example.com"}})
}

// TestSendmailBalancedRoute: a route with two primary hosts. The milter
// labels each message's routed recipients (p1, p2) by load, and the host
// label's LOCAL_RULE_0 rule sends them to that host; all recipients of a
// message on the route land together. The sinks listen on different
// ports, so Sendmail has one mailer per port (no fallback between them:
// what `check` warns about).
func TestSendmailBalancedRoute(t *testing.T) {
	a := postfixtest.StartSink(t, "a")
	b := postfixtest.StartSink(t, "b")
	cfg := strings.ReplaceAll(config(false), "{{ROUTES}}", fmt.Sprintf(`[routes.legacy]
primary = [{ host = "127.0.0.1", port = %d, load = 50 }, { host = "127.0.0.1", port = %d, load = 50 }]

[routes.archive]
host = "127.0.0.1"
port = %d
`, a.Port, b.Port, b.Port))
	s := newSendmailSite(t, nil, cfg, sendmailtest.Options{})
	s.sinks["a"], s.sinks["b"] = a, b
	const n = 20
	for range n {
		s.send(postfixtest.Mail{From: "x@elsewhere.test", To: []string{"carol@example.com", "zed@example.com"}})
	}
	s.sm.WaitQueueEmpty(t, 60*time.Second)
	var total, onA int
	for name, sk := range map[string]*postfixtest.Sink{"a": a, "b": b} {
		for _, m := range sk.Messages(t) {
			got := m.Recipients()
			slices.Sort(got)
			if !slices.Equal(got, []string{"carol@example.com", "zed@example.com"}) {
				t.Errorf("sink %s: a message with recipients %v, want carol and zed together", name, got)
			}
			total++
			if name == "a" {
				onA++
			}
		}
	}
	if total != n {
		t.Errorf("%d messages landed on the route's hosts, want %d\n%s", total, n, s.sm.Log())
	}
	// Both labels were used and resolved by their own rules (20 messages
	// at 50/50: both hosts get at least one unless the milter's choice is
	// broken; the chance of all on one host is 2^-19, where 8 messages
	// failed about once in 128 runs).
	if onA == 0 || onA == n {
		t.Errorf("all %d messages on one host (a got %d): the host labels are not balanced", n, onA)
	}
	s.d.waitLog(t, 5*time.Second, `msg="recipient routed"`, "routed_rcpt=carol@example.com.p1.legacy.splitrelay.invalid")
	s.d.waitLog(t, 5*time.Second, `msg="recipient routed"`, "routed_rcpt=carol@example.com.p2.legacy.splitrelay.invalid")
	s.sm.WaitLog(t, fmt.Sprintf(`mailer=splitrelay-legacy-%d, .*stat=Sent`, a.Port), 5*time.Second)
	s.sm.WaitLog(t, fmt.Sprintf(`mailer=splitrelay-legacy-%d, .*stat=Sent`, b.Port), 5*time.Second)
}
