package milter

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	gomilter "github.com/d--j/go-milter"

	"github.com/splitrelay/splitrelay/rules"
)

const testConfig = `
[milter]
dry_run = %DRY%
[organization]
domains = ["example.com"]
[directory]
users = ["alice@example.com"]
[directory.groups]
"sales@example.com" = ["alice@example.com"]
[routes.legacy]
host = "192.0.2.1"
[routes.archive]
host = "192.0.2.2"
[[split_delivery]]
name = "unknown to legacy"
messages = ["inbound", "internal"]
accounts = ["unrecognized"]
route = "legacy"
[[split_delivery]]
name = "sales archived"
messages = ["inbound"]
accounts = ["groups"]
route = "archive"
also_deliver = true
`

// startServer runs a Server on 127.0.0.1:0 and returns a client for it and
// the log it writes.
func startServer(t *testing.T, dry bool) (*gomilter.Client, *bytes.Buffer, *Server) {
	t.Helper()
	return startServerWith(t, strings.ReplaceAll(testConfig, "%DRY%", map[bool]string{true: "true", false: "false"}[dry]))
}

func startServerWith(t *testing.T, cfg string) (*gomilter.Client, *bytes.Buffer, *Server) {
	t.Helper()
	rs, err := rules.Load("t.toml", []byte(cfg), nil)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&lockedWriter{w: &buf}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s := New(rs, log)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(ln)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.Shutdown(ctx)
	})
	c := gomilter.NewClient("tcp", ln.Addr().String(),
		gomilter.WithAction(gomilter.AllClientSupportedActionMasks))
	return c, &buf, s
}

type lockedWriter struct {
	w *bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) { return l.w.Write(p) }

// transaction drives one message through the milter like Postfix does and
// returns the RCPT replies and the end-of-message modifications.
// smtpClient is what the MTA tells the milter about the SMTP client.
type smtpClient struct {
	addr, helo, auth string
	tls              bool
}

var defaultClient = smtpClient{addr: "192.0.2.99", helo: "client.test"}

func transaction(t *testing.T, c *gomilter.Client, from, headerFrom string, rcpts map[string]string, order []string) (rcptActs map[string]*gomilter.Action, mods []gomilter.ModifyAction, final *gomilter.Action) {
	t.Helper()
	return transactionFrom(t, c, defaultClient, from, "", headerFrom, rcpts, order)
}

func transactionFromBody(t *testing.T, c *gomilter.Client, cl smtpClient, body string) (map[string]*gomilter.Action, []gomilter.ModifyAction, *gomilter.Action) {
	t.Helper()
	return transactionWithBody(t, c, cl, "alice@example.com", "", "alice@example.com", nil, []string{"y@elsewhere.test"}, body)
}

func transactionFrom(t *testing.T, c *gomilter.Client, cl smtpClient, from, mailArgs, headerFrom string, rcpts map[string]string, order []string) (rcptActs map[string]*gomilter.Action, mods []gomilter.ModifyAction, final *gomilter.Action) {
	t.Helper()
	return transactionWithBody(t, c, cl, from, mailArgs, headerFrom, rcpts, order, "hello\r\n")
}

