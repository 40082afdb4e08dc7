package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/splitrelay/splitrelay/milter/postfixtest"
	"github.com/splitrelay/splitrelay/milter/sendmailtest"
)

// A private Sendmail 8.17 (milter/sendmailtest) as a relay client of the
// gateway, as seed 003 configures it: define(`SMART_HOST', …). Debian's
// stock sendmail.mc defines the esmtp mailer before anything we append,
// so the smart host's port (the gateway's private port, where production
// uses 25) goes through a mailer of our own, "gateway", identical to
// esmtp but for the port. The client binds to its own loopback address
// (CLIENT_OPTIONS) for the gateway's allowlist, says a real HELO name
// (confHELO_NAME) and queues what it receives (confDELIVERY_MODE q): its
// queue runs (every 3 s) then deliver everything waiting through one
// cached connection, as Sendmail does for a queue run.

// sendmailClient is the m4 that points a Sendmail at the gateway.
func sendmailClient(gwPort int, bind, helo string) string {
	return fmt.Sprintf("define(`SMART_HOST', `gateway:[127.0.0.1]')dnl\n"+
		"CLIENT_OPTIONS(`Family=inet, Addr=%s')dnl\n"+
		"define(`confHELO_NAME', `%s')dnl\n"+
		"define(`confDELIVERY_MODE', `q')dnl\n"+
		// the postmaster of a failed bounce is ours, through the gateway
		// (Debian's aliases send it to root, a local mailbox the test
		// instance does not have)
		"define(`confDOUBLE_BOUNCE_ADDRESS', `postmaster@example.com')dnl\n"+
		// the client side of SMTP AUTH uses these mechanisms when the
		// server offers them (and the access map has AuthInfo)
		"define(`confAUTH_MECHANISMS', `PLAIN LOGIN')dnl\n"+
		"MAILER_DEFINITIONS\n"+
		"`Mgateway,\tP=[IPC], F=mDFMuXa, S=EnvFromSMTP/HdrFromSMTP, R=EnvToSMTP, E=\\r\\n, L=990, T=DNS/RFC822/SMTP, A=TCP $h %d'\n",
		bind, helo, gwPort)
}

// smInject hands a message to the client Sendmail from 127.0.0.1 and
// returns its queue ID.
func smInject(t *testing.T, sm *sendmailtest.Instance, m postfixtest.Mail) string {
	t.Helper()
	m.Helo = "app.example.com"
	tr, code := sm.Send(t, m)
	id, ok := sendmailtest.QueueID(tr)
	if code != 0 || !ok {
		t.Fatalf("client Sendmail did not queue the message (exit %d):\n%s", code, tr)
	}
	return id
}

