package e2e

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/splitrelay/splitrelay/milter/postfixtest"
)

// Hostile input through the real Postfix (issue 9, scope 3). The correct
// outcome for every recipient is what the rules say for the address
// Postfix stores (postfix-address-findings: source route dropped, quotes
// and comments removed, @$myorigin appended, trailing dot dropped, case
// kept), delivered downstream as the client wrote it; a recipient whose
// stored form cannot be known is tempfailed. Each case asserts what the
// client was told and where every recipient landed.
//
// The legacy and archive routes are MemSinks: they announce SMTPUTF8 (which
// smtp-sink does not) and record the RCPT line exactly.

const hostileConfig = `
[milter]
listen = "{{LISTEN}}"
routing_suffix = "splitrelay.invalid"

[log]
level = "info"

[organization]
domains = ["example.com", "example.org", "xn--bcher-kva.test"]

[directory]
users = ["alice@example.com", "bob@example.com", "anna@xn--bcher-kva.test"]

[routes.legacy]
description = "legacy server"
host = "127.0.0.1"
port = {{LEGACY}}

[routes.archive]
description = "archive"
host = "127.0.0.1"
port = {{ARCHIVE}}

[[split_delivery]]
name = "Unknown addresses stay on the legacy server"
messages = ["inbound", "internal"]
accounts = ["unrecognized"]
route = "legacy"

[[split_delivery]]
name = "Internal mail to bob is archived"
messages = ["internal"]
accounts = ["users"]
route = "archive"
also_deliver = true
[split_delivery.envelope]
recipients = ["address:bob@example.com"]
`

type hostileSite struct {
	*site
	legacy, archive *postfixtest.MemSink
	idn             *postfixtest.MemSink // the primary system for the IDN domain: smtp-sink cannot take SMTPUTF8 mail
}

func newHostileSite(t *testing.T) *hostileSite {
	t.Helper()
	postfixtest.Require(t)
	legacy := postfixtest.StartMemSink(t, "legacy")
	archive := postfixtest.StartMemSink(t, "archive")
	cfg := strings.ReplaceAll(hostileConfig, "{{LEGACY}}", strconv.Itoa(legacy.Port))
	cfg = strings.ReplaceAll(cfg, "{{ARCHIVE}}", strconv.Itoa(archive.Port))
	s := newSite(t, nil, cfg)
	h := &hostileSite{site: s, legacy: legacy, archive: archive, idn: postfixtest.StartMemSink(t, "gmail-idn")}
	// The primary system takes our domains (both forms of the IDN domain:
	// delivering to it is the administrator's transport, not splitrelay's).
	// relay_domains lists the A-label form only: keeping Postfix's notion of
	// "ours" aligned with splitrelay's is the generated configuration's job.
	h.pf.SetTransport(t, map[string]string{
		"example.com":        s.gmail.NextHop(),
		"example.org":        s.gmail.NextHop(),
		".example.com":       s.gmail.NextHop(), // subdomains (append_dot_mydomain)
		"xn--bcher-kva.test": h.idn.NextHop(),
		"bücher.test":        h.idn.NextHop(), // Postfix 3.7 matches the U-label only as written
		"elsewhere.test":     s.internet.NextHop(),
	})
	h.pf.Postconf(t, "-e",
		"relay_domains = example.com, example.org, xn--bcher-kva.test",
		"smtpd_recipient_limit = 1000",
		"message_size_limit = 40000000",
		"mydomain = example.com",
	)
	// What `splitrelay postfix` generates has the last word, as when an
	// administrator runs it after editing main.cf.
	h.attach()
	time.Sleep(2 * time.Second)
	return h
}

// main applies main.cf settings and reloads Postfix. smtpd and cleanup
// processes started before the reload keep the old settings until they
// notice it and exit; a session right after the reload can still meet
// them (seen: <zed> stored with the previous myorigin), so wait.
func (h *hostileSite) main(t *testing.T, settings ...string) {
	t.Helper()
	h.pf.Postconf(t, append([]string{"-e"}, settings...)...)
	h.pf.Reload(t)
	time.Sleep(2 * time.Second)
}

// counts is how many messages each sink had: the mark before a case.
type counts map[string]int

func (h *hostileSite) mark(t *testing.T) counts {
	return counts{
		"gmail":     len(h.gmail.Messages(t)),
		"internet":  len(h.internet.Messages(t)),
		"legacy":    len(h.legacy.Messages()),
		"archive":   len(h.archive.Messages()),
		"gmail-idn": len(h.idn.Messages()),
	}
}

