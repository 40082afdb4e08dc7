package postfixtest_test

import (
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/splitrelay/splitrelay/milter/postfixtest"
)

const wait = 20 * time.Second

// TestPostfix checks the harness itself against a real Postfix: delivery to
// a sink with the right envelope, relay refusal, ESMTP parameters passed on,
// and deferral while the sink is down followed by delivery after a flush.
func TestPostfix(t *testing.T) {
	sink := postfixtest.StartSink(t, "primary")
	in := postfixtest.Start(t, postfixtest.Options{
		RelayDomains: []string{"example.com"},
		Transport:    map[string]string{"example.com": sink.NextHop()},
		Mynetworks:   "127.0.0.1/32",
	})

	t.Run("two recipients", func(t *testing.T) {
		tr, code := in.Send(t, postfixtest.Mail{
			From:    "sender@external.test",
			To:      []string{"bob@example.com", "alice@example.com"},
			Subject: "two",
			Source:  "127.0.0.2",
		})
		id, ok := postfixtest.QueueID(tr)
		if code != 0 || !ok {
			t.Fatalf("swaks exit %d, queue ID %q:\n%s", code, id, tr)
		}
		msgs := sink.WaitMessages(t, 1, wait)
		m := msgs[0]
		if m.From != "sender@external.test" {
			t.Errorf("MAIL FROM = %q", m.From)
		}
		got := m.Recipients()
		slices.Sort(got)
		if want := []string{"alice@example.com", "bob@example.com"}; !slices.Equal(got, want) {
			t.Errorf("RCPT TO = %q, want %q", got, want)
		}
		for _, r := range m.Rcpts {
			if v, _ := r.Param("ORCPT"); v != "rfc822;"+r.Addr {
				t.Errorf("%s: ORCPT = %q", r.Addr, v)
			}
		}
		if m.Header.Get("Subject") != "two" || !strings.Contains(m.Header.Get("Received"), id) {
			t.Errorf("header: Subject %q, Received %q (queue ID %s)", m.Header.Get("Subject"), m.Header.Get("Received"), id)
		}
		in.WaitLog(t, id+`: to=<bob@example\.com>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:\d+, .*status=sent`, wait)
	})

	t.Run("relay denied", func(t *testing.T) {
		tr, code := in.Send(t, postfixtest.Mail{From: "sender@external.test", To: []string{"x@example.net"}, Source: "127.0.0.2"})
		if code != 24 || !strings.HasPrefix(postfixtest.Reply(tr, "RCPT TO:<x@example.net>"), "554 5.7.1 ") {
			t.Errorf("exit %d, want 24 and 554 5.7.1:\n%s", code, tr)
		}
	})

	t.Run("rcpt args", func(t *testing.T) {
		before := len(sink.Messages(t))
		tr, code := in.Send(t, postfixtest.Mail{
			From:     "",
			To:       []string{"carol@example.com", "dave@example.com"},
			MailArgs: "RET=HDRS ENVID=t1",
			RcptArgs: map[string]string{"carol@example.com": "NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;Carol@Example.COM"},
		})
		if code != 0 {
			t.Fatalf("exit %d:\n%s", code, tr)
		}
		m := sink.WaitMessages(t, before+1, wait)[before]
		if m.From != "" {
			t.Errorf("MAIL FROM = %q, want the null sender", m.From)
		}
		if v, _ := m.MailParam("RET"); v != "HDRS" {
			t.Errorf("MAIL args %q, want RET=HDRS", m.MailArgs)
		}
		// Postfix's smtp client puts ORCPT before NOTIFY, whatever the
		// client's order; dave had no ORCPT, Postfix adds one.
		want := map[string]map[string]string{
			"carol@example.com": {"NOTIFY": "SUCCESS,FAILURE", "ORCPT": "rfc822;Carol@Example.COM"},
			"dave@example.com":  {"NOTIFY": "", "ORCPT": "rfc822;dave@example.com"},
		}
		for _, r := range m.Rcpts {
			for k, v := range want[r.Addr] {
				if got, _ := r.Param(k); got != v {
					t.Errorf("%s: %s=%q, want %q (args %q)", r.Addr, k, got, v, r.Args)
				}
			}
		}
	})

	t.Run("starttls", func(t *testing.T) {
		if in.Postconf(t, "-h", "smtpd_tls_security_level") != "may\n" {
			t.Skip("no snakeoil certificate: the instance offers no STARTTLS")
		}
		before := len(sink.Messages(t))
		tr, code := in.Send(t, postfixtest.Mail{From: "sender@external.test", To: []string{"frank@example.com"}, TLS: true})
		if code != 0 || !strings.Contains(tr, "STARTTLS") {
			t.Fatalf("exit %d:\n%s", code, tr)
		}
		if id, ok := postfixtest.QueueID(tr); !ok {
			t.Errorf("no queue ID in a TLS transcript (%q):\n%s", id, tr)
		}
		m := sink.WaitMessages(t, before+1, wait)[before]
		if !strings.Contains(m.Header.Get("Received"), "with ESMTPS") {
			t.Errorf("Received = %q, want ESMTPS", m.Header.Get("Received"))
		}
	})

	t.Run("deferred then flushed", func(t *testing.T) {
		before := len(sink.Messages(t))
		sink.Stop(t)
		tr, code := in.Send(t, postfixtest.Mail{From: "sender@external.test", To: []string{"erin@example.com"}})
		id, ok := postfixtest.QueueID(tr)
		if code != 0 || !ok {
			t.Fatalf("exit %d:\n%s", code, tr)
		}
		in.WaitLog(t, id+`: to=<erin@example\.com>, relay=none, .*status=deferred \(connect to .*Connection refused\)`, wait)
		if q := in.Queue(t); !strings.Contains(q, id) || !strings.Contains(q, "erin@example.com") || !strings.Contains(q, "Connection refused") {
			t.Errorf("postqueue -p does not show %s deferred:\n%s", id, q)
		}
		var entry *postfixtest.QueueEntry
		for _, e := range in.QueueEntries(t) {
			if e.QueueID == id {
				entry = &e
			}
		}
		if entry == nil || len(entry.Recipients) != 1 || !strings.Contains(entry.Recipients[0].DelayReason, "Connection refused") {
			t.Errorf("postqueue -j entry for %s: %+v", id, entry)
		}
		sink.Start(t)
		in.Flush(t)
		m := sink.WaitMessages(t, before+1, wait)[before]
		if got := m.Recipients(); !slices.Equal(got, []string{"erin@example.com"}) {
			t.Errorf("RCPT TO = %q", got)
		}
		in.WaitQueueEmpty(t, wait)
	})
}

