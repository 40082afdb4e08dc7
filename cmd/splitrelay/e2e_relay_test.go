package main

import (
	"strings"
	"testing"
	"time"

	"github.com/splitrelay/splitrelay/milter/postfixtest"
)

// The relay suite: a real Postfix with STARTTLS (a certificate generated
// for the instance) and SASL (a private Dovecot), clients on distinct
// loopback addresses (127.0.0.2 is the allowed "print server", 127.0.0.3
// is not). After attaching splitrelay, Postfix itself is made permissive
// (every loopback client in mynetworks, relay allowed to any client in
// mynetworks or authenticated, no size limit of its own): what is refused
// is refused by the milter.

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

// permissive undoes Postfix's own relay defences after the generated
// configuration was applied, to prove the milter enforces the policy.
func permissive(t *testing.T, s *site) {
	s.pf.Postconf(t, "-e",
		"mynetworks = 127.0.0.0/8",
		"smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination",
		"smtpd_recipient_limit = 1000",
		"message_size_limit = 10240000",
		"smtpd_data_restrictions =",
		"smtpd_tls_auth_only = no",
	)
	s.pf.Reload(t)
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
	// First, as generated: Postfix itself refuses the outsider (defence in
	// depth: mynetworks is exactly the enabled networks).
	tr, _ := s.pf.Send(t, postfixtest.Mail{Source: "127.0.0.3", From: "scanner@example.com", To: []string{"x@elsewhere.test"}})
	if r := rcptReply(tr, "x@elsewhere.test"); !strings.Contains(r, "Relay access denied") {
		t.Errorf("generated Postfix settings let an outsider relay: %q\n%s", r, tr)
	}
	permissive(t, s)
	allowed := func(m postfixtest.Mail) postfixtest.Mail {
		m.Source, m.Helo = "127.0.0.2", "printer.example.com"
		return m
	}
	outsider := func(m postfixtest.Mail) postfixtest.Mail { m.Source, m.Helo = "127.0.0.3", "pc.example.com"; return m }

	// Allowed network, our sender: relayed.
	s.send(allowed(postfixtest.Mail{From: "scanner@example.com", To: []string{"x@elsewhere.test"}}))

	// Not in the networks (though Postfix would let it relay): refused,
	// with Google's reply; its mail to us still flows.
	tr, _ = s.pf.Send(t, outsider(postfixtest.Mail{From: "scanner@example.com", To: []string{"x@elsewhere.test", "alice@example.com"}}))
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
	battery := []string{
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
	for _, rcpt := range battery {
		tr, _ := s.pf.Send(t, outsider(postfixtest.Mail{From: "scanner@example.com", To: []string{rcpt}}))
		if r := rcptReply(tr, rcpt); !strings.HasPrefix(r, "5") {
			t.Errorf("open relay: RCPT TO:<%s> got %q\n%s", rcpt, r, tr)
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
	permissive(t, s)
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
	// AUTH without TLS (Postfix allows it here): does not count.
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
	permissive(t, s)
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
