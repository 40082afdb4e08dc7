package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/splitrelay/splitrelay/milter/postfixtest"
)

// openRelayBattery is every form of an outside recipient that an open
// relay test throws at the gateway (both MTAs' suites): each must be
// refused to a client that may not relay.
var openRelayBattery = []string{
	"victim@elsewhere.test",
	"victim%elsewhere.test@example.com",
	"elsewhere.test!victim@example.com",
	`"victim@elsewhere.test"@example.com`,
	"@example.com:victim@elsewhere.test",
	"victim@elsewhere.test.",
	"Victim@ElseWhere.TEST",
	"victim@xn--exmple-4nf.com",
	"victim@example.com.elsewhere.test",
	"victim@example.com.legacy.splitrelay.invalid",
	"victim%elsewhere.test",
}

// The relay suite: a real Postfix with STARTTLS (a certificate generated
// for the instance) and SASL (a private Dovecot), clients on distinct
// loopback addresses (127.0.0.2 is the allowed "print server", 127.0.0.3
// is not). Everything runs with the generated settings in place: where
// Postfix refuses a relay recipient itself, its reply must be the milter's
// (Google's), word for word. Postfix cannot say Google's words itself (it
// prefixes access table replies), so the generated settings leave relay
// recipients to the milter.

const relayBase = `
[milter]
listen = "{{LISTEN}}"
[log]
level = "debug"
[organization]
domains = ["example.com"]
[directory]
users = ["alice@example.com", "app@example.com"]
{{ROUTES}}
`

// plainAuth lets Postfix accept SMTP AUTH without TLS (the generated
// smtpd_tls_auth_only = yes forbids it), to prove that the milter does not
// count it.
func plainAuth(t *testing.T, s *site) {
	s.pf.Postconf(t, "-e", "smtpd_tls_auth_only = no")
	s.pf.Reload(t)
}

// siteKept checks that attaching kept the site's own relay settings.
func siteKept(t *testing.T, s *site) {
	t.Helper()
	if got := strings.TrimSpace(s.pf.Postconf(t, "-h", "mynetworks")); got != "127.0.0.0/8" {
		t.Errorf("mynetworks = %q: the site's 127.0.0.0/8 was not kept", got)
	}
	rr := s.pf.Postconf(t, "-h", "smtpd_relay_restrictions")
	if !strings.HasSuffix(strings.TrimSpace(rr), "permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination") {
		t.Errorf("smtpd_relay_restrictions = %q: the site's list was not kept", rr)
	}
	for _, p := range []string{"smtpd_recipient_limit", "message_size_limit", "smtpd_data_restrictions"} {
		if n := s.pf.Postconf(t, "-n", p); n != "" {
			t.Errorf("attaching set a global limit: %s", n)
		}
	}
}

func rcptReply(tr, rcpt string) string {
	return postfixtest.Reply(tr, "RCPT TO:<"+rcpt+">")
}

