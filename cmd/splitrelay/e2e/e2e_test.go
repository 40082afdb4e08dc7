package e2e

import (
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/splitrelay/splitrelay/milter/postfixtest"
)

// e2eConfig is the standard migration set-up plus filters that the cases
// below exercise.
const e2eConfig = `
[milter]
listen = "{{LISTEN}}"
routing_suffix = "splitrelay.invalid"
dry_run = {{DRY}}

[log]
level = "debug"

[organization]
domains = ["example.com", "example.org"]

[directory]
users = ["alice@example.com", "bob@example.com", "dave@example.org"]

[directory.groups]
"sales@example.com" = ["alice@example.com", "carol@example.com"]

{{ROUTES}}

[[split_delivery]]
name = "Unknown addresses stay on the legacy server"
messages = ["inbound", "internal"]
accounts = ["unrecognized"]
route = "legacy"

[[split_delivery]]
name = "Sales mail is archived"
messages = ["inbound", "internal"]
accounts = ["groups"]
route = "archive"
also_deliver = true

[[split_delivery]]
name = "Partner mail to users goes to the legacy server"
messages = ["inbound"]
accounts = ["users"]
route = "legacy"
[split_delivery.envelope]
senders = ["pattern:@partner\\.test$"]

[[split_delivery]]
name = "Internal mail to bob is archived"
messages = ["internal"]
accounts = ["users"]
route = "archive"
also_deliver = true
[split_delivery.envelope]
recipients = ["address:Bob@Example.com"]
`

func config(dry bool) string {
	d := "false"
	if dry {
		d = "true"
	}
	return strings.ReplaceAll(e2eConfig, "{{DRY}}", d)
}

var routes = []string{"legacy", "archive"}

// TestE2ESplitDelivery: one message whose recipients go to the primary
// system, to the legacy server and to both, each downstream with its
// original address.
func TestE2ESplitDelivery(t *testing.T) {
	s := newSite(t, routes, config(false))
	id := s.send(postfixtest.Mail{
		From:       "someone@elsewhere.test",
		HeaderFrom: "Someone <someone@elsewhere.test>",
		To:         []string{"alice@example.com", "carol@example.com", "sales@example.com", "dave@example.org", "Zed@Example.ORG"},
		RcptArgs:   map[string]string{"carol@example.com": "NOTIFY=SUCCESS,FAILURE"},
	})
	got := s.landed(map[string][]string{
		"gmail":   {"alice@example.com", "sales@example.com", "dave@example.org"},
		"legacy":  {"carol@example.com", "Zed@Example.ORG"}, // exactly as the client wrote it
		"archive": {"sales@example.com"},
	})
	// Downstream sees the original address, the client's NOTIFY and an
	// ORCPT naming the original recipient, never the routing namespace.
	checkLegacy(t, got["legacy"])
	// Our log names the queue ID, the original and routed address, the
	// rule and the route, so it joins with Postfix's own log.
	s.d.waitLog(t, 5*time.Second, `msg="recipient routed"`, "queue_id="+id, "rcpt=carol@example.com",
		"routed_rcpt=carol@example.com.legacy.splitrelay.invalid", "route=legacy", `rule="Unknown addresses stay on the legacy server"`)
	s.d.waitLog(t, 5*time.Second, `msg="recipient copied"`, "queue_id="+id, "rcpt=sales@example.com", "route=archive")
	if !strings.Contains(s.pf.Log(), id+": to=<carol@example.com.legacy.splitrelay.invalid>") {
		t.Errorf("postfix log lacks the routed delivery of %s", id)
	}
}

