package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/splitrelay/splitrelay/milter/postfixtest"
)

// Real relay clients of seed 003, end to end: a second private Postfix
// configured as the seed tells administrators (relayhost = the relay
// service), pointed at the gateway (a private Postfix with splitrelay and a
// [relay] policy). Mail is injected into the client's own smtpd; the client
// delivers it to the gateway with its own SMTP client, its own connection
// cache, TLS and SASL, and bounces what the gateway refuses. The gateway's
// refusals must reach the client's log and its DSNs with Google's reply.

// relayClient is a private Postfix that relays everything through the
// gateway.
type relayClient struct {
	pf *postfixtest.Instance
	gw *site
}

// clientOpts is how the client Postfix talks to the gateway.
type clientOpts struct {
	bind     string // smtp_bind_address: the gateway's allowlist tells clients apart by it
	helo     string // smtp_helo_name
	tls      bool   // smtp_tls_security_level = encrypt (else none)
	user, pw string // SMTP AUTH (smtp_sasl_*) when user is set
}

// startRelayClient starts the client Postfix. Its connection cache is on
// for the gateway (smtp_connection_cache_destinations), with one delivery
// at a time to it (smtp_destination_concurrency_limit = 1), so messages
// queued together share one SMTP session, as the seed recommends to bulk
// senders; TLS sessions are reused through tlsproxy
// (smtp_tls_connection_reuse, Postfix >= 3.4).
func startRelayClient(t *testing.T, gw *site, o clientOpts) *relayClient {
	t.Helper()
	requireCyrusPlain(t)
	hop := fmt.Sprintf("[127.0.0.1]:%d", gw.pf.Port)
	c := &relayClient{gw: gw}
	c.pf = postfixtest.Start(t, postfixtest.Options{Main: map[string]string{
		// not the gateway's own name (mx.test.example): Postfix's
		// client refuses a server that greets with its own name
		"myhostname":                         "mta1.example.com",
		"relayhost":                          hop,
		"default_transport":                  "smtp",
		"relay_transport":                    "smtp",
		"smtp_connection_cache_on_demand":    "yes",
		"smtp_connection_cache_destinations": hop,
		"smtp_connection_cache_time_limit":   "3s",
		"smtp_destination_concurrency_limit": "1",
		"smtp_tls_connection_reuse":          "yes",
		"smtp_sasl_security_options":         "noanonymous",
		"smtp_sasl_tls_security_options":     "noanonymous",
		"bounce_queue_lifetime":              "1h",
		"maximal_queue_lifetime":             "1h",
	}})
	// The map lives in the instance's directory, known once started.
	c.pf.Postconf(t, "-e", "smtp_sasl_password_maps = texthash:"+filepath.Join(c.pf.ConfigDir, "sasl_passwd"))
	// smtp_tls_connection_reuse hands TLS to tlsproxy(8), which Debian's
	// pristine master.cf does not define.
	c.pf.Postconf(t, "-M", "tlsproxy/unix=tlsproxy unix - - n - 0 tlsproxy")
	c.set(t, o)
	return c
}

// requireCyrusPlain: Postfix's SMTP client authenticates with Cyrus SASL,
// whose PLAIN and LOGIN mechanisms are Debian's libsasl2-modules
// (contrib/scripts/deps.sh installs it). Without them a client with
// smtp_sasl_auth_enable defers every message ("no mechanism available").
func requireCyrusPlain(t *testing.T) {
	t.Helper()
	if m, _ := filepath.Glob("/usr/lib/*/sasl2/libplain.so*"); len(m) > 0 {
		return
	}
	if os.Getenv("SPLITRELAY_E2E") == "1" {
		t.Fatal("Cyrus SASL PLAIN module missing (apt-get install libsasl2-modules, or make deps)")
	}
	t.Skip("Cyrus SASL PLAIN module missing (apt-get install libsasl2-modules)")
}

// set reconfigures how the client reaches the gateway and reloads it.
func (c *relayClient) set(t *testing.T, o clientOpts) {
	t.Helper()
	hop := fmt.Sprintf("[127.0.0.1]:%d", c.gw.pf.Port)
	secret := ""
	if o.user != "" {
		secret = fmt.Sprintf("%s %s:%s\n", hop, o.user, o.pw)
	}
	if err := os.WriteFile(filepath.Join(c.pf.ConfigDir, "sasl_passwd"), []byte(secret), 0o644); err != nil {
		t.Fatal(err)
	}
	level, sasl := "none", "no"
	if o.tls {
		level = "encrypt"
	}
	if o.user != "" {
		sasl = "yes"
	}
	c.pf.Postconf(t, "-e",
		"smtp_bind_address = "+o.bind,
		"smtp_helo_name = "+o.helo,
		"smtp_tls_security_level = "+level,
		"smtp_sasl_auth_enable = "+sasl,
	)
	c.pf.Reload(t)
}

