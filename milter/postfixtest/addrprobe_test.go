package postfixtest_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/textproto"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	gomilter "github.com/d--j/go-milter"

	"github.com/splitrelay/splitrelay/milter/postfixtest"
)

// The address probe measures, against the real Postfix, what a milter is
// given for each form of RCPT TO a client can type and what Postfix stores
// (issue 9): the RcptTo argument, the {rcpt_addr} macro, the queue file's
// recipient records, which string a DeleteRecipient must name, and whether
// an added routed recipient survives the generic map unchanged. Its results
// are recorded in the expectations below; a Postfix that behaves otherwise
// fails the test, so a change in Postfix cannot silently break the milter.

var update = flag.Bool("update", false, "rewrite testdata/postfix/rcpt-*.json from the probe's tables")

// checkGolden keeps testdata/postfix/NAME, the probe's measured table as
// JSON, in step with the table in this file, so tests without a Postfix
// (the engine's, fuzz targets) can use what Postfix does. Fields: the RCPT
// argument as typed, the milter's RcptTo argument, {rcpt_addr}, the queue
// file's original_recipient (what DeleteRecipient is matched against) and
// recipient (what is delivered); for deletions, the recipients left.
// Settings accumulate in table order from the base of newProbeSite
// (mydomain = myorigin = acme.test, relay_domains = acme.test, relay.test,
// mydestination empty).
func checkGolden(t *testing.T, name string, v any) {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	data := buf.Bytes()
	path := filepath.Join("..", "..", "testdata", "postfix", name)
	if *update {
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	old, err := os.ReadFile(path)
	if err != nil || !bytes.Equal(old, data) {
		t.Errorf("%s is not in step with the probe's table (err %v): run go test -run %s -update", path, err, t.Name())
	}
}

// probeMilter records what Postfix tells a milter and, at end of message,
// applies the current plan (delete, add, hold).
type probeMilter struct {
	gomilter.NoOpMilter
	p *probe
}

// probeEvent is one RCPT as the milter saw it.
type probeEvent struct {
	Arg, Args, RcptAddr, RcptHost, RcptMailer string
}

// probePlan is what the milter does at end of message.
type probePlan struct {
	Delete []string    // DeleteRecipient arguments
	Add    [][2]string // AddRecipient address and ESMTP args
	Hold   bool        // Quarantine: the message stays in the hold queue for postcat
}

type probe struct {
	mu     sync.Mutex
	plan   probePlan
	events []probeEvent
	eomErr []error
}

func (m *probeMilter) RcptTo(rcptTo, esmtpArgs string, mod gomilter.Modifier) (*gomilter.Response, error) {
	m.p.mu.Lock()
	defer m.p.mu.Unlock()
	m.p.events = append(m.p.events, probeEvent{
		Arg: rcptTo, Args: esmtpArgs,
		RcptAddr:   mod.Get(gomilter.MacroRcptAddr),
		RcptHost:   mod.Get(gomilter.MacroRcptHost),
		RcptMailer: mod.Get(gomilter.MacroRcptMailer),
	})
	return gomilter.RespContinue, nil
}

func (m *probeMilter) EndOfMessage(mod gomilter.Modifier) (*gomilter.Response, error) {
	m.p.mu.Lock()
	plan := m.p.plan
	m.p.mu.Unlock()
	var errs []error
	for _, d := range plan.Delete {
		errs = append(errs, mod.DeleteRecipient(d))
	}
	for _, a := range plan.Add {
		errs = append(errs, mod.AddRecipient(a[0], a[1]))
	}
	if plan.Hold {
		errs = append(errs, mod.Quarantine("probe"))
	}
	m.p.mu.Lock()
	m.p.eomErr = append(m.p.eomErr, errs...)
	m.p.mu.Unlock()
	return gomilter.RespAccept, nil
}

// startProbe starts the probe milter on a loopback port; it returns the
// probe and the Postfix smtpd_milters value.
func startProbe(t *testing.T) (*probe, string) {
	t.Helper()
	return startProbeMacros(t, []gomilter.MacroName{gomilter.MacroRcptAddr, gomilter.MacroRcptHost, gomilter.MacroRcptMailer})
}

// startProbeMacros is startProbe with the milter's RCPT macro request.
func startProbeMacros(t *testing.T, rcptMacros []gomilter.MacroName) (*probe, string) {
	t.Helper()
	p := &probe{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := gomilter.NewServer(
		gomilter.WithMilter(func() gomilter.Milter { return &probeMilter{p: p} }),
		gomilter.WithActions(gomilter.OptAddRcpt|gomilter.OptAddRcptWithArgs|gomilter.OptRemoveRcpt|gomilter.OptQuarantine),
		gomilter.WithMacroRequest(gomilter.StageRcpt, rcptMacros),
	)
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return p, "inet:" + ln.Addr().String()
}

func (p *probe) reset(plan probePlan) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.plan, p.events, p.eomErr = plan, nil, nil
}

func (p *probe) seen() ([]probeEvent, []error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]probeEvent(nil), p.events...), append([]error(nil), p.eomErr...)
}