func transactionWithBody(t *testing.T, c *gomilter.Client, cl smtpClient, from, mailArgs, headerFrom string, rcpts map[string]string, order []string, bodyText string) (rcptActs map[string]*gomilter.Action, mods []gomilter.ModifyAction, final *gomilter.Action) {
	t.Helper()
	macros := gomilter.NewMacroBag()
	s, err := c.Session(macros)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Conn("client.test", gomilter.FamilyInet, 4321, cl.addr); err != nil {
		t.Fatal(err)
	}
	if cl.tls {
		macros.Set(gomilter.MacroTlsVersion, "TLSv1.3")
	}
	if _, err := s.Helo(cl.helo); err != nil {
		t.Fatal(err)
	}
	if cl.auth != "" {
		macros.Set(gomilter.MacroAuthAuthen, cl.auth)
	}
	if _, err := s.Mail(from, mailArgs); err != nil {
		t.Fatal(err)
	}
	rcptActs = map[string]*gomilter.Action{}
	for i, r := range order {
		if i > 0 {
			macros.Set(gomilter.MacroQueueId, "4ABCDEF")
		}
		act, err := s.Rcpt(r, rcpts[r])
		if err != nil {
			t.Fatal(err)
		}
		rcptActs[r] = act
	}
	macros.Set(gomilter.MacroQueueId, "4ABCDEF")
	if _, err := s.DataStart(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.HeaderField("From", headerFrom, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.HeaderField("Subject", "hi", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.HeaderEnd(); err != nil {
		t.Fatal(err)
	}
	mods, final, err = s.BodyReadFrom(strings.NewReader(bodyText))
	if err != nil {
		t.Fatal(err)
	}
	return rcptActs, mods, final
}

func modStrings(mods []gomilter.ModifyAction) []string {
	var out []string
	for _, m := range mods {
		switch m.Type {
		case gomilter.ActionAddRcpt:
			out = append(out, "add "+m.Rcpt+" "+m.RcptArgs)
		case gomilter.ActionDelRcpt:
			out = append(out, "del "+m.Rcpt)
		default:
			out = append(out, m.String())
		}
	}
	return out
}

func TestRouting(t *testing.T) {
	c, logs, _ := startServer(t, false)
	order := []string{"alice@example.com", "carol@example.com", "sales@example.com", "x@elsewhere.test"}
	args := map[string]string{"carol@example.com": "NOTIFY=SUCCESS,FAILURE"}
	acts, mods, final := transaction(t, c, "s@elsewhere.test", "S <s@elsewhere.test>", args, order)
	for r, a := range acts {
		if a.StopProcessing() {
			t.Errorf("rcpt %s: %v", r, a)
		}
	}
	if final.Type != gomilter.ActionAccept {
		t.Errorf("end of message: %v", final)
	}
	got := strings.Join(modStrings(mods), "\n")
	want := strings.Join([]string{
		"del <carol@example.com>",
		"add <carol@example.com.legacy.splitrelay.invalid> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;carol@example.com",
		"add <sales@example.com.archive.splitrelay.invalid> NOTIFY=NEVER ORCPT=rfc822;sales@example.com", // a copy: dsn.go
	}, "\n")
	if got != want {
		t.Errorf("modifications:\n%s\nwant:\n%s", got, want)
	}
	for _, line := range []string{
		`msg="recipient routed"`, "queue_id=4ABCDEF", "rcpt=carol@example.com",
		"routed_rcpt=carol@example.com.legacy.splitrelay.invalid", "route=legacy", `rule="unknown to legacy"`,
		`msg="recipient copied"`, "client_addr=192.0.2.99", `msg="message decided"`,
	} {
		if !strings.Contains(logs.String(), line) {
			t.Errorf("log lacks %s:\n%s", line, logs)
		}
	}
}

func TestRoutingNamespaceRejected(t *testing.T) {
	c, logs, _ := startServer(t, false)
	order := []string{"bob@example.com.legacy.splitrelay.invalid", "alice@example.com"}
	acts, mods, _ := transaction(t, c, "s@elsewhere.test", "s@elsewhere.test", nil, order)
	a := acts[order[0]]
	if a.Type != gomilter.ActionRejectWithCode || a.SMTPCode != 550 || !strings.Contains(a.SMTPReply, "5.1.2") {
		t.Errorf("namespace recipient: %+v", a)
	}
	if acts[order[1]].StopProcessing() {
		t.Errorf("other recipient refused too: %v", acts[order[1]])
	}
	if len(mods) != 0 {
		t.Errorf("modifications %v", modStrings(mods))
	}
	if !strings.Contains(logs.String(), `msg="recipient rejected"`) {
		t.Error(logs)
	}
}

func TestDryRunChangesNothing(t *testing.T) {
	c, logs, _ := startServer(t, true)
	order := []string{"bob@example.com.legacy.splitrelay.invalid", "carol@example.com", "sales@example.com"}
	acts, mods, final := transaction(t, c, "s@elsewhere.test", "s@elsewhere.test", nil, order)
	for r, a := range acts {
		if a.StopProcessing() {
			t.Errorf("dry run refused %s: %v", r, a)
		}
	}
	if len(mods) != 0 || final.Type != gomilter.ActionAccept {
		t.Errorf("dry run: mods %v final %v", modStrings(mods), final)
	}
	for _, want := range []string{`msg="recipient would be routed"`, `msg="recipient would be copied"`, `msg="recipient would be rejected"`, "dry_run=true"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %s:\n%s", want, logs)
		}
	}
}

func TestReloadKeepsTransactionRules(t *testing.T) {
	c, _, s := startServer(t, false)
	// New rules without any split delivery: carol is no longer routed.
	rs, err := rules.Load("t2.toml", []byte("[organization]\ndomains = [\"example.com\"]\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	s.SetRules(rs)
	_, mods, _ := transaction(t, c, "s@elsewhere.test", "s@elsewhere.test", nil, []string{"carol@example.com"})
	if len(mods) != 0 {
		t.Errorf("after reload: %v", modStrings(mods))
	}
}

func TestXtext(t *testing.T) {
	for in, want := range map[string]string{
		"bob@example.com":   "bob@example.com",
		"a+b=c@example.com": "a+2Bb+3Dc@example.com",
		`"a b"@example.com`: `"a+20b"@example.com`,
		"jörg@example.com":  "j+C3+B6rg@example.com",
	} {
		if got := xtext(in); got != want {
			t.Errorf("xtext(%q) = %q, want %q", in, got, want)
		}
	}
	if got := rcptArgs("ORCPT=rfc822;orig@x.test NOTIFY=NEVER", "bob@example.com"); got != "NOTIFY=NEVER ORCPT=rfc822;orig@x.test" {
		t.Errorf("client ORCPT not kept: %q", got)
	}
}

const relayConfig = `
[organization]
domains = ["example.com"]
[directory]
users = ["alice@example.com"]
[relay]
allowed_senders = "any"
require_network = true
require_smtp_auth = true
networks = [{ cidr = "192.0.2.99", description = "test client", enabled = true }]
[relay.limits]
recipients_per_message = 2
message_size = "1KB"
`

func replyText(a *gomilter.Action) string {
	if a.StopProcessing() {
		return a.SMTPReply
	}
	return "accept"
}

func TestRelay(t *testing.T) {
	c, logs, _ := startServerWith(t, relayConfig)
	authed := smtpClient{addr: "192.0.2.99", helo: "localhost", auth: "app@example.com", tls: true}

	// Allowed: network + AUTH over TLS; external sender rewritten to
	// postmaster@ the AUTH identity's domain.
	acts, mods, final := transactionFrom(t, c, authed, "x@elsewhere.test", "", "x@elsewhere.test", nil,
		[]string{"y@elsewhere.test", "alice@example.com", "z@elsewhere.test"})
	if got := replyText(acts["y@elsewhere.test"]); got != "accept" {
		t.Errorf("authorised relay refused: %s", got)
	}
	if got := replyText(acts["z@elsewhere.test"]); !strings.HasPrefix(got, "452 4.5.3") {
		t.Errorf("third recipient: %s, want 452 4.5.3", got)
	}
	if final.Type != gomilter.ActionAccept || len(mods) != 1 || mods[0].Type != gomilter.ActionChangeFrom || mods[0].From != "<postmaster@example.com>" {
		t.Errorf("final %v mods %v", final, mods)
	}

	// AUTH without TLS does not count.
	noTLS := authed
	noTLS.tls = false
	acts, _, _ = transactionFrom(t, c, noTLS, "alice@example.com", "", "", nil, []string{"y@elsewhere.test"})
	if got := replyText(acts["y@elsewhere.test"]); !strings.HasPrefix(got, "550 5.7.0 Mail relay denied") {
		t.Errorf("AUTH without TLS: %s", got)
	}
	// Other network.
	other := authed
	other.addr = "192.0.2.100"
	acts, _, _ = transactionFrom(t, c, other, "alice@example.com", "", "", nil, []string{"y@elsewhere.test", "alice@example.com"})
	if got := replyText(acts["y@elsewhere.test"]); !strings.HasPrefix(got, "550 5.7.0 Mail relay denied") {
		t.Errorf("other network: %s", got)
	}
	if got := replyText(acts["alice@example.com"]); got != "accept" {
		t.Errorf("internal recipient refused from another network: %s", got)
	}
	// SIZE over the limit at RCPT; the real size at end of message.
	acts, _, _ = transactionFrom(t, c, authed, "alice@example.com", "SIZE=5000", "", nil, []string{"y@elsewhere.test"})
	if got := replyText(acts["y@elsewhere.test"]); !strings.HasPrefix(got, "552 5.3.4") {
		t.Errorf("SIZE: %s", got)
	}
	if !strings.Contains(logs.String(), `reason="relay requires SMTP AUTH"`) && !strings.Contains(logs.String(), `reason="SMTP AUTH without TLS does not count"`) {
		t.Errorf("relay denial reason not logged:\n%s", logs)
	}
}

func TestRelayRealSize(t *testing.T) {
	c, _, _ := startServerWith(t, relayConfig)
	authed := smtpClient{addr: "192.0.2.99", helo: "localhost", auth: "app@example.com", tls: true}
	_, _, final := transactionFrom(t, c, authed, "alice@example.com", "", "alice@example.com", nil, []string{"y@elsewhere.test"})
	if final.Type != gomilter.ActionAccept {
		t.Fatalf("small message: %v", final)
	}
	_, _, final = transactionFromBody(t, c, authed, strings.Repeat("x", 2000))
	if final.SMTPCode != 552 {
		t.Errorf("2 kB message with a 1KB limit: %v", final)
	}
}
