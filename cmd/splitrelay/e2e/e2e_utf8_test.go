package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/splitrelay/splitrelay/milter/postfixtest"
)

// TestE2EUTF8Recipient: a recipient with a U-label domain, from a client
// that said SMTPUTF8, is routed and reaches the route's server (a sink that
// offers SMTPUTF8) exactly as written, with an ORCPT of type utf-8
// (RFC 6533).
func TestE2EUTF8Recipient(t *testing.T) {
	sink := postfixtest.StartUTF8Sink(t)
	cfg := fmt.Sprintf(`
[milter]
listen = "{{LISTEN}}"
[log]
level = "debug"
[organization]
domains = ["example.com", "bücher.test"]
[directory]
users = ["alice@example.com"]
[routes.legacy]
host = "127.0.0.1"
port = %d
[[split_delivery]]
name = "unknown to legacy"
messages = ["inbound", "internal"]
accounts = ["unrecognized"]
route = "legacy"
`, sink.Port)
	s := newSite(t, nil, cfg)
	// Postfix 3.7 matches relay_domains in one form only: list both.
	s.pf.Postconf(t, "-e", "relay_domains = example.com, example.org, bücher.test, xn--bcher-kva.test")
	s.pf.Reload(t)

	rcpt := "Zz@Bücher.test"
	c, err := smtp.Dial(s.pf.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Hello("client.elsewhere.test"); err != nil {
		t.Fatal(err)
	}
	if err := c.Mail("x@elsewhere.test", &smtp.MailOptions{UTF8: true}); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt(rcpt, nil); err != nil {
		t.Fatalf("RCPT TO:<%s>: %v", rcpt, err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(w, "From: x@elsewhere.test\r\nTo: %s\r\nSubject: utf-8\r\n\r\nhello\r\n", rcpt)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	c.Quit()

	got := sink.Wait(t, 1, 30*time.Second)
	if len(got) != 1 || len(got[0].Rcpts) != 1 {
		t.Fatalf("the route's server got %+v\npostfix log:\n%s", got, s.pf.Log())
	}
	r := got[0].Rcpts[0]
	if r.Addr != rcpt {
		t.Errorf("RCPT TO:<%s>, want <%s> as the client wrote it", r.Addr, rcpt)
	}
	if r.OrcptType != smtp.DSNAddressTypeUTF8 || r.Orcpt != rcpt {
		t.Errorf("ORCPT %s;%s, want UTF-8;%s", r.OrcptType, r.Orcpt, rcpt)
	}
	if !got[0].UTF8 {
		t.Errorf("MAIL FROM without SMTPUTF8")
	}
	s.d.waitLog(t, 5*time.Second, `msg="recipient routed"`, "route=legacy")

	// Without SMTPUTF8 Postfix itself answers, as it would without us
	// (measured, Postfix 3.7: "501 5.1.3 Bad recipient address syntax").
	tr, _ := s.pf.Send(t, postfixtest.Mail{From: "x@elsewhere.test", To: []string{"yy@bücher.test"}})
	if r := rcptReply(tr, "yy@bücher.test"); !strings.HasPrefix(r, "5") {
		t.Errorf("UTF-8 recipient without SMTPUTF8: %q\n%s", r, tr)
	}
	if strings.Contains(s.d.logs(), "yy@") {
		t.Errorf("the milter saw a recipient Postfix refused:\n%s", s.d.logs())
	}
	if strings.Contains(s.pf.Log(), "xn--bcher-kva.test.legacy") {
		t.Logf("postfix log names the A-label form:\n%s", s.pf.Log())
	}
}