// rawSMTP runs one transaction with RCPT lines exactly as given (the
// bytes after "RCPT TO:"), so forms swaks would normalise reach Postfix.
// It returns the reply to each RCPT and the reply to the end of DATA
// ("" when DATA was not reached).
func rawSMTP(t *testing.T, addr string, utf8 bool, rcpts []string, body string) (rcptReplies []string, dataReply string) {
	t.Helper()
	m := postfixtest.RawMail{Rcpts: rcpts, Data: []byte("From: sender@client.test\nTo: undisclosed-recipients:;\nSubject: probe\n\n" + body + "\n")}
	if utf8 {
		m.MailArgs = "SMTPUTF8"
	}
	r, err := postfixtest.SMTP(addr, m)
	if err != nil {
		t.Fatal(err)
	}
	return r.Rcpt, r.Data
}

func queueIDOf(reply string) string {
	if i := strings.Index(reply, "queued as "); i >= 0 {
		return strings.TrimSpace(reply[i+len("queued as "):])
	}
	return ""
}

// storedRecipients runs postcat on a held message and returns its
// original_recipient/recipient records, in order, as "orig -> rcpt" and
// deleted ones marked.
func storedRecipients(t *testing.T, in *postfixtest.Instance, id string) []string {
	t.Helper()
	var out string
	for deadline := time.Now().Add(10 * time.Second); ; {
		out = in.Shell(t, "postcat -e -q "+id+" 2>&1 || true")
		if !strings.Contains(out, "No such file") && strings.Contains(out, "recipient") || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	var recs []string
	for _, l := range strings.Split(out, "\n") {
		for _, k := range []string{"original_recipient: ", "recipient: ", "done_recipient: ", "deleted_recipient: "} {
			if strings.HasPrefix(l, k) {
				recs = append(recs, strings.TrimSuffix(k, ": ")+"="+strings.TrimPrefix(l, k))
			}
		}
	}
	return recs
}

// probeSite is a private Postfix whose smtpd calls the probe milter and
// whose mail goes to one sink.
type probeSite struct {
	in   *postfixtest.Instance
	p    *probe
	sink *postfixtest.Sink
}

func newProbeSite(t *testing.T) *probeSite {
	p, milterAddr := startProbe(t)
	return newProbeSiteWith(t, p, milterAddr)
}

func newProbeSiteWith(t *testing.T, p *probe, milterAddr string) *probeSite {
	sink := postfixtest.StartSink(t, "sink")
	in := postfixtest.Start(t, postfixtest.Options{
		RelayDomains: []string{"acme.test", "relay.test"},
		Main: map[string]string{
			"smtpd_milters":         milterAddr,
			"milter_default_action": "tempfail",
			"milter_protocol":       "6",
			"relay_transport":       sink.NextHop(),
			"default_transport":     sink.NextHop(),
			"mydomain":              "acme.test",
			"myorigin":              "acme.test",
			"smtpd_recipient_limit": "2000",
		},
	})
	return &probeSite{in: in, p: p, sink: sink}
}

func (s *probeSite) set(t *testing.T, kv map[string]string) {
	args := []string{"-e"}
	for k, v := range kv {
		args = append(args, k+"="+v)
	}
	s.in.Postconf(t, args...)
	s.in.Reload(t)
	time.Sleep(1500 * time.Millisecond) // smtpd processes started before the reload exit when idle
}

// TestAddressProbe prints, for each hostile RCPT form, what the milter is
// given and what Postfix stores. Run with -v to see the table;
// SPLITRELAY_PROBE_OUT=FILE also writes it as Markdown.
func TestAddressProbe(t *testing.T) {
	s := newProbeSite(t)
	type row struct {
		setting, rcpt string
		utf8          bool
		// want: the RcptTo argument, {rcpt_addr}, the queue file's
		// original_recipient and recipient ("" when Postfix refused the RCPT)
		arg, macro, orig, stored string
	}
	rows := []row{
		{"", "<@relay.test:zed@acme.test>", false, "@relay.test:zed@acme.test", "zed@acme.test", "zed@acme.test", "zed@acme.test"},
		{"", `<"alice"@acme.test>`, false, `"alice"@acme.test`, "alice@acme.test", "alice@acme.test", "alice@acme.test"},
		{"", "<alice(x)@acme.test>", false, "alice(x)@acme.test", "alice@acme.test", "alice@acme.test", "alice@acme.test"},
		{"myorigin=acme.test", "<zed>", false, "zed", "zed@acme.test", "zed", "zed@acme.test"},
		{"myorigin=other.test", "<zed>", false, "zed", "zed@other.test", "zed", "zed@other.test"},
		{"append_dot_mydomain=no", "<zed@host>", false, "zed@host", "zed@host", "zed@host", "zed@host"},
		{"append_dot_mydomain=yes", "<zed@host>", false, "zed@host", "zed@host.acme.test", "zed@host", "zed@host.acme.test"},
		{"", "< zed@acme.test >", false, " zed@acme.test ", "zed@acme.test", "zed@acme.test", "zed@acme.test"},
		{"", "<@acme.test>", false, "@acme.test", `""@acme.test`, "@acme.test", "@acme.test"},
		{"", "<ZOE2@ACME.TEST>", false, "ZOE2@ACME.TEST", "zoe2@acme.test", "ZOE2@ACME.TEST", "ZOE2@ACME.TEST"},
		{"", "<x@bücher.test>", false, "", "", "", ""},
		{"", "<x@bücher.test>", true, "x@bücher.test", "x@bücher.test", "x@bücher.test", "x@bücher.test"},
		{"", `<"a b"@acme.test>`, false, `"a b"@acme.test`, `"a b"@acme.test`, "a b@acme.test", "a b@acme.test"},
		{"", "<a%b@acme.test>", false, "a%b@acme.test", "a%b@acme.test", "a%b@acme.test", "a%b@acme.test"},
		{"", "<b!a@acme.test>", false, "b!a@acme.test", "b!a@acme.test", "b!a@acme.test", "b!a@acme.test"},
		{"", "<x@acme.test.>", false, "x@acme.test.", "x@acme.test", "x@acme.test.", "x@acme.test"},
		{"", "<Zed@Acme.Test>", false, "Zed@Acme.Test", "zed@acme.test", "Zed@Acme.Test", "Zed@Acme.Test"},
		{"", `<"zed"@ACME.test.>`, false, `"zed"@ACME.test.`, "zed@acme.test", "zed@ACME.test.", "zed@ACME.test"},
		{"", "<host.test!zed>", false, "host.test!zed", "zed@host.test", "host.test!zed", "zed@host.test"},
		{"", "<zed%other.test>", false, "zed%other.test", "zed@other.test", "zed%other.test", "zed@other.test"},
		// With the domain in mydestination, {rcpt_addr} (trivial-rewrite
		// resolve) applies the percent and bang hacks; the stored address
		// (cleanup's rewrite) does not.
		{"mydestination=acme.test", "<a%b@acme.test>", false, "a%b@acme.test", "a@b.acme.test", "a%b@acme.test", "a%b@acme.test"},
		{"mydestination=acme.test", "<b!a@acme.test>", false, "b!a@acme.test", "a@b.acme.test", "b!a@acme.test", "b!a@acme.test"},
		{"mydestination=acme.test", "<zed%other.test@acme.test>", false, "zed%other.test@acme.test", "zed@other.test", "zed%other.test@acme.test", "zed%other.test@acme.test"},
		// The milter's own macro request (protocol 6) wins over an empty
		// milter_rcpt_macros: {rcpt_addr} still arrives (myorigin is
		// other.test since the row above that set it).
		{"milter_rcpt_macros=", "<zed>", false, "zed", "zed@other.test", "zed", "zed@other.test"},
	}
	type form struct {
		Setting           string `json:"setting,omitempty"`
		Rcpt              string `json:"rcpt"`
		SMTPUTF8          bool   `json:"smtputf8,omitempty"`
		MilterArg         string `json:"milter_arg"`
		RcptAddr          string `json:"rcpt_addr"`
		OriginalRecipient string `json:"original_recipient"`
		Recipient         string `json:"recipient"`
	}
	var forms []form
	for _, r := range rows {
		forms = append(forms, form{r.setting, r.rcpt, r.utf8, r.arg, r.macro, r.orig, r.stored})
	}
	checkGolden(t, "rcpt-forms.json", forms)
	var md strings.Builder
	md.WriteString("| setting | RCPT TO | reply | milter RcptTo arg | {rcpt_addr} | {rcpt_host} | queue file (postcat) |\n|---|---|---|---|---|---|---|\n")
	cur := map[string]string{}
	for _, r := range rows {
		if r.setting != "" {
			k, v, _ := strings.Cut(r.setting, "=")
			if cur[k] != v {
				s.set(t, map[string]string{k: v})
				cur[k] = v
			}
		}
		s.p.reset(probePlan{Hold: true})
		replies, data := rawSMTP(t, s.in.Addr(), r.utf8, []string{r.rcpt}, "probe")
		ev, _ := s.p.seen()
		var stored []string
		if id := queueIDOf(data); id != "" {
			stored = storedRecipients(t, s.in, id)
		}
		var arg, macro, host string
		if len(ev) > 0 {
			arg, macro, host = ev[0].Arg, ev[0].RcptAddr, ev[0].RcptHost
		}
		rcpt := r.rcpt
		if r.utf8 {
			rcpt += " (SMTPUTF8)"
		}
		line := fmt.Sprintf("| %s | `%s` | %s | `%s` | `%s` | `%s` | %s |", r.setting, rcpt, strings.ReplaceAll(replies[0], "\n", " "), arg, macro, host, "`"+strings.Join(stored, "`, `")+"`")
		t.Log(line)
		var want []string
		if r.orig != "" {
			want = []string{"original_recipient=" + r.orig, "recipient=" + r.stored}
		}
		if arg != r.arg || macro != r.macro || !slices.Equal(stored, want) {
			t.Errorf("RCPT TO:%s: got arg %q {rcpt_addr} %q stored %q; want %q %q %q", rcpt, arg, macro, stored, r.arg, r.macro, want)
		}
		md.WriteString(line + "\n")
	}
	if f := os.Getenv("SPLITRELAY_PROBE_OUT"); f != "" {
		os.WriteFile(f, []byte(md.String()), 0o644)
	}
}

// TestAddressProbeDelete measures which DeleteRecipient argument removes
// which stored recipient. Each case sends the RCPT lines, deletes one
// string at end of message and holds the message; the queue file then
// shows which recipients remain.
func TestAddressProbeDelete(t *testing.T) {
	s := newProbeSite(t)
	type row struct {
		rcpts []string
		del   string
		left  []string // recipient records still live after the delete
	}
	none := []string(nil)
	rows := []row{
		{[]string{"<@relay.test:zed@acme.test>"}, "@relay.test:zed@acme.test", []string{"zed@acme.test"}},
		{[]string{"<@relay.test:zed@acme.test>"}, "<@relay.test:zed@acme.test>", []string{"zed@acme.test"}},
		{[]string{"<@relay.test:zed@acme.test>"}, "zed@acme.test", none},
		{[]string{"<@relay.test:zed@acme.test>", "<zed@acme.test>"}, "zed@acme.test", none},
		{[]string{"<alice@acme.test>", `<"alice"@acme.test>`}, "", []string{"alice@acme.test", "alice@acme.test"}},
		{[]string{"<alice@acme.test>", `<"alice"@acme.test>`}, `"alice"@acme.test`, none},
		{[]string{"<alice@acme.test>", `<"alice"@acme.test>`}, "alice@acme.test", none},
		{[]string{"<alice@acme.test>", "<alice(x)@acme.test>"}, "alice(x)@acme.test", none},
		{[]string{"<zed>"}, "zed", none},
		{[]string{"<zed>"}, "zed@acme.test", []string{"zed@acme.test"}},
		{[]string{"<zed>", "<zed@acme.test>"}, "zed@acme.test", []string{"zed@acme.test"}},
		{[]string{"< zed@acme.test >"}, " zed@acme.test ", none},
		{[]string{"< zed@acme.test >"}, "zed@acme.test", none},
		{[]string{"<@acme.test>"}, "@acme.test", none},
		{[]string{"<@acme.test>"}, `""@acme.test`, none},
		{[]string{"<ZOE2@ACME.TEST>"}, "zoe2@acme.test", []string{"ZOE2@ACME.TEST"}},
		{[]string{"<ZOE2@ACME.TEST>"}, "ZOE2@ACME.TEST", none},
		{[]string{"<Zed@Acme.Test>", "<zed@acme.test>"}, "zed@acme.test", []string{"Zed@Acme.Test"}},
		{[]string{"<x@acme.test.>"}, "x@acme.test", []string{"x@acme.test"}},
		{[]string{"<x@acme.test.>"}, "x@acme.test.", none},
		{[]string{`<"a b"@acme.test>`}, `"a b"@acme.test`, none},
		{[]string{`<"a b"@acme.test>`}, "a b@acme.test", []string{"a b@acme.test"}},
		{[]string{"<a%b@acme.test>"}, "a%b@acme.test", none},
		{[]string{"<b!a@acme.test>"}, "b!a@acme.test", none},
	}
	type deletion struct {
		Rcpts  []string `json:"rcpts"`
		Delete string   `json:"delete"`
		Left   []string `json:"left"`
	}
	var dels []deletion
	for _, r := range rows {
		dels = append(dels, deletion{r.rcpts, r.del, r.left})
	}
	checkGolden(t, "rcpt-deletes.json", dels)
	var md strings.Builder
	md.WriteString("| RCPT TO lines | DeleteRecipient | queue file after |\n|---|---|---|\n")
	for _, r := range rows {
		plan := probePlan{Hold: true}
		if r.del != "" {
			plan.Delete = []string{r.del}
		}
		s.p.reset(plan)
		_, data := rawSMTP(t, s.in.Addr(), false, r.rcpts, "probe")
		_, errs := s.p.seen()
		var stored []string
		if id := queueIDOf(data); id != "" {
			stored = storedRecipients(t, s.in, id)
		}
		line := fmt.Sprintf("| `%s` | `%s` | %s (%s; errs %v) |", strings.Join(r.rcpts, "` `"), r.del, "`"+strings.Join(stored, "`, `")+"`", data, errs)
		t.Log(line)
		md.WriteString(line + "\n")
		var left []string
		for _, st := range stored {
			if a, ok := strings.CutPrefix(st, "recipient="); ok {
				left = append(left, a)
			}
		}
		if !slices.Equal(left, r.left) {
			t.Errorf("RCPT TO %q, DeleteRecipient(%q): live recipients %q, want %q", r.rcpts, r.del, left, r.left)
		}
	}
	if f := os.Getenv("SPLITRELAY_PROBE_OUT"); f != "" {
		os.WriteFile(f+".delete", []byte(md.String()), 0o644)
	}
}

// rawSink is a minimal SMTP server that offers SMTPUTF8 and 8BITMIME
// (smtp-sink offers neither) and records every MAIL and RCPT line exactly.
type rawSink struct {
	ln    net.Listener
	mu    sync.Mutex
	lines []string
}

func startRawSink(t *testing.T) *rawSink {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &rawSink{ln: ln}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go s.serve(c)
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return s
}

func (s *rawSink) serve(c net.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Minute))
	tp := textproto.NewConn(c)
	tp.PrintfLine("220 rawsink ESMTP")
	for {
		l, err := tp.ReadLine()
		if err != nil {
			return
		}
		up := strings.ToUpper(l)
		switch {
		case strings.HasPrefix(up, "EHLO"):
			tp.PrintfLine("250-rawsink\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250 DSN")
		case strings.HasPrefix(up, "MAIL") || strings.HasPrefix(up, "RCPT"):
			s.mu.Lock()
			s.lines = append(s.lines, l)
			s.mu.Unlock()
			tp.PrintfLine("250 ok")
		case up == "DATA":
			tp.PrintfLine("354 go")
			if _, err := tp.ReadDotBytes(); err != nil {
				return
			}
			tp.PrintfLine("250 ok")
		case up == "QUIT":
			tp.PrintfLine("221 bye")
			return
		default:
			tp.PrintfLine("250 ok")
		}
	}
}

