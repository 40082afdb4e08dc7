package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/splitrelay/splitrelay/milter/postfixtest"
)

// TestE2EBounceNamesOriginal: the legacy server refuses every recipient
// (smtp-sink -f RCPT). The sender's delivery status notification names
// carol@example.com in its text and Final-Recipient, never the routing
// namespace; the dual-delivery copy of sales@ (refused by the same kind of
// server on the archive route) sends the sender nothing, since sales@ was
// delivered.
func TestE2EBounceNamesOriginal(t *testing.T) {
	s := newSiteSinks(t, routes, config(false), "unix", map[string][]string{
		"legacy":  {"-f", "RCPT"},
		"archive": {"-f", "RCPT"},
	})
	id := s.send(postfixtest.Mail{From: "x@elsewhere.test", HeaderFrom: "x@elsewhere.test",
		To: []string{"carol@example.com", "sales@example.com"}})
	got := s.landed(map[string][]string{
		"gmail":    {"sales@example.com"},
		"internet": {"x@elsewhere.test"}, // one notice, for carol@ only
	})
	if len(got["internet"]) != 1 {
		t.Fatalf("%d notices, want 1", len(got["internet"]))
	}
	n := got["internet"][0]
	if n.From != "" {
		t.Errorf("notice from <%s>, want the null sender", n.From)
	}
	body := string(n.Body)
	if strings.Contains(strings.ToLower(body), "splitrelay.invalid") {
		t.Errorf("the notice shows the routing namespace:\n%s", body)
	}
	for _, want := range []string{"<carol@example.com>:", "Final-Recipient: rfc822; carol@example.com\n", "Original-Recipient: rfc822;carol@example.com"} {
		if !strings.Contains(strings.ReplaceAll(body, "\r\n", "\n"), want) {
			t.Errorf("the notice lacks %q:\n%s", want, body)
		}
	}
	if strings.Contains(body, "sales@example.com") && strings.Contains(body, "Final-Recipient: rfc822; sales") {
		t.Errorf("the notice reports the copy of sales@:\n%s", body)
	}
	s.d.waitLog(t, 5*time.Second, `msg="notice rewritten"`)
	s.d.waitLog(t, 5*time.Second, `msg="recipient copied"`, "queue_id="+id, "rcpt=sales@example.com")
}
