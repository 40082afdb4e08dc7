package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/splitrelay/splitrelay/milter/postfixtest"
	"github.com/splitrelay/splitrelay/milter/sendmailtest"
)

// The relay suite against Sendmail: first what the generated sendmail.mc
// makes Sendmail refuse by itself, then, with Sendmail made permissive
// (every 127/8 client may relay, no recipient or size limit of its own,
// AUTH offered without TLS), what the milter refuses, with Google's
// replies after Sendmail's "<address>... " prefix.

// smPermissive undoes Sendmail's own relay defences.
func smPermissive(t *testing.T, s *smSite) {
	t.Helper()
	s.sm.Reconfigure(t, func(o *sendmailtest.Options) {
		o.Access = append(o.Access, "Connect:127\tRELAY")
		o.Extra = "define(`confMAX_RCPTS_PER_MESSAGE', `0')dnl\n" +
			"define(`confMAX_MESSAGE_SIZE', `0')dnl\n" +
			"define(`confAUTH_OPTIONS', `')dnl\n"
	})
}

// TestSendmailRelayNetwork: the IP allowlist, domain addresses, the
// per-transaction and size limits, the null sender, the open-relay battery.
func TestSendmailRelayNetwork(t *testing.T) {
	s := newSendmailSite(t, nil, relayBase+`
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
`, sendmailtest.Options{})
	allowed := func(m postfixtest.Mail) postfixtest.Mail {
		m.Source, m.Helo = "127.0.0.2", "printer.example.com"
		return m
	}
	outsider := func(m postfixtest.Mail) postfixtest.Mail { m.Source, m.Helo = "127.0.0.3", "pc.example.com"; return m }

	// As generated: Sendmail relays for the enabled network only
	// (RELAY_DOMAIN) and refuses the outsider itself.
	s.send(allowed(postfixtest.Mail{From: "scanner@example.com", To: []string{"x@elsewhere.test"}}))
	tr, _ := s.sm.Send(t, outsider(postfixtest.Mail{From: "scanner@example.com", To: []string{"x@elsewhere.test"}}))
	wantReply(t, tr, "x@elsewhere.test", "550 5.7.1", "Relaying denied")
	// and applies the generated limit of two recipients itself.
	tr, _ = s.sm.Send(t, allowed(postfixtest.Mail{From: "scanner@example.com", To: []string{"a@elsewhere.test", "b@elsewhere.test", "c@elsewhere.test"}}))
	if r := smReply(tr, "c@elsewhere.test"); !strings.HasPrefix(r, "452 4.5.3") {
		t.Errorf("Sendmail's own recipient limit: %q\n%s", r, tr)
	}
	s.landed(map[string][]string{"internet": {"x@elsewhere.test", "a@elsewhere.test", "b@elsewhere.test"}})

	smPermissive(t, s)
	s.send(allowed(postfixtest.Mail{From: "scanner@example.com", To: []string{"x2@elsewhere.test"}}))
	tr, _ = s.sm.Send(t, outsider(postfixtest.Mail{From: "scanner@example.com", To: []string{"x@elsewhere.test", "alice@example.com"}}))
	wantReply(t, tr, "x@elsewhere.test", "550 5.7.0", "Mail relay denied")
	tr, _ = s.sm.Send(t, postfixtest.Mail{Source: "127.0.0.4", Helo: "old.example.com", From: "scanner@example.com", To: []string{"x@elsewhere.test"}})
	wantReply(t, tr, "x@elsewhere.test", "550 5.7.0", "Mail relay denied")
	tr, _ = s.sm.Send(t, allowed(postfixtest.Mail{From: "someone@elsewhere.test", To: []string{"x@elsewhere.test"}}))
	wantReply(t, tr, "x@elsewhere.test", "550 5.7.1", "Invalid credentials for relay")
	tr, _ = s.sm.Send(t, allowed(postfixtest.Mail{From: "scanner@example.com", To: []string{"a2@elsewhere.test", "b2@elsewhere.test", "c2@elsewhere.test"}}))
	wantPlainReply(t, tr, "c2@elsewhere.test", "452 4.5.3", "Your message has too many recipients")
	// Null sender: our HELO makes it acceptable, one recipient only.
	tr, _ = s.sm.Send(t, allowed(postfixtest.Mail{From: "", To: []string{"d@elsewhere.test", "e@elsewhere.test"}}))
	if r := smReply(tr, "e@elsewhere.test"); !strings.HasPrefix(r, "550 5.5.3 <e@elsewhere.test>... ") {
		t.Errorf("second recipient of a bounce: %q\n%s", r, tr)
	}
	tr, _ = s.sm.Send(t, postfixtest.Mail{Source: "127.0.0.2", Helo: "localhost", From: "", To: []string{"f@elsewhere.test"}})
	wantReply(t, tr, "f@elsewhere.test", "550 5.7.1", "Invalid credentials for relay")
	tr, code := s.sm.Send(t, allowed(postfixtest.Mail{From: "scanner@example.com", To: []string{"big@elsewhere.test"}, Body: strings.Repeat("0123456789abcdef\n", 400)}))
	if code == 0 || !strings.Contains(tr, "552 5.3.4 Your message exceeded the message size limit") {
		t.Errorf("6 kB with a 4KB limit (exit %d):\n%s", code, tr)
	}

	for _, rcpt := range openRelayBattery {
		tr, _ := s.sm.Send(t, outsider(postfixtest.Mail{From: "scanner@example.com", To: []string{rcpt}}))
		if r := smReply(tr, rcpt); !strings.HasPrefix(r, "5") {
			t.Errorf("open relay: RCPT TO:<%s> got %q\n%s", rcpt, r, tr)
		}
	}
	s.landed(map[string][]string{
		"internet": {"x@elsewhere.test", "a@elsewhere.test", "b@elsewhere.test", "x2@elsewhere.test", "a2@elsewhere.test", "b2@elsewhere.test", "d@elsewhere.test"},
		"gmail":    {"alice@example.com"},
	})
	s.d.waitLog(t, 5*time.Second, `msg="recipient rejected"`, "rcpt=x@elsewhere.test", "client_addr=127.0.0.3", `reason="client 127.0.0.3 is not in an enabled relay network"`)
}