func (s *rawSink) rcpts() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var r []string
	for _, l := range s.lines {
		if strings.HasPrefix(strings.ToUpper(l), "RCPT") {
			r = append(r, l)
		}
	}
	return r
}

// TestAddressProbeAdd measures whether a recipient added in the routing
// namespace (local@domain.legacy.splitrelay.invalid) reaches the route's
// server unchanged through a transport regexp map and a regexp generic
// map, as splitrelay's generated configuration sets them up.
func TestAddressProbeAdd(t *testing.T) {
	s := newProbeSite(t)
	sink := startRawSink(t)
	port := sink.ln.Addr().(*net.TCPAddr).Port
	dir := s.in.ConfigDir
	os.WriteFile(dir+"/rtransport", []byte(fmt.Sprintf("/\\.legacy\\.splitrelay\\.invalid$/ splitrelay-legacy:[127.0.0.1]:%d\n", port)), 0o644)
	os.WriteFile(dir+"/rgeneric", []byte("/^(.*)@(.*)\\.legacy\\.splitrelay\\.invalid$/ ${1}@${2}\n"), 0o644)
	s.in.Postconf(t, "-M", "splitrelay-legacy/unix=splitrelay-legacy unix - - n - - smtp -o smtp_generic_maps=regexp:"+dir+"/rgeneric")
	s.set(t, map[string]string{"transport_maps": "regexp:" + dir + "/rtransport"})
	type row struct {
		rcpts    []string
		del, add string
		utf8     bool
		want     []string // RCPT lines the route's server receives
	}
	const sfx = ".legacy.splitrelay.invalid"
	const orcpt = " ORCPT=rfc822;probe"
	rows := []row{
		{[]string{"<zed@acme.test>"}, "zed@acme.test", "zed@acme.test" + sfx, false, []string{"RCPT TO:<zed@acme.test>" + orcpt}},
		{[]string{"<ZOE2@ACME.TEST>"}, "ZOE2@ACME.TEST", "ZOE2@ACME.TEST" + sfx, false, []string{"RCPT TO:<ZOE2@ACME.TEST>" + orcpt}},
		{[]string{`<"a b"@acme.test>`}, `"a b"@acme.test`, `"a b"@acme.test` + sfx, false, []string{`RCPT TO:<"a b"@acme.test>` + orcpt}},
		{[]string{`<"alice"@acme.test>`}, `"alice"@acme.test`, `"alice"@acme.test` + sfx, false, []string{"RCPT TO:<alice@acme.test>" + orcpt}},
		{[]string{"<a%b@acme.test>"}, "a%b@acme.test", "a%b@acme.test" + sfx, false, []string{"RCPT TO:<a%b@acme.test>" + orcpt}},
		{[]string{"<b!a@acme.test>"}, "b!a@acme.test", "b!a@acme.test" + sfx, false, []string{"RCPT TO:<b!a@acme.test>" + orcpt}},
		{[]string{`<"a@b"@acme.test>`}, `"a@b"@acme.test`, `"a@b"@acme.test` + sfx, false, []string{`RCPT TO:<"a@b"@acme.test>` + orcpt}},
		{[]string{"<x@bücher.test>"}, "x@bücher.test", "x@bücher.test" + sfx, true, []string{"RCPT TO:<x@bücher.test>" + orcpt}},
		{[]string{"<üser@acme.test>"}, "üser@acme.test", "üser@acme.test" + sfx, true, []string{"RCPT TO:<üser@acme.test>" + orcpt}},
		{[]string{"<x@xn--bcher-kva.test>"}, "x@xn--bcher-kva.test", "x@xn--bcher-kva.test" + sfx, false, []string{"RCPT TO:<x@xn--bcher-kva.test>" + orcpt}},
		// Two client forms of one stored address, no milter change: both
		// copies are delivered (each has its own DSN ORCPT, so Postfix's
		// duplicate filter keeps both); one delete + one add leaves one.
		{[]string{"<alice@acme.test>", `<"alice"@acme.test>`}, "", "", false, nil},
		{[]string{"<alice@acme.test>", `<"alice"@acme.test>`}, "alice@acme.test", "alice@acme.test" + sfx, false, []string{"RCPT TO:<alice@acme.test>" + orcpt}},
	}
	for _, r := range rows {
		before := len(sink.rcpts())
		plan := probePlan{}
		if r.del != "" {
			plan = probePlan{Add: [][2]string{{r.add, strings.TrimSpace(orcpt)}}, Delete: []string{r.del}}
		}
		s.p.reset(plan)
		_, data := rawSMTP(t, s.in.Addr(), r.utf8, r.rcpts, "probe")
		id := queueIDOf(data)
		if id == "" {
			t.Fatalf("RCPT TO %q: not queued: %s", r.rcpts, data)
		}
		var got []string
		if r.want != nil {
			for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
				if got = sink.rcpts()[before:]; len(got) >= len(r.want) {
					break
				}
			}
			s.in.WaitQueueEmpty(t, 20*time.Second)
			got = sink.rcpts()[before:]
			if !slices.Equal(got, r.want) {
				t.Errorf("RCPT TO %q, delete %q, add %q: route's server got %q, want %q", r.rcpts, r.del, r.add, got, r.want)
			}
		} else {
			// no add: delivered through the default transport (smtp-sink)
			s.in.WaitQueueEmpty(t, 20*time.Second)
			var n int
			for _, m := range s.sink.Messages(t) {
				if strings.Contains(m.Header.Get("Received"), id) {
					n += len(m.Rcpts)
				}
			}
			got = []string{fmt.Sprint(n, " copies")}
			if n != len(r.rcpts) {
				t.Errorf("RCPT TO %q: %d copies delivered, want %d", r.rcpts, n, len(r.rcpts))
			}
		}
		t.Logf("| `%s` | `%s` | `%s` | `%s` |", strings.Join(r.rcpts, " "), r.del, r.add, strings.Join(got, "`, `"))
	}
	t.Logf("postfix log:\n%s", strings.Join(s.in.LogLines("splitrelay-legacy"), "\n"))
}