// TestE2ERelayNetwork: IP allowlist, domain addresses, per-transaction
// limits, the null sender, and the open-relay battery.
func TestE2ERelayNetwork(t *testing.T) {
	s := newSite(t, nil, relayBase+`
[relay]
allowed_senders = "domain_addresses"
require_network = true
networks = [
  { cidr = "127.0.0.2", description = "print server", enabled = true },
  { cidr = "127.0.0.4", description = "retired", enabled = false },
]
[relay.limits]
recipients_per_message = 2
message_size = "4KB"
`)
	siteKept(t, s)
	allowed := func(m postfixtest.Mail) postfixtest.Mail {
		m.Source, m.Helo = "127.0.0.2", "printer.example.com"
		return m
	}
	outsider := func(m postfixtest.Mail) postfixtest.Mail { m.Source, m.Helo = "127.0.0.3", "pc.example.com"; return m }

	// Allowed network, our sender: relayed.
	s.send(allowed(postfixtest.Mail{From: "scanner@example.com", To: []string{"x@elsewhere.test"}}))

	// Not in the networks (though Postfix would let it relay): refused,
	// with Google's reply; its mail to us still flows.
	tr, _ := s.pf.Send(t, outsider(postfixtest.Mail{From: "scanner@example.com", To: []string{"x@elsewhere.test", "alice@example.com"}}))
	if r := rcptReply(tr, "x@elsewhere.test"); !strings.HasPrefix(r, "550 5.7.0 Mail relay denied") {
		t.Errorf("outsider relay: %q\n%s", r, tr)
	}
	// A disabled entry does not count.
	tr, _ = s.pf.Send(t, postfixtest.Mail{Source: "127.0.0.4", Helo: "old.example.com", From: "scanner@example.com", To: []string{"x@elsewhere.test"}})
	if r := rcptReply(tr, "x@elsewhere.test"); !strings.HasPrefix(r, "550 5.7.0 Mail relay denied") {
		t.Errorf("disabled network: %q", r)
	}
	// Allowed network, sender outside our domains.
	tr, _ = s.pf.Send(t, allowed(postfixtest.Mail{From: "someone@elsewhere.test", To: []string{"x@elsewhere.test"}}))
	if r := rcptReply(tr, "x@elsewhere.test"); !strings.HasPrefix(r, "550 5.7.1 Invalid credentials for relay") {
		t.Errorf("foreign sender: %q", r)
	}
	// Three recipients with a limit of two: the third must wait for
	// another transaction.
	tr, _ = s.pf.Send(t, allowed(postfixtest.Mail{From: "scanner@example.com", To: []string{"a@elsewhere.test", "b@elsewhere.test", "c@elsewhere.test"}}))
	if r := rcptReply(tr, "c@elsewhere.test"); !strings.HasPrefix(r, "452 4.5.3 Your message has too many recipients") {
		t.Errorf("third recipient: %q\n%s", r, tr)
	}
	// Null sender: our HELO makes it acceptable, but one recipient only.
	tr, _ = s.pf.Send(t, allowed(postfixtest.Mail{From: "", To: []string{"d@elsewhere.test", "e@elsewhere.test"}}))
	if r := rcptReply(tr, "e@elsewhere.test"); !strings.HasPrefix(r, "550 5.5.3") {
		t.Errorf("second recipient of a bounce: %q\n%s", r, tr)
	}
	// Null sender with a foreign HELO.
	tr, _ = s.pf.Send(t, postfixtest.Mail{Source: "127.0.0.2", Helo: "localhost", From: "", To: []string{"f@elsewhere.test"}})
	if r := rcptReply(tr, "f@elsewhere.test"); !strings.HasPrefix(r, "550 5.7.1 Invalid credentials for relay") {
		t.Errorf("bounce with HELO localhost: %q", r)
	}
	// Real size over the limit (no SIZE= parameter): refused at the end of
	// DATA.
	tr, code := s.pf.Send(t, allowed(postfixtest.Mail{From: "scanner@example.com", To: []string{"big@elsewhere.test"}, Body: strings.Repeat("0123456789abcdef\n", 400)}))
	if code == 0 || !strings.Contains(tr, "552 5.3.4 Your message exceeded the message size limit") {
		t.Errorf("6 kB with a 4KB limit (exit %d):\n%s", code, tr)
	}

	// The open-relay battery from the outsider: every form refused.
	for _, rcpt := range openRelayBattery {
		tr, _ := s.pf.Send(t, outsider(postfixtest.Mail{From: "scanner@example.com", To: []string{rcpt}}))
		want := "550 5.7.0 Mail relay denied"
		if strings.Contains(rcpt, "splitrelay.invalid") {
			// Postfix's own check (it holds with the milter off) says it
			// with its "<addr>: Recipient address rejected:" prefix
			want = "550 5.1.2 "
		}
		if r := rcptReply(tr, rcpt); !strings.HasPrefix(r, want) {
			t.Errorf("open relay: RCPT TO:<%s> got %q, want %q\n%s", rcpt, r, want, tr)
		}
	}
	s.landed(map[string][]string{
		"internet": {"x@elsewhere.test", "a@elsewhere.test", "b@elsewhere.test", "d@elsewhere.test"},
		"gmail":    {"alice@example.com"},
	})
	s.d.waitLog(t, 5*time.Second, `msg="recipient rejected"`, "rcpt=x@elsewhere.test", "client_addr=127.0.0.3", `reason="client 127.0.0.3 is not in an enabled relay network"`)
}