// since returns the messages each sink received after the mark, once
// Postfix's queue is empty.
func (h *hostileSite) since(t *testing.T, c counts) map[string][]postfixtest.Message {
	t.Helper()
	h.pf.WaitQueueEmpty(t, 60*time.Second)
	// smtp-sink writes its dump before answering; give a completed
	// delivery a moment to be listed.
	time.Sleep(200 * time.Millisecond)
	all := map[string][]postfixtest.Message{
		"gmail":     h.gmail.Messages(t),
		"internet":  h.internet.Messages(t),
		"legacy":    h.legacy.Messages(),
		"archive":   h.archive.Messages(),
		"gmail-idn": h.idn.Messages(),
	}
	for k, v := range all {
		all[k] = v[min(c[k], len(v)):]
	}
	return all
}

// expectLanded checks that, since the mark, each sink received exactly
// the wanted RCPT TO addresses (any order) and no other sink received any.
func (h *hostileSite) expectLanded(t *testing.T, what string, c counts, want map[string][]string) map[string][]postfixtest.Message {
	t.Helper()
	got := h.since(t, c)
	for _, name := range []string{"gmail", "internet", "legacy", "archive", "gmail-idn"} {
		var rcpts []string
		for _, m := range got[name] {
			rcpts = append(rcpts, m.Recipients()...)
		}
		slices.Sort(rcpts)
		w := slices.Clone(want[name])
		slices.Sort(w)
		if !slices.Equal(rcpts, w) {
			t.Errorf("%s: %s got RCPT TO %q, want %q", what, name, short(rcpts), short(w))
		}
	}
	return got
}

// short abbreviates long lists and addresses for error messages.
func short(s []string) []string {
	out := make([]string, 0, min(len(s), 6))
	for i, a := range s {
		if i == 5 {
			out = append(out, fmt.Sprintf("… (%d in all)", len(s)))
			break
		}
		if len(a) > 60 {
			a = a[:30] + fmt.Sprintf("…(%d bytes)…", len(a)) + a[len(a)-20:]
		}
		out = append(out, a)
	}
	return out
}

// expectReplies checks the client's reply to each RCPT (by prefix) and
// whether the message was queued.
func expectReplies(t *testing.T, what string, r postfixtest.RawResult, rcpt []string, queued bool) {
	t.Helper()
	for i, w := range rcpt {
		if i >= len(r.Rcpt) || !strings.HasPrefix(r.Rcpt[i], w) {
			got := ""
			if i < len(r.Rcpt) {
				got = r.Rcpt[i]
			}
			t.Errorf("%s: reply to RCPT %d is %q, want %q…", what, i+1, got, w)
		}
	}
	if r.Accepted() != queued {
		t.Errorf("%s: end of DATA %q (mail %q), want queued=%v", what, r.Data, r.Mail, queued)
	}
}

// hostileCase is one transaction and its correct outcome.
type hostileCase struct {
	name    string
	setting []string // main.cf settings applied first
	mail    postfixtest.RawMail
	replies []string            // reply prefix to each RCPT
	queued  bool                // end of DATA answered 250
	landed  map[string][]string // sink -> RCPT TO addresses received
}

func (h *hostileSite) run(t *testing.T, cs []hostileCase) {
	t.Helper()
	for _, c := range cs {
		if c.setting != nil {
			h.main(t, c.setting...)
		}
		if c.mail.From == "" {
			c.mail.From = "<someone@elsewhere.test>"
		}
		m := h.mark(t)
		r := h.pf.SendRaw(t, c.mail)
		expectReplies(t, c.name, r, c.replies, c.queued)
		h.expectLanded(t, c.name, m, c.landed)
	}
}