// TestE2EClientSendmail: Sendmail trusted by its address, and Sendmail
// with SMTP AUTH (AuthInfo) over STARTTLS.
func TestE2EClientSendmail(t *testing.T) {
	t.Run("network", func(t *testing.T) {
		s := newSite(t, nil, relayBase+`
[relay]
allowed_senders = "domain_addresses"
require_network = true
networks = [{ cidr = "127.0.0.8", description = "Sendmail smart host client", enabled = true }]
`)
		sm := sendmailtest.Start(t, sendmailtest.Options{
			Access: []string{"Connect:127.0.0.1\tRELAY"},
			Extra:  sendmailClient(s.pf.Port, "127.0.0.8", "sendmail.example.com"),
		})
		// As generated: allowed, several messages in one queue run.
		var ids []string
		for i := range 3 {
			ids = append(ids, smInject(t, sm, postfixtest.Mail{From: "scanner@example.com", To: []string{fmt.Sprintf("s%d@elsewhere.test", i)}}))
		}
		sm.WaitQueueEmpty(t, 60*time.Second)
		for i, id := range ids {
			sm.WaitLog(t, id+`: to=<s`+fmt.Sprint(i)+`@elsewhere\.test>.*stat=Sent`, 10*time.Second)
		}
		waitSessionOf(t, s.pf, "127.0.0.8", 2)

		// A sender outside our domains: refused; Sendmail's DSN (null
		// sender, our HELO, one recipient) is relayed to the sender.
		id := smInject(t, sm, postfixtest.Mail{From: "someone@elsewhere.test", To: []string{"y@elsewhere.test"}})
		sm.WaitLog(t, id+`: to=<y@elsewhere\.test>.*dsn=5\.7\.1, reply=550 5\.7\.1 Invalid credentials for relay`, 60*time.Second)
		// A null sender with two recipients: one only (Sendmail does not
		// keep the order of the recipients: either may come second). The
		// refused one goes to the postmaster, through the gateway.
		id = smInject(t, sm, postfixtest.Mail{From: "", To: []string{"d@elsewhere.test", "e@elsewhere.test"}})
		refused := sm.WaitLog(t, id+`: to=<[de]@elsewhere\.test>.*dsn=5\.5\.3, reply=550 5\.5\.3 Multi-recipient bounce`, 60*time.Second)
		sent := "d@elsewhere.test"
		if strings.Contains(refused[0], "to=<d@") {
			sent = "e@elsewhere.test"
		}
		sm.WaitQueueEmpty(t, 60*time.Second)

		// From an address outside the allowlist.
		sm.Reconfigure(t, func(o *sendmailtest.Options) {
			o.Extra = sendmailClient(s.pf.Port, "127.0.0.9", "sendmail.example.com")
		})
		id = smInject(t, sm, postfixtest.Mail{From: "scanner@example.com", To: []string{"z@elsewhere.test"}})
		sm.WaitLog(t, id+`: to=<z@elsewhere\.test>.*dsn=5\.7\.0, reply=550 5\.7\.0 Mail relay denied`, 60*time.Second)
		sm.WaitQueueEmpty(t, 60*time.Second)

		got := s.landed(map[string][]string{
			"internet": {"s0@elsewhere.test", "s1@elsewhere.test", "s2@elsewhere.test", "someone@elsewhere.test", sent},
			"gmail":    {"scanner@example.com", "postmaster@example.com"},
		})
		if _, ok := dsnOf(got["internet"], "someone@elsewhere.test", "550 5.7.1 Invalid credentials for relay"); !ok {
			t.Errorf("no DSN quoting 550 5.7.1 reached someone@elsewhere.test")
		}
		if _, ok := dsnOf(got["gmail"], "scanner@example.com", "550 5.7.0 Mail relay denied"); !ok {
			t.Errorf("no DSN quoting 550 5.7.0 Mail relay denied reached scanner@example.com")
		}
	})

	t.Run("auth", func(t *testing.T) {
		s := newSite(t, nil, relayBase+`
[relay]
allowed_senders = "registered_users"
require_network = false
require_smtp_auth = true
require_tls = true
`)
		dc := postfixtest.StartDovecot(t, map[string]string{"alice@example.com": "s3cret"})
		s.pf.EnableSASL(t, dc)
		sm := sendmailtest.Start(t, sendmailtest.Options{
			Access: []string{"Connect:127.0.0.1\tRELAY",
				// AuthInfo in the access map (cf/README, SMTP AUTH: without
				// FEATURE(authinfo) the access map holds it), for the
				// gateway's address
				`AuthInfo:127.0.0.1	"U:alice@example.com" "P:s3cret" "M:PLAIN"`},
			Extra: sendmailClient(s.pf.Port, "127.0.0.9", "sendmail.example.com"),
		})
		// As generated: AUTH after STARTTLS.
		id := smInject(t, sm, postfixtest.Mail{From: "alice@example.com", To: []string{"a1@elsewhere.test"}})
		sm.WaitLog(t, id+`: to=<a1@elsewhere\.test>.*stat=Sent`, 60*time.Second)
		if l := s.pf.LogLines("sasl_username=alice@example.com"); len(l) == 0 || !strings.Contains(l[0], "[127.0.0.9]") {
			t.Errorf("gateway did not see SMTP AUTH from the Sendmail client:\n%s", s.pf.Log())
		}
		// the session ends when Sendmail closes its cached connection
		s.pf.WaitLog(t, `disconnect from \S+\[127\.0\.0\.9\] .*starttls=1 auth=1`, 30*time.Second)
		// Authenticated, sender not registered.
		id = smInject(t, sm, postfixtest.Mail{From: "bob@example.com", To: []string{"b1@elsewhere.test"}})
		sm.WaitLog(t, id+`: to=<b1@elsewhere\.test>.*dsn=5\.7\.0, reply=550 5\.7\.0 Mail Sending denied`, 60*time.Second)
		sm.WaitQueueEmpty(t, 60*time.Second)
		got := s.landed(map[string][]string{
			"internet": {"a1@elsewhere.test"},
			"gmail":    {"bob@example.com"},
		})
		if _, ok := dsnOf(got["gmail"], "bob@example.com", "550 5.7.0 Mail Sending denied"); !ok {
			t.Errorf("no DSN quoting 550 5.7.0 Mail Sending denied reached bob@example.com")
		}
	})
}