// TestE2ERelayAuth: SMTP AUTH (Dovecot) counts only over TLS; registered
// users only.
func TestE2ERelayAuth(t *testing.T) {
	s := newSite(t, nil, relayBase+`
[relay]
allowed_senders = "registered_users"
require_network = false
require_smtp_auth = true
[relay.limits]
user_messages_per_day = 1
`)
	dc := postfixtest.StartDovecot(t, map[string]string{"alice@example.com": "s3cret", "app@example.com": "app-pw"})
	s.pf.EnableSASL(t, dc)
	plainAuth(t, s)
	authed := func(m postfixtest.Mail) postfixtest.Mail {
		m.Source, m.Helo, m.TLS, m.AuthUser, m.AuthPassword = "127.0.0.3", "laptop.example.com", true, "alice@example.com", "s3cret"
		return m
	}
	s.send(authed(postfixtest.Mail{From: "alice@example.com", To: []string{"x@elsewhere.test"}}))
	s.d.waitLog(t, 5*time.Second, `msg="relay recipient accepted"`, "auth=alice@example.com", "rcpt=x@elsewhere.test")

	// Not a registered user (authenticated all the same).
	tr, _ := s.pf.Send(t, authed(postfixtest.Mail{From: "bob@example.com", To: []string{"y@elsewhere.test"}}))
	if r := rcptReply(tr, "y@elsewhere.test"); !strings.HasPrefix(r, "550 5.7.0 Mail Sending denied") {
		t.Errorf("unregistered sender: %q\n%s", r, tr)
	}
	// TLS without AUTH.
	tr, _ = s.pf.Send(t, postfixtest.Mail{Source: "127.0.0.3", TLS: true, From: "alice@example.com", To: []string{"y@elsewhere.test"}})
	if r := rcptReply(tr, "y@elsewhere.test"); !strings.HasPrefix(r, "550 5.7.0 Mail relay denied") {
		t.Errorf("no AUTH: %q\n%s", r, tr)
	}
	// AUTH without TLS (Postfix allows it here, plainAuth): does not count.
	noTLS := authed(postfixtest.Mail{From: "alice@example.com", To: []string{"y@elsewhere.test"}})
	noTLS.TLS = false
	tr, _ = s.pf.Send(t, noTLS)
	if !strings.Contains(tr, "235 2.7.0") {
		t.Fatalf("AUTH without TLS did not succeed at Postfix (test set-up):\n%s", tr)
	}
	if r := rcptReply(tr, "y@elsewhere.test"); !strings.HasPrefix(r, "550 5.7.0 Mail relay denied") {
		t.Errorf("AUTH without TLS: %q\n%s", r, tr)
	}
	// The rolling per-user limit: alice already relayed one message today.
	tr, _ = s.pf.Send(t, authed(postfixtest.Mail{From: "alice@example.com", To: []string{"z@elsewhere.test"}}))
	if r := rcptReply(tr, "z@elsewhere.test"); !strings.HasPrefix(r, "550 5.4.5 Daily SMTP relay limit exceeded for user") {
		t.Errorf("second message of the day: %q\n%s", r, tr)
	}
	// app@ is another user with its own count.
	app := authed(postfixtest.Mail{From: "app@example.com", To: []string{"z@elsewhere.test"}})
	app.AuthUser, app.AuthPassword = "app@example.com", "app-pw"
	s.send(app)
	s.landed(map[string][]string{"internet": {"x@elsewhere.test", "z@elsewhere.test"}})
}

// TestE2ERelayAnySenderTLS: require_tls, and allowed_senders = any
// rewriting a foreign sender to postmaster@ the HELO's domain.
func TestE2ERelayAnySenderTLS(t *testing.T) {
	s := newSite(t, nil, relayBase+`
[relay]
allowed_senders = "any"
require_network = true
require_tls = true
networks = [{ cidr = "127.0.0.2", description = "app server", enabled = true }]
`)
	m := postfixtest.Mail{Source: "127.0.0.2", Helo: "app.example.com", From: "alerts@monitoring.elsewhere.test", To: []string{"ops@elsewhere.test"}}
	tr, _ := s.pf.Send(t, m)
	if r := rcptReply(tr, "ops@elsewhere.test"); !strings.HasPrefix(r, "530 5.7.0 Must issue a STARTTLS command first") {
		t.Errorf("without TLS: %q\n%s", r, tr)
	}
	m.TLS = true
	id := s.send(m)
	// HELO localhost gives no domain of ours to rewrite to.
	bad := m
	bad.Helo = "localhost"
	tr, _ = s.pf.Send(t, bad)
	if r := rcptReply(tr, "ops@elsewhere.test"); !strings.HasPrefix(r, "550 5.7.1 Invalid credentials for relay") {
		t.Errorf("HELO localhost: %q\n%s", r, tr)
	}
	got := s.landed(map[string][]string{"internet": {"ops@elsewhere.test"}})
	if from := got["internet"][0].From; from != "postmaster@example.com" {
		t.Errorf("envelope sender downstream = %q, want postmaster@example.com", from)
	}
	if hf := got["internet"][0].Header.Get("From"); !strings.Contains(hf, "alerts@monitoring.elsewhere.test") {
		t.Errorf("From header changed: %q", hf)
	}
	s.d.waitLog(t, 5*time.Second, `msg="sender rewritten"`, "queue_id="+id, "new_mail_from=postmaster@example.com")
}