// TestPostfixIPv6: with Options.IPv6 the instance takes mail over IPv6 on
// [::1] and over IPv4 on 127.0.0.1, both delivered to an IPv4 sink.
func TestPostfixIPv6(t *testing.T) {
	sink := postfixtest.StartSink(t, "primary")
	in := postfixtest.Start(t, postfixtest.Options{
		RelayDomains: []string{"example.com"},
		Transport:    map[string]string{"example.com": sink.NextHop()},
		IPv6:         true,
	})
	if in.Addr6() == "" {
		t.Fatal("Addr6 is empty with Options.IPv6")
	}
	for i, src := range []string{"::1", "127.0.0.1"} {
		tr, code := in.Send(t, postfixtest.Mail{From: "sender@external.test", To: []string{"bob@example.com"}, Source: src})
		id, ok := postfixtest.QueueID(tr)
		if code != 0 || !ok {
			t.Fatalf("from %s: exit %d:\n%s", src, code, tr)
		}
		sink.WaitMessages(t, i+1, wait)
		in.WaitLog(t, id+`: client=\S+\[`+regexp.QuoteMeta(src)+`\]`, wait)
	}
	if got := in.Postconf(t, "-h", "inet_protocols"); strings.TrimSpace(got) != "all" {
		t.Errorf("inet_protocols = %q", got)
	}
}