// checkLegacy: downstream of the split-delivery message (both MTAs'
// suites), the legacy route sees the original addresses, carol's NOTIFY
// and an ORCPT naming each original recipient, never the routing
// namespace, in the envelope, the To: header or the message.
func checkLegacy(t *testing.T, msgs []postfixtest.Message) {
	t.Helper()
	for _, m := range msgs {
		for _, r := range m.Rcpts {
			orcpt, _ := r.Param("ORCPT")
			if strings.Contains(r.Args, "splitrelay.invalid") || !strings.EqualFold(orcpt, "rfc822;"+r.Addr) {
				t.Errorf("legacy RCPT %s %s: want ORCPT=rfc822;%s", r.Addr, r.Args, r.Addr)
			}
			if r.Addr == "carol@example.com" {
				if n, _ := r.Param("NOTIFY"); n != "SUCCESS,FAILURE" {
					t.Errorf("carol's NOTIFY lost: %s", r.Args)
				}
			}
		}
		if to := m.Header.Get("To"); strings.Contains(to, "invalid") {
			t.Errorf("To: header changed: %s", to)
		}
		if strings.Contains(string(m.Data), "splitrelay.invalid") {
			t.Errorf("routing namespace leaked into the message:\n%s", m.Data)
		}
	}
}

// TestE2EMessageKindAndFilters: the internal/inbound distinction by From
// header, and envelope sender and recipient filters.
func TestE2EMessageKindAndFilters(t *testing.T) {
	s := newSite(t, routes, config(false))
	// Inbound from a partner: users go to legacy (sender pattern).
	s.send(postfixtest.Mail{From: "p@partner.test", HeaderFrom: "p@partner.test", To: []string{"alice@example.com"}})
	// Inbound from elsewhere: bob stays on the primary, no archive copy
	// (that rule is internal only).
	s.send(postfixtest.Mail{From: "x@elsewhere.test", HeaderFrom: "x@elsewhere.test", To: []string{"bob@example.com"}})
	// Internal (From in a subdomain of ours): bob gets the archive copy
	// (recipient filter, case-insensitive address).
	s.send(postfixtest.Mail{From: "boss@example.com", HeaderFrom: "The Boss <boss@hq.example.com>", To: []string{"bob@example.com"}})
	// Sender pattern is a case-sensitive search: no match here.
	s.send(postfixtest.Mail{From: "p@PARTNER.test.example.net", HeaderFrom: "p@elsewhere.test", To: []string{"dave@example.org"}})
	s.landed(map[string][]string{
		"gmail":   {"bob@example.com", "bob@example.com", "dave@example.org"},
		"legacy":  {"alice@example.com"},
		"archive": {"bob@example.com"},
	})
	s.d.waitLog(t, 5*time.Second, `msg="recipient copied"`, "rcpt=bob@example.com", "kind=internal")
}

// TestE2ERoutingNamespaceRefused: a client may never address the routing
// namespace itself, neither through Postfix (generated
// check_recipient_access) nor, with that removed, through the milter.
func TestE2ERoutingNamespaceRefused(t *testing.T) {
	s := newSite(t, routes, config(false))
	bad := "bob@example.com.legacy.splitrelay.invalid"
	m := postfixtest.Mail{From: "x@elsewhere.test", To: []string{bad, "alice@example.com"}}
	tr, _ := s.pf.Send(t, m)
	if r := postfixtest.Reply(tr, "RCPT TO:<"+bad+">"); !strings.HasPrefix(r, "550 5.1.2") {
		t.Errorf("Postfix accepted the routing namespace: %q\n%s", r, tr)
	}
	// Defence in depth: without Postfix's access check the milter refuses.
	s.pf.Postconf(t, "-e", "smtpd_recipient_restrictions =", "smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination")
	s.pf.Reload(t)
	tr, _ = s.pf.Send(t, m)
	if r := postfixtest.Reply(tr, "RCPT TO:<"+bad+">"); !strings.HasPrefix(r, "550 5.1.2") {
		t.Errorf("milter accepted the routing namespace: %q\n%s", r, tr)
	}
	s.d.waitLog(t, 5*time.Second, `msg="recipient rejected"`, "rcpt="+bad)
	s.landed(map[string][]string{"gmail": {"alice@example.com", "alice@example.com"}})
}