// TestE2ERelayDoesNotTouchSplitDelivery: with a strict relay policy,
// inbound mail from any client is still split as before.
func TestE2ERelayDoesNotTouchSplitDelivery(t *testing.T) {
	cfg := strings.Replace(config(false), "{{ROUTES}}", "{{ROUTES}}\n[relay]\nrequire_network = true\nnetworks = []\n", 1)
	s := newSite(t, routes, cfg)
	s.send(postfixtest.Mail{Source: "127.0.0.9", From: "x@elsewhere.test", HeaderFrom: "x@elsewhere.test",
		To: []string{"alice@example.com", "carol@example.com", "sales@example.com"}})
	s.landed(map[string][]string{
		"gmail":   {"alice@example.com", "sales@example.com"},
		"legacy":  {"carol@example.com"},
		"archive": {"sales@example.com"},
	})
}

// TestE2ERelayLimitsSpareInbound: relay limits never touch mail to our own
// users, from any client, with the generated settings in place.
func TestE2ERelayLimitsSpareInbound(t *testing.T) {
	s := newSite(t, nil, relayBase+`
[relay]
allowed_senders = "domain_addresses"
require_network = true
networks = [{ cidr = "127.0.0.2", description = "print server", enabled = true }]
[relay.limits]
recipients_per_message = 3
message_size = "20KB"
`)
	siteKept(t, s)
	in := func(m postfixtest.Mail) postfixtest.Mail {
		m.Source, m.Helo = "127.0.0.9", "mx.elsewhere.test"
		return m
	}
	four := []string{"alice@example.com", "app@example.com", "bob@example.com", "carol@example.com"}
	s.send(in(postfixtest.Mail{From: "x@elsewhere.test", To: four}))
	s.send(in(postfixtest.Mail{From: "x@elsewhere.test", To: []string{"alice@example.com"}, Body: strings.Repeat("0123456789abcdef\n", 1700)})) // 28 KB
	s.send(in(postfixtest.Mail{From: "", To: []string{"alice@example.com", "app@example.com"}}))
	// The same limits still hold for relay mail from the allowed client.
	tr, _ := s.pf.Send(t, postfixtest.Mail{Source: "127.0.0.2", Helo: "printer.example.com", From: "scanner@example.com",
		To: []string{"a@elsewhere.test", "b@elsewhere.test", "c@elsewhere.test", "d@elsewhere.test"}})
	if r := rcptReply(tr, "d@elsewhere.test"); !strings.HasPrefix(r, "452 4.5.3 Your message has too many recipients") {
		t.Errorf("fourth relay recipient: %q\n%s", r, tr)
	}
	// Mail submitted on the gateway (sendmail, non_smtpd_milters) is not
	// relay traffic: four outside recipients, 28 KB, from a client address
	// outside the networks, all delivered as Postfix would without us.
	outside := []string{"e@elsewhere.test", "f@elsewhere.test", "g@elsewhere.test", "h@elsewhere.test"}
	s.pf.Sendmail(t, postfixtest.Mail{From: "cron@gw.example.com", To: outside, Body: strings.Repeat("0123456789abcdef\n", 1700)})
	s.landed(map[string][]string{
		"gmail":    append(append(four, "alice@example.com"), "alice@example.com", "app@example.com"),
		"internet": append([]string{"a@elsewhere.test", "b@elsewhere.test", "c@elsewhere.test"}, outside...),
	})
}
