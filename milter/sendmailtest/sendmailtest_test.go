package sendmailtest

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/splitrelay/splitrelay/milter/postfixtest"
)

// TestSendmail: the stock configuration plus the harness's destinations
// delivers to a sink, logs to the harness, and offers STARTTLS and AUTH.
func TestSendmail(t *testing.T) {
	sink := postfixtest.StartSink(t, "sink")
	in := Start(t, Options{
		RelayDomains: []string{"example.com"},
		Transport:    map[string]int{"example.com": sink.Port, "elsewhere.test": sink.Port},
		SASL:         map[string]string{"app": "secret"},
	})
	tr, code := in.Send(t, postfixtest.Mail{From: "x@elsewhere.test", To: []string{"bob@example.com"}, TLS: true, AuthUser: "app", AuthPassword: "secret"})
	id, ok := QueueID(tr)
	if code != 0 || !ok {
		t.Fatalf("not queued (exit %d):\n%s", code, tr)
	}
	msgs := sink.WaitMessages(t, 1, 30*time.Second)
	if got := msgs[0].Recipients(); len(got) != 1 || got[0] != "bob@example.com" {
		t.Errorf("sink got %v", got)
	}
	in.WaitLog(t, id+`: to=<bob@example.com>.*stat=Sent`, 10*time.Second)
	in.WaitQueueEmpty(t, 10*time.Second)
	if !strings.Contains(in.Log(), "AUTH=server, relay=") {
		t.Errorf("no AUTH in the log:\n%s", in.Log())
	}
}

func TestQueueID(t *testing.T) {
	id, ok := QueueID("<-  250 2.0.0 6B1B6fQe022943 Message accepted for delivery\n")
	if !ok || id != "6B1B6fQe022943" {
		t.Errorf("QueueID = %q, %v", id, ok)
	}
}

// TestSendmailIPv6: with Options.IPv6 the daemon takes mail over IPv6 on
// [::1] as well as on 127.0.0.1.
func TestSendmailIPv6(t *testing.T) {
	sink := postfixtest.StartSink(t, "sink")
	in := Start(t, Options{
		RelayDomains: []string{"example.com"},
		Transport:    map[string]int{"example.com": sink.Port},
		IPv6:         true,
	})
	if in.Addr6() == "" {
		t.Fatal("Addr6 is empty with Options.IPv6")
	}
	// Sendmail writes an IPv6 client address uncompressed, with its
	// "IPv6:" tag (measured, 8.17.1.9).
	relay := map[string]string{"::1": regexp.QuoteMeta("[IPv6:0:0:0:0:0:0:0:1]"), "127.0.0.1": regexp.QuoteMeta("[127.0.0.1]")}
	for i, src := range []string{"::1", "127.0.0.1"} {
		tr, code := in.Send(t, postfixtest.Mail{From: "x@elsewhere.test", To: []string{"bob@example.com"}, Source: src})
		id, ok := QueueID(tr)
		if code != 0 || !ok {
			t.Fatalf("from %s: not queued (exit %d):\n%s", src, code, tr)
		}
		sink.WaitMessages(t, i+1, 30*time.Second)
		in.WaitLog(t, id+`: from=<x@elsewhere.test>, .*relay=.*`+relay[src], 10*time.Second)
	}
}