// TestE2EHostileAddressForms: every RCPT form Postfix canonicalises.
func TestE2EHostileAddressForms(t *testing.T) {
	h := newHostileSite(t)
	rc := func(r ...string) postfixtest.RawMail { return postfixtest.RawMail{Rcpts: r} }
	ok := "250 2.1.5"
	h.run(t, []hostileCase{
		{name: "source route: zed routed once, not also delivered to the primary",
			mail: rc("<@relay.test:zed@example.com>"), replies: []string{ok}, queued: true,
			landed: map[string][]string{"legacy": {"zed@example.com"}}},
		{name: "source route to a directory user stays on the primary",
			mail: rc("<@relay.test:alice@example.com>"), replies: []string{ok}, queued: true,
			landed: map[string][]string{"gmail": {"alice@example.com"}}},
		{name: "quoted local part of a directory user stays on the primary",
			mail: rc(`<"alice"@example.com>`), replies: []string{ok}, queued: true,
			landed: map[string][]string{"gmail": {"alice@example.com"}}},
		{name: "commented local part of a directory user stays on the primary",
			mail: rc("<alice(x)@example.com>"), replies: []string{ok}, queued: true,
			landed: map[string][]string{"gmail": {"alice@example.com"}}},
		{name: "plain and quoted alice in one transaction: both copies on the primary",
			mail: rc("<alice@example.com>", `<"alice"@example.com>`), replies: []string{ok, ok}, queued: true,
			landed: map[string][]string{"gmail": {"alice@example.com", "alice@example.com"}}},
		{name: "quoted unknown local part routed as Postfix stores it",
			mail: rc(`<"zed"@example.com>`), replies: []string{ok}, queued: true,
			landed: map[string][]string{"legacy": {"zed@example.com"}}},
		{name: "quoted local part with a space routed, quotes kept downstream",
			mail: rc(`<"z ed"@example.com>`), replies: []string{ok}, queued: true,
			landed: map[string][]string{"legacy": {`"z ed"@example.com`}}},
		{name: "spaces inside the brackets",
			mail: rc("< zed@example.com >", "< alice@example.com >"), replies: []string{ok, ok}, queued: true,
			landed: map[string][]string{"legacy": {"zed@example.com"}, "gmail": {"alice@example.com"}}},
		{name: "empty local part in our domain: unrecognized",
			mail: rc("<@example.com>"), replies: []string{ok}, queued: true,
			landed: map[string][]string{"legacy": {`""@example.com`}}},
		{name: "percent hack in our domain (relay domain: stored as written)",
			mail: rc("<zed%elsewhere.test@example.com>"), replies: []string{ok}, queued: true,
			landed: map[string][]string{"legacy": {"zed%elsewhere.test@example.com"}}},
		{name: "bang path in our domain (relay domain: stored as written)",
			mail: rc("<elsewhere.test!zed@example.com>"), replies: []string{ok}, queued: true,
			landed: map[string][]string{"legacy": {"elsewhere.test!zed@example.com"}}},
		{name: "case kept downstream",
			mail: rc("<ZOE2@EXAMPLE.COM>"), replies: []string{ok}, queued: true,
			landed: map[string][]string{"legacy": {"ZOE2@EXAMPLE.COM"}}},
		{name: "directory user in capitals stays on the primary",
			mail: rc("<ALICE@Example.COM>"), replies: []string{ok}, queued: true,
			landed: map[string][]string{"gmail": {"ALICE@Example.COM"}}},
		{name: "trailing dot",
			mail: rc("<zed@example.com.>", "<alice@example.com.>"), replies: []string{ok, ok}, queued: true,
			landed: map[string][]string{"legacy": {"zed@example.com"}, "gmail": {"alice@example.com"}}},
		{name: "1,500-character local part",
			mail: rc("<" + strings.Repeat("z", 1500) + "@example.com>"), replies: []string{ok}, queued: true,
			landed: map[string][]string{"legacy": {strings.Repeat("z", 1500) + "@example.com"}}},
		{name: "NUL byte: Postfix refuses the recipient, the others proceed",
			mail: rc("<ze\x00d@example.com>", "<alice@example.com>"), replies: []string{"501 5.1.3", ok}, queued: true,
			landed: map[string][]string{"gmail": {"alice@example.com"}}},
		{name: "invalid UTF-8 byte in the local part: Postfix refuses it",
			mail: rc("<z\xe9d@example.com>", "<alice@example.com>"), replies: []string{"500 5.5.2", ok}, queued: true,
			landed: map[string][]string{"gmail": {"alice@example.com"}}},
		{name: "UTF-8 local part without SMTPUTF8 (Postfix accepts 8-bit local parts)",
			mail: rc("<zoë@example.com>"), replies: []string{ok}, queued: true,
			landed: map[string][]string{"legacy": {"zoë@example.com"}}},
	})
}