// hold makes the client queue mail without delivering it (defer_transports),
// so that what is injected next leaves together; release flushes it.
func (c *relayClient) hold(t *testing.T) {
	t.Helper()
	c.pf.Postconf(t, "-e", "defer_transports = smtp")
	c.pf.Reload(t)
}

// release lets the held mail go. Mail deferred by defer_transports waits
// for a flush, and a flush sent while `postfix reload` is still replacing
// qmgr can be handled with the old setting (measured: the mail then sat in
// the queue for a minute); so it flushes until no message is deferred
// for that reason any more, at most 30 s.
func (c *relayClient) release(t *testing.T) {
	t.Helper()
	c.pf.Postconf(t, "-e", "defer_transports =")
	c.pf.Reload(t)
	for deadline := time.Now().Add(30 * time.Second); ; {
		c.pf.Flush(t)
		if !strings.Contains(c.pf.Queue(t), "deferred transport") || time.Now().After(deadline) {
			return
		}
		time.Sleep(time.Second)
	}
}

// inject hands a message to the client's smtpd (as the site's own users
// and applications would) and returns the client's queue ID.
func (c *relayClient) inject(t *testing.T, m postfixtest.Mail) string {
	t.Helper()
	m.Helo = "app.example.com"
	tr, code := c.pf.Send(t, m)
	id, ok := postfixtest.QueueID(tr)
	if code != 0 || !ok {
		t.Fatalf("client did not queue the message (exit %d):\n%s", code, tr)
	}
	return id
}

// settle waits until both the client's and the gateway's queues are empty.
func (c *relayClient) settle(t *testing.T) {
	t.Helper()
	c.pf.WaitQueueEmpty(t, 60*time.Second)
	c.gw.pf.WaitQueueEmpty(t, 30*time.Second)
}

// status waits for the client's delivery status line of queue ID id and
// recipient rcpt with the given status (sent, bounced, deferred) and
// returns it.
func (c *relayClient) status(t *testing.T, id, rcpt, status string) string {
	t.Helper()
	pat := regexp.QuoteMeta(id+": to=<"+rcpt+">") + `.*status=` + status
	return c.pf.WaitLog(t, pat, 60*time.Second)[0]
}

// refused waits until the client has bounced or deferred (status) rcpt of
// message id because the gateway answered RCPT TO with reply: the client's
// log quotes it as "host 127.0.0.1[127.0.0.1] said: REPLY (in reply to
// RCPT TO command)".
func (c *relayClient) refused(t *testing.T, id, rcpt, status, reply string) {
	t.Helper()
	pat := regexp.QuoteMeta(id+": to=<"+rcpt+">") + `.*status=` + status + `.*` +
		regexp.QuoteMeta("said: "+reply) + `.*` + regexp.QuoteMeta("(in reply to RCPT TO command)")
	c.pf.WaitLog(t, pat, 60*time.Second)
}

var disconnectMail = regexp.MustCompile(`disconnect from \S+\[([0-9.]+)\].* mail=(\d+)`)

// sessionsFrom returns, per SMTP session the gateway's smtpd had with
// client address addr, how many MAIL commands it carried (Postfix's
// disconnect line: "mail=3" or "mail=2/3" when some failed).
func sessionsFrom(gw *postfixtest.Instance, addr string) []int {
	var n []int
	for _, line := range gw.LogLines("disconnect from ") {
		if m := disconnectMail.FindStringSubmatch(line); m != nil && m[1] == addr {
			v, _ := strconv.Atoi(m[2])
			n = append(n, v)
		}
	}
	return n
}