// TestE2EMilterDown: with the milter stopped the client gets a 4xx and
// keeps the message; nothing is delivered anywhere.
func TestE2EMilterDown(t *testing.T) {
	s := newSite(t, routes, config(false))
	s.d.stop()
	tr, code := s.pf.Send(t, postfixtest.Mail{From: "x@elsewhere.test", To: []string{"carol@example.com"}})
	if code == 0 || !strings.Contains(tr, "451 4.7.1") {
		t.Errorf("milter down: exit %d, want a 451 4.7.1 tempfail:\n%s", code, tr)
	}
	if _, ok := postfixtest.QueueID(tr); ok {
		t.Errorf("message queued with the milter down:\n%s", tr)
	}
	s.landed(map[string][]string{})
}

// TestE2EReload: SIGHUP with a broken file keeps the running rules; with a
// valid file the new rules apply.
func TestE2EReload(t *testing.T) {
	s := newSite(t, routes, config(false))
	good, err := os.ReadFile(s.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	s.writeConfig(strings.Replace(string(good), `route = "legacy"`, `route = "nowhere"`, 1))
	s.d.cmd.Process.Signal(syscall.SIGHUP)
	s.d.waitLog(t, 10*time.Second, `msg="reload refused; keeping the running rules"`, `unknown route \"nowhere\"`)
	s.send(postfixtest.Mail{From: "x@elsewhere.test", To: []string{"carol@example.com"}})
	s.landed(map[string][]string{"legacy": {"carol@example.com"}})

	// A valid change: unknown addresses now go to the archive route.
	s.writeConfig(strings.Replace(string(good), `route = "legacy"`, `route = "archive"`, 1))
	s.d.cmd.Process.Signal(syscall.SIGHUP)
	s.d.waitLog(t, 10*time.Second, `msg="configuration reloaded"`)
	s.send(postfixtest.Mail{From: "x@elsewhere.test", To: []string{"carol@example.com"}})
	s.landed(map[string][]string{"legacy": {"carol@example.com"}, "archive": {"carol@example.com"}})
}

// TestE2EDryRun: decisions are logged, nothing is changed or rejected by
// the milter.
func TestE2EDryRun(t *testing.T) {
	s := newSite(t, routes, config(true))
	id := s.send(postfixtest.Mail{From: "x@elsewhere.test", To: []string{"carol@example.com", "sales@example.com"}})
	s.landed(map[string][]string{"gmail": {"carol@example.com", "sales@example.com"}})
	s.d.waitLog(t, 5*time.Second, `msg="recipient would be routed"`, "queue_id="+id, "rcpt=carol@example.com", "route=legacy")
	s.d.waitLog(t, 5*time.Second, `msg="recipient would be copied"`, "queue_id="+id, "rcpt=sales@example.com", "route=archive")
}

// TestE2EInetListen: the same routing with the milter on a TCP port.
func TestE2EInetListen(t *testing.T) {
	s := newSiteOn(t, routes, config(false), "inet")
	s.send(postfixtest.Mail{From: "x@elsewhere.test", To: []string{"alice@example.com", "carol@example.com"}})
	s.landed(map[string][]string{"gmail": {"alice@example.com"}, "legacy": {"carol@example.com"}})
}

// TestE2ESendmailRouted: mail submitted on the gateway with sendmail(1)
// (non_smtpd_milters) is routed like mail from SMTP clients.
func TestE2ESendmailRouted(t *testing.T) {
	s := newSite(t, routes, config(false))
	s.pf.Sendmail(t, postfixtest.Mail{From: "cron@example.com", To: []string{"alice@example.com", "carol@example.com"}})
	s.landed(map[string][]string{
		"gmail":  {"alice@example.com"},
		"legacy": {"carol@example.com"},
	})
	s.d.waitLog(t, 5*time.Second, `msg="recipient routed"`, "rcpt=carol@example.com", "route=legacy")
}