// TestAddressProbeMacroRequest: a milter that asks for macros at
// negotiation gets only those (Postfix honours the request over
// milter_rcpt_macros), so a milter that requests only "i" at RCPT never
// sees {rcpt_addr}: it must ask for it.
func TestAddressProbeMacroRequest(t *testing.T) {
	p, addr := startProbeMacros(t, []gomilter.MacroName{gomilter.MacroQueueId})
	s := newProbeSiteWith(t, p, addr)
	s.p.reset(probePlan{})
	rawSMTP(t, s.in.Addr(), false, []string{"<zed>"}, "probe")
	ev, _ := s.p.seen()
	if len(ev) != 1 || ev[0].RcptAddr != "" {
		t.Errorf("with only i requested at RCPT: events %+v, want one RCPT without {rcpt_addr}", ev)
	}
}

// TestAddressProbeIDNRelay: Postfix 3.7 matches relay_domains by the
// domain as the client wrote it. An outside client's RCPT TO:<x@bücher.test>
// is refused with only the A-label listed and accepted once the U-label is
// listed too; the A-label form is accepted either way.
func TestAddressProbeIDNRelay(t *testing.T) {
	s := newProbeSite(t)
	send := func(rcpt string) string {
		r, err := postfixtest.SMTP(s.in.Addr(), postfixtest.RawMail{Source: "127.0.0.3", MailArgs: "SMTPUTF8", Rcpts: []string{rcpt}})
		if err != nil {
			t.Fatal(err)
		}
		return r.Rcpt[0]
	}
	for _, c := range []struct {
		relayDomains, rcpt, want string
	}{
		{"xn--bcher-kva.test", "<x@bücher.test>", "554 5.7.1"},
		{"xn--bcher-kva.test", "<x@xn--bcher-kva.test>", "250"},
		{"xn--bcher-kva.test, bücher.test", "<x@bücher.test>", "250"},
		{"xn--bcher-kva.test, bücher.test", "<x@BÜCHER.test>", "250"},
	} {
		s.p.reset(probePlan{Hold: true})
		s.set(t, map[string]string{"relay_domains": c.relayDomains, "mynetworks": "127.0.0.1/32"})
		if got := send(c.rcpt); !strings.HasPrefix(got, c.want) {
			t.Errorf("relay_domains = %s, RCPT TO:%s from outside: %q, want %s…", c.relayDomains, c.rcpt, got, c.want)
		}
	}
}