// waitSessionOf waits for a finished gateway session from addr that carried
// at least n transactions.
func waitSessionOf(t *testing.T, gw *postfixtest.Instance, addr string, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		for _, v := range sessionsFrom(gw, addr) {
			if v >= n {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no gateway session from %s carried %d messages: %v\n%s", addr, n, sessionsFrom(gw, addr), gw.Log())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// dsnOf returns the sink message whose envelope sender is null and whose
// body mentions text (a DSN quoting the gateway's reply).
func dsnOf(msgs []postfixtest.Message, rcpt, text string) (postfixtest.Message, bool) {
	for _, m := range msgs {
		if m.From != "" || len(m.Rcpts) != 1 || m.Rcpts[0].Addr != rcpt {
			continue
		}
		if strings.Contains(string(m.Data), text) {
			return m, true
		}
	}
	return postfixtest.Message{}, false
}

// TestE2EClientPostfixNetwork: a Postfix client trusted by its address
// (Qmail's, Domino's and GroupWise's set-up too), plain SMTP.
func TestE2EClientPostfixNetwork(t *testing.T) {
	s := newSite(t, nil, relayBase+`
[relay]
allowed_senders = "domain_addresses"
require_network = true
log_bad_helo = true
networks = [{ cidr = "127.0.0.5", description = "mta1 (Postfix relayhost)", enabled = true }]
[relay.limits]
recipients_per_message = 2
`)
	c := startRelayClient(t, s, clientOpts{bind: "127.0.0.5", helo: "mta1.example.com"})

	// As generated (`splitrelay postfix`): the allowed client relays.
	id0 := c.inject(t, postfixtest.Mail{From: "scanner@example.com", To: []string{"x0@elsewhere.test"}})
	c.status(t, id0, "x0@elsewhere.test", "sent")

	// From here on, what is refused is refused by the milter, with
	// Google's replies: the generated settings leave relay recipients to
	// it (issue 11).
	c.hold(t)
	id1 := c.inject(t, postfixtest.Mail{From: "scanner@example.com", To: []string{"x1@elsewhere.test"}})
	id2 := c.inject(t, postfixtest.Mail{From: "scanner@example.com", To: []string{"a@elsewhere.test", "b@elsewhere.test", "c@elsewhere.test"}})
	id3 := c.inject(t, postfixtest.Mail{From: "someone@elsewhere.test", To: []string{"y@elsewhere.test"}})
	id4 := c.inject(t, postfixtest.Mail{From: "", To: []string{"d@elsewhere.test", "e@elsewhere.test"}})
	id5 := c.inject(t, postfixtest.Mail{From: "scanner@example.com", To: []string{"alice@example.com"}})
	c.release(t)

	c.status(t, id1, "x1@elsewhere.test", "sent")
	// Two recipients per transaction: the third is deferred with 452
	// and sent by the client in another transaction.
	c.refused(t, id2, "c@elsewhere.test", "deferred", "452 4.5.3 Your message has too many recipients")
	c.status(t, id2, "c@elsewhere.test", "sent")
	// A sender outside our domains: bounced to the sender, and that
	// bounce (null sender, our HELO, one recipient) is relayed.
	c.refused(t, id3, "y@elsewhere.test", "bounced", "550 5.7.1 Invalid credentials for relay")
	// A null sender with two recipients: the second is refused.
	c.status(t, id4, "d@elsewhere.test", "sent")
	c.refused(t, id4, "e@elsewhere.test", "bounced", "550 5.5.3 Multi-recipient bounce")
	c.status(t, id5, "alice@example.com", "sent")
	c.settle(t)
	// The held messages left through the connection cache: one gateway
	// session carried several of them.
	waitSessionOf(t, s.pf, "127.0.0.5", 3)

	// Another address (not in the allowlist): refused, bounced to the
	// sender through the gateway (mail to our domains is never relay).
	c.set(t, clientOpts{bind: "127.0.0.7", helo: "mta2.example.com"})
	id6 := c.inject(t, postfixtest.Mail{From: "scanner@example.com", To: []string{"z@elsewhere.test"}})
	c.refused(t, id6, "z@elsewhere.test", "bounced", "550 5.7.0 Mail relay denied")

	// HELO localhost from the allowed address: a bounce cannot be tied to
	// our domains; refused, and logged as a bad HELO.
	c.set(t, clientOpts{bind: "127.0.0.5", helo: "localhost"})
	id7 := c.inject(t, postfixtest.Mail{From: "", To: []string{"f@elsewhere.test"}})
	c.refused(t, id7, "f@elsewhere.test", "bounced", "550 5.7.1 Invalid credentials for relay")
	// HELO with the gateway's own name: relayed (the address is
	// allowed), logged as a bad HELO.
	c.set(t, clientOpts{bind: "127.0.0.5", helo: "mx.test.example"})
	id8 := c.inject(t, postfixtest.Mail{From: "scanner@example.com", To: []string{"g@elsewhere.test"}})
	c.status(t, id8, "g@elsewhere.test", "sent")
	c.settle(t)

	got := s.landed(map[string][]string{
		"internet": {"x0@elsewhere.test", "x1@elsewhere.test", "a@elsewhere.test", "b@elsewhere.test", "c@elsewhere.test",
			"someone@elsewhere.test", "d@elsewhere.test", "g@elsewhere.test"},
		"gmail": {"alice@example.com", "scanner@example.com"},
	})
	if _, ok := dsnOf(got["internet"], "someone@elsewhere.test", "550 5.7.1 Invalid credentials for relay"); !ok {
		t.Errorf("no DSN quoting 550 5.7.1 reached someone@elsewhere.test")
	}
	if _, ok := dsnOf(got["gmail"], "scanner@example.com", "550 5.7.0 Mail relay denied"); !ok {
		t.Errorf("no DSN quoting 550 5.7.0 Mail relay denied reached scanner@example.com")
	}
	s.d.waitLog(t, 5*time.Second, `msg="relay client HELO is not a real name"`, "client_addr=127.0.0.5", "helo=localhost", "reason=localhost")
	s.d.waitLog(t, 5*time.Second, `msg="relay client HELO is not a real name"`, "client_addr=127.0.0.5", "helo=mx.test.example", "reason=gateway_name")
}

// TestE2EClientPostfixSASL: a Postfix client with SMTP AUTH over STARTTLS
// (smtp_sasl_auth_enable, smtp_tls_security_level = encrypt), as macOS
// Server's "authenticate to the relay host" does, against a gateway that
// requires AUTH and TLS and registered users.
func TestE2EClientPostfixSASL(t *testing.T) {
	s := newSite(t, nil, relayBase+`
[relay]
allowed_senders = "registered_users"
require_network = false
require_smtp_auth = true
require_tls = true
`)
	dc := postfixtest.StartDovecot(t, map[string]string{"alice@example.com": "s3cret"})
	s.pf.EnableSASL(t, dc)
	authed := clientOpts{bind: "127.0.0.6", helo: "mta1.example.com", tls: true, user: "alice@example.com", pw: "s3cret"}
	c := startRelayClient(t, s, authed)

	// As generated: AUTH over TLS relays; the three messages leave
	// through the connection cache (measured: one session carried two of
	// them, the first TLS session was not cached).
	c.hold(t)
	var ids []string
	for i := range 3 {
		ids = append(ids, c.inject(t, postfixtest.Mail{From: "alice@example.com", To: []string{fmt.Sprintf("r%d@elsewhere.test", i)}}))
	}
	c.release(t)
	for i, id := range ids {
		c.status(t, id, fmt.Sprintf("r%d@elsewhere.test", i), "sent")
	}
	c.settle(t)
	waitSessionOf(t, s.pf, "127.0.0.6", 2)
	if l := s.pf.LogLines("disconnect from "); !containsAll(strings.Join(l, "\n"), []string{"starttls=1", "auth=1"}) {
		t.Errorf("gateway sessions without STARTTLS and AUTH:\n%s", strings.Join(l, "\n"))
	}

	// Authenticated, but not a registered user: refused, the DSN goes
	// to the sender in our domain.
	idBob := c.inject(t, postfixtest.Mail{From: "bob@example.com", To: []string{"s@elsewhere.test"}})
	c.refused(t, idBob, "s@elsewhere.test", "bounced", "550 5.7.0 Mail Sending denied")
	// A bounce (null sender) with AUTH: allowed whatever the HELO.
	c.set(t, clientOpts{bind: "127.0.0.6", helo: "localhost", tls: true, user: "alice@example.com", pw: "s3cret"})
	idNull := c.inject(t, postfixtest.Mail{From: "", To: []string{"n@elsewhere.test"}})
	c.status(t, idNull, "n@elsewhere.test", "sent")
	// TLS without AUTH.
	c.set(t, clientOpts{bind: "127.0.0.6", helo: "mta1.example.com", tls: true})
	idNoAuth := c.inject(t, postfixtest.Mail{From: "alice@example.com", To: []string{"t@elsewhere.test"}})
	c.refused(t, idNoAuth, "t@elsewhere.test", "bounced", "550 5.7.0 Mail relay denied")
	// AUTH without TLS (the permissive gateway offers AUTH in clear).
	c.set(t, clientOpts{bind: "127.0.0.6", helo: "mta1.example.com", user: "alice@example.com", pw: "s3cret"})
	idClear := c.inject(t, postfixtest.Mail{From: "alice@example.com", To: []string{"u@elsewhere.test"}})
	c.refused(t, idClear, "u@elsewhere.test", "bounced", "530 5.7.0 Must issue a STARTTLS command first")
	c.settle(t)

	got := s.landed(map[string][]string{
		"internet": {"r0@elsewhere.test", "r1@elsewhere.test", "r2@elsewhere.test", "n@elsewhere.test"},
		"gmail":    {"bob@example.com", "alice@example.com", "alice@example.com"},
	})
	for _, want := range []struct{ rcpt, text string }{
		{"bob@example.com", "550 5.7.0 Mail Sending denied"},
		{"alice@example.com", "550 5.7.0 Mail relay denied"},
		{"alice@example.com", "530 5.7.0 Must issue a STARTTLS command first"},
	} {
		if _, ok := dsnOf(got["gmail"], want.rcpt, want.text); !ok {
			t.Errorf("no DSN to %s quoting %q", want.rcpt, want.text)
		}
	}
}