// TestE2EHostileUnqualified: RCPT TO:<zed> becomes zed@$myorigin, and
// zed@host may become zed@host.$mydomain: the rules apply to that.
func TestE2EHostileUnqualified(t *testing.T) {
	h := newHostileSite(t)
	ok := "250 2.1.5"
	h.run(t, []hostileCase{
		{name: "myorigin one of our domains: zed is unrecognized",
			setting: []string{"myorigin = example.com"},
			mail:    postfixtest.RawMail{Rcpts: []string{"<zed>", "<alice>"}}, replies: []string{ok, ok}, queued: true,
			landed: map[string][]string{"legacy": {"zed@example.com"}, "gmail": {"alice@example.com"}}},
		{name: "myorigin another of our domains",
			setting: []string{"myorigin = example.org"},
			mail:    postfixtest.RawMail{Rcpts: []string{"<zed>"}}, replies: []string{ok}, queued: true,
			landed: map[string][]string{"legacy": {"zed@example.org"}}},
		{name: "control: an outside domain from this client (in mynetworks, no relay policy) is relayed",
			mail: postfixtest.RawMail{Rcpts: []string{"<zed@elsewhere.test>"}}, replies: []string{ok}, queued: true,
			landed: map[string][]string{"internet": {"zed@elsewhere.test"}}},
		{name: "myorigin not ours: treated like that outside domain",
			setting: []string{"myorigin = elsewhere.test"},
			mail:    postfixtest.RawMail{Rcpts: []string{"<zed>", "<alice@example.com>"}}, replies: []string{ok, ok}, queued: true,
			landed: map[string][]string{"internet": {"zed@elsewhere.test"}, "gmail": {"alice@example.com"}}},
		{name: "append_dot_mydomain: zed@host is zed@host.example.com, a subdomain of ours",
			setting: []string{"myorigin = example.com", "append_dot_mydomain = yes"},
			mail:    postfixtest.RawMail{Rcpts: []string{"<zed@host>"}}, replies: []string{ok}, queued: true,
			landed: map[string][]string{"legacy": {"zed@host.example.com"}}},
	})
}

// TestE2EHostileUTF8: SMTPUTF8 addresses, and a U-label recipient domain
// whose A-label form is ours.
func TestE2EHostileUTF8(t *testing.T) {
	h := newHostileSite(t)
	ok := "250 2.1.5"
	u := func(r ...string) postfixtest.RawMail { return postfixtest.RawMail{Rcpts: r, MailArgs: "SMTPUTF8"} }
	h.run(t, []hostileCase{
		{name: "UTF-8 local part routed, unchanged downstream",
			mail: u("<zoë@example.com>"), replies: []string{ok}, queued: true,
			landed: map[string][]string{"legacy": {"zoë@example.com"}}},
		{name: "U-label domain, A-label in our domains: unrecognized routed as written",
			mail: u("<x@bücher.test>"), replies: []string{ok}, queued: true,
			landed: map[string][]string{"legacy": {"x@bücher.test"}}},
		{name: "U-label domain, directory user: stays on the primary",
			mail: u("<anna@bücher.test>"), replies: []string{ok}, queued: true,
			landed: map[string][]string{"gmail-idn": {"anna@bücher.test"}}},
		{name: "U-label domain from outside (mynetworks narrowed): ours, not a relay",
			setting: []string{"mynetworks = 127.0.0.1/32"},
			mail:    postfixtest.RawMail{Source: "127.0.0.3", Rcpts: []string{"<x@bücher.test>"}, MailArgs: "SMTPUTF8"}, replies: []string{ok}, queued: true,
			landed: map[string][]string{"legacy": {"x@bücher.test"}}},
	})
}