// TestSendmailRelayAuth: SMTP AUTH through Sendmail's own Cyrus SASL
// (a private sasldb) counts only over TLS; registered users only.
func TestSendmailRelayAuth(t *testing.T) {
	s := newSendmailSite(t, nil, relayBase+`
[relay]
allowed_senders = "registered_users"
require_network = false
require_smtp_auth = true
[relay.limits]
user_messages_per_day = 1
`, sendmailtest.Options{SASL: map[string]string{"alice@example.com": "s3cret", "app@example.com": "app-pw"}})
	authed := func(m postfixtest.Mail) postfixtest.Mail {
		m.Source, m.Helo, m.TLS, m.AuthUser, m.AuthPassword = "127.0.0.3", "laptop.example.com", true, "alice@example.com", "s3cret"
		return m
	}
	// As generated (TRUST_AUTH_MECH): Sendmail relays for an
	// authenticated client and refuses the others itself.
	tr, _ := s.sm.Send(t, postfixtest.Mail{Source: "127.0.0.3", TLS: true, From: "alice@example.com", To: []string{"y@elsewhere.test"}})
	wantReply(t, tr, "y@elsewhere.test", "550 5.7.1", "Relaying denied")
	s.send(authed(postfixtest.Mail{From: "alice@example.com", To: []string{"x@elsewhere.test"}}))
	s.d.waitLog(t, 5*time.Second, `msg="relay recipient accepted"`, "auth=alice@example.com", "rcpt=x@elsewhere.test")

	smPermissive(t, s)
	tr, _ = s.sm.Send(t, authed(postfixtest.Mail{From: "bob@example.com", To: []string{"y@elsewhere.test"}}))
	wantReply(t, tr, "y@elsewhere.test", "550 5.7.0", "Mail Sending denied")
	tr, _ = s.sm.Send(t, postfixtest.Mail{Source: "127.0.0.3", TLS: true, From: "alice@example.com", To: []string{"y@elsewhere.test"}})
	wantReply(t, tr, "y@elsewhere.test", "550 5.7.0", "Mail relay denied")
	// AUTH without TLS (Sendmail now allows it): does not count.
	noTLS := authed(postfixtest.Mail{From: "alice@example.com", To: []string{"y@elsewhere.test"}})
	noTLS.TLS = false
	tr, _ = s.sm.Send(t, noTLS)
	if !strings.Contains(tr, "235 2.0.0") {
		t.Fatalf("AUTH without TLS did not succeed at Sendmail (test set-up):\n%s", tr)
	}
	wantReply(t, tr, "y@elsewhere.test", "550 5.7.0", "Mail relay denied")
	tr, _ = s.sm.Send(t, authed(postfixtest.Mail{From: "alice@example.com", To: []string{"z@elsewhere.test"}}))
	wantReply(t, tr, "z@elsewhere.test", "550 5.4.5", "Daily SMTP relay limit exceeded for user")
	app := authed(postfixtest.Mail{From: "app@example.com", To: []string{"z@elsewhere.test"}})
	app.AuthUser, app.AuthPassword = "app@example.com", "app-pw"
	s.send(app)
	s.landed(map[string][]string{"internet": {"x@elsewhere.test", "z@elsewhere.test"}})
}

// TestSendmailRelayAnySenderTLS: require_tls, and allowed_senders = any
// rewriting a foreign sender (the milter's change-from) to postmaster@ the
// HELO's domain.
func TestSendmailRelayAnySenderTLS(t *testing.T) {
	s := newSendmailSite(t, nil, relayBase+`
[relay]
allowed_senders = "any"
require_network = true
require_tls = true
networks = [{ cidr = "127.0.0.2", description = "app server", enabled = true }]
`, sendmailtest.Options{})
	m := postfixtest.Mail{Source: "127.0.0.2", Helo: "app.example.com", From: "alerts@monitoring.elsewhere.test", To: []string{"ops@elsewhere.test"}}
	tr, _ := s.sm.Send(t, m)
	wantPlainReply(t, tr, "ops@elsewhere.test", "530 5.7.0", "Must issue a STARTTLS command first")
	m.TLS = true
	id := s.send(m)
	got := s.landed(map[string][]string{"internet": {"ops@elsewhere.test"}})
	if from := got["internet"][0].From; from != "postmaster@example.com" {
		t.Errorf("envelope sender downstream = %q, want postmaster@example.com", from)
	}
	if hf := got["internet"][0].Header.Get("From"); !strings.Contains(hf, "alerts@monitoring.elsewhere.test") {
		t.Errorf("From header changed: %q", hf)
	}
	s.d.waitLog(t, 5*time.Second, `msg="sender rewritten"`, "queue_id="+id, "new_mail_from=postmaster@example.com")
}