// TestE2EHostileVolume: 1,000 recipients in one transaction, 10,000
// headers, 500 From addresses, RFC 2047 and group From headers, a 30 MB
// message. Bounded: each case is one transaction.
func TestE2EHostileVolume(t *testing.T) {
	h := newHostileSite(t)
	ok := "250 2.1.5"

	// 1,000 recipients (smtpd_recipient_limit): 999 unknown addresses for
	// the legacy server and alice for the primary system.
	var rcpts, legacyWant, replies []string
	for i := range 999 {
		a := fmt.Sprintf("u%04d@example.com", i)
		rcpts = append(rcpts, "<"+a+">")
		legacyWant = append(legacyWant, a)
		replies = append(replies, ok)
	}
	rcpts = append(rcpts, "<alice@example.com>")
	replies = append(replies, ok)

	headers := func(n int) []byte {
		var b strings.Builder
		b.WriteString("From: Boss <boss@example.com>\nSubject: many headers\n")
		for i := range n {
			fmt.Fprintf(&b, "X-Filler-%d: %d\n", i, i)
		}
		b.WriteString("\nbody\n")
		return []byte(b.String())
	}
	froms := func(n int, last string) []byte {
		var b strings.Builder
		b.WriteString("From: ")
		for i := range n - 1 {
			fmt.Fprintf(&b, "a%d@example.com,\n ", i)
		}
		b.WriteString(last + "\nSubject: many authors\n\nbody\n")
		return []byte(b.String())
	}
	big := func() []byte {
		var b strings.Builder
		b.Grow(31 << 20)
		b.WriteString("From: someone@elsewhere.test\nSubject: 30 MB\n\n")
		line := strings.Repeat("0123456789", 7) + "\n"
		for b.Len() < 30<<20 {
			b.WriteString(line)
		}
		return []byte(b.String())
	}
	bobZed := []string{"<bob@example.com>", "<zed@example.com>"}
	internal := map[string][]string{"gmail": {"bob@example.com"}, "archive": {"bob@example.com"}, "legacy": {"zed@example.com"}}
	inbound := map[string][]string{"gmail": {"bob@example.com"}, "legacy": {"zed@example.com"}}
	start := time.Now()
	h.run(t, []hostileCase{
		{name: "1,000 recipients in one transaction",
			mail: postfixtest.RawMail{Rcpts: rcpts}, replies: replies, queued: true,
			landed: map[string][]string{"legacy": legacyWant, "gmail": {"alice@example.com"}}},
		{name: "10,000 header fields, From ours: internal",
			mail: postfixtest.RawMail{Rcpts: bobZed, Data: headers(10000)}, replies: []string{ok, ok}, queued: true,
			landed: internal},
		{name: "folded From header with two of our addresses: internal",
			mail: postfixtest.RawMail{Rcpts: bobZed, Data: []byte("From: a@example.com,\n b@example.org\nSubject: x\n\nbody\n")}, replies: []string{ok, ok}, queued: true,
			landed: internal},
		{name: "500 From addresses, all ours: internal",
			mail: postfixtest.RawMail{Rcpts: bobZed, Data: froms(500, "last@example.org")}, replies: []string{ok, ok}, queued: true,
			landed: internal},
		{name: "500 From addresses, the last outside: inbound",
			mail: postfixtest.RawMail{Rcpts: bobZed, Data: froms(500, "last@elsewhere.test")}, replies: []string{ok, ok}, queued: true,
			landed: inbound},
		{name: "RFC 2047 display name, address ours: internal",
			mail: postfixtest.RawMail{Rcpts: bobZed, Data: []byte("From: =?UTF-8?B?w5xiZXIgQm9zcw==?= <boss@example.com>\nSubject: x\n\nbody\n")}, replies: []string{ok, ok}, queued: true,
			landed: internal},
		{name: "RFC 2047 display name hiding an outside address: inbound",
			mail: postfixtest.RawMail{Rcpts: bobZed, Data: []byte("From: =?UTF-8?Q?boss@example.com?= <x@elsewhere.test>\nSubject: x\n\nbody\n")}, replies: []string{ok, ok}, queued: true,
			landed: inbound},
		{name: "group syntax, members ours: internal",
			mail: postfixtest.RawMail{Rcpts: bobZed, Data: []byte("From: Team: boss@example.com, b@example.org;\nSubject: x\n\nbody\n")}, replies: []string{ok, ok}, queued: true,
			landed: internal},
		{name: "group syntax with an outside member: inbound",
			mail: postfixtest.RawMail{Rcpts: bobZed, Data: []byte("From: Team: boss@example.com, x@elsewhere.test;\nSubject: x\n\nbody\n")}, replies: []string{ok, ok}, queued: true,
			landed: inbound},
		{name: "empty group: inbound",
			mail: postfixtest.RawMail{Rcpts: bobZed, Data: []byte("From: undisclosed-recipients:;\nSubject: x\n\nbody\n")}, replies: []string{ok, ok}, queued: true,
			landed: inbound},
		{name: "30 MB message to both systems",
			mail: postfixtest.RawMail{Rcpts: []string{"<alice@example.com>", "<zed@example.com>"}, Data: big()}, replies: []string{ok, ok}, queued: true,
			landed: map[string][]string{"gmail": {"alice@example.com"}, "legacy": {"zed@example.com"}}},
	})
	t.Logf("volume cases took %v", time.Since(start).Round(time.Millisecond))
	if msgs := h.legacy.Messages(); len(msgs) > 0 {
		if last := msgs[len(msgs)-1]; len(last.Data) < 30<<20 {
			t.Errorf("30 MB message reached legacy with %d bytes", len(last.Data))
		}
	}
}
