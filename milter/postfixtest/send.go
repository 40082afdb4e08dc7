package postfixtest

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// Mail is one message to send with Send.
type Mail struct {
	From string   // envelope sender; "" sends the null sender, MAIL FROM:<>
	To   []string // envelope recipients, one RCPT TO each, in order

	HeaderFrom   string            // From: header; default From (no From: header if both are empty)
	Subject      string            // default "postfixtest"
	Body         string            // default a one-line text
	ExtraHeaders map[string]string // more header fields, added in key order
	// Data, if set, is the whole message (header, blank line, body) and
	// replaces HeaderFrom, Subject, Body and ExtraHeaders.
	Data string

	Helo string // EHLO argument; default "client.test"
	TLS  bool   // STARTTLS before MAIL (swaks --tls); the private instance offers it with a generated certificate
	// Source is the local address to connect from, e.g. "127.0.0.2";
	// default the kernel's choice. An IPv6 source ("::1") makes Send
	// connect to the instance's [::1] listener (Options.IPv6).
	Source string

	// AuthUser and AuthPassword, when set, make swaks authenticate with
	// SMTP AUTH PLAIN after EHLO (and STARTTLS when TLS is set).
	AuthUser, AuthPassword string

	// MailArgs are ESMTP parameters for MAIL FROM, e.g. "RET=HDRS ENVID=t1".
	MailArgs string
	// RcptArgs are ESMTP parameters per recipient, keyed by the address in
	// To, e.g. "NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;bob@example.com".
	//
	// swaks (20201014, Debian 12) cannot send these: it splits --to at
	// commas and wraps each address in <>. When MailArgs or RcptArgs are
	// set, Send speaks SMTP itself instead, with a swaks-like transcript and
	// swaks's exit codes; it does not do TLS.
	RcptArgs map[string]string

	Timeout time.Duration // bound for the whole session; default 60s
}

// swaks exit codes (swaks(1), EXIT CODES), also used by the built-in client.
const (
	exitOK         = 0
	exitConnect    = 2  // error connecting to remote server
	exitClosed     = 6  // connection closed unexpectedly
	exitBanner     = 21 // error reading initial banner from server
	exitHelo       = 22 // error in HELO transaction
	exitMail       = 23 // error in MAIL transaction
	exitNoRcpt     = 24 // no RCPTs accepted
	exitData       = 25 // server returned error to DATA request
	exitAfterData  = 26 // server did not accept mail following data
	exitQuit       = 27 // server returned error after normal-session quit request
	defaultTimeout = 60 * time.Second
)

// Send sends m to the instance's smtpd with swaks and returns the session
// transcript and swaks's exit code (0 when the message was queued; 23 MAIL
// rejected, 24 no RCPT accepted, 25 DATA rejected, 26 message rejected
// after DATA; see swaks(1)). It never fails the test for what the server
// answered: assert on the transcript and the code.
func (in *Instance) Send(t testing.TB, m Mail) (transcript string, exitCode int) {
	t.Helper()
	return SendTo(t, m.Server(t, in.Addr(), in.Addr6()), m)
}

// Server picks the address a message is sent to from a server's IPv4 and
// IPv6 addresses ("" when it has none): the IPv6 one when Source is an
// IPv6 address, else the IPv4 one. It fails the test when the server has
// no address of Source's family.
func (m Mail) Server(t testing.TB, v4, v6 string) string {
	t.Helper()
	if a, err := netip.ParseAddr(m.Source); err == nil && a.Is6() && !a.Is4In6() {
		if v6 == "" {
			t.Fatalf("postfixtest: Mail.Source %s is an IPv6 address and the server listens on IPv4 only (set Options.IPv6)", m.Source)
		}
		return v6
	}
	return v4
}

// SendTo is Send to any SMTP server, e.g. a Sink's Addr.
func SendTo(t testing.TB, addr string, m Mail) (transcript string, exitCode int) {
	t.Helper()
	if m.Timeout <= 0 {
		m.Timeout = defaultTimeout
	}
	if m.Helo == "" {
		m.Helo = "client.test"
	}
	if m.MailArgs != "" || len(m.RcptArgs) > 0 {
		if m.TLS {
			t.Fatalf("postfixtest: Mail.TLS cannot be combined with MailArgs or RcptArgs")
		}
		return sendNative(addr, m)
	}
	return sendSwaks(t, addr, m)
}

func sendSwaks(t testing.TB, addr string, m Mail) (string, int) {
	f, err := os.CreateTemp("", "postfixtest-mail-*.eml")
	if err != nil {
		t.Fatalf("postfixtest: %v", err)
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(m.message()); err != nil {
		t.Fatalf("postfixtest: %v", err)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("postfixtest: %v", err)
	}
	from := m.From
	if from == "" {
		from = "<>" // swaks: --from '' would mean its default sender
	}
	args := []string{
		"--server", addr,
		"--from", from,
		"--to", strings.Join(m.To, ","),
		"--helo", m.Helo,
		"--data", f.Name(), // swaks fixes line ends and dot-stuffs
		"--timeout", strconv.Itoa(int(m.Timeout.Seconds())) + "s",
	}
	if m.Source != "" {
		args = append(args, "--local-interface", m.Source)
	}
	if m.TLS {
		args = append(args, "--tls")
	}
	if m.AuthUser != "" {
		args = append(args, "--auth", "PLAIN", "--auth-user", m.AuthUser, "--auth-password", m.AuthPassword)
	}
	ctx, cancel := context.WithTimeout(context.Background(), m.Timeout+5*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, tool("swaks"), args...)
	cmd.Stdin = nil
	cmd.WaitDelay = time.Second
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	if cmd.ProcessState == nil {
		return out.String() + fmt.Sprintf("\n*** postfixtest: run swaks: %v\n", err), -1
	}
	return out.String(), cmd.ProcessState.ExitCode()
}

var messageSeq atomic.Int64

// message renders m as a message with LF line ends.
func (m Mail) message() []byte {
	if m.Data != "" {
		return []byte(m.Data)
	}
	var b strings.Builder
	hdr := func(k, v string) { fmt.Fprintf(&b, "%s: %s\n", k, v) }
	hdr("Date", time.Now().Format(time.RFC1123Z))
	from := m.HeaderFrom
	if from == "" {
		from = m.From
	}
	if from != "" {
		hdr("From", from)
	}
	if len(m.To) > 0 {
		hdr("To", strings.Join(m.To, ", "))
	}
	subject := m.Subject
	if subject == "" {
		subject = "postfixtest"
	}
	hdr("Subject", subject)
	hdr("Message-ID", fmt.Sprintf("<%d.%d@postfixtest.invalid>", time.Now().UnixNano(), messageSeq.Add(1)))
	for _, k := range slices.Sorted(maps.Keys(m.ExtraHeaders)) {
		hdr(k, m.ExtraHeaders[k])
	}
	b.WriteString("\n")
	body := m.Body
	if body == "" {
		body = "This is a test message from postfixtest.\n"
	}
	b.WriteString(body)
	if !strings.HasSuffix(body, "\n") {
		b.WriteString("\n")
	}
	return []byte(b.String())
}

var queuedAs = regexp.MustCompile(`(?m)^<[-~]\s+250[ -].*\bqueued as ([0-9A-Za-z]+)`)

// QueueID returns the Postfix queue ID from a transcript's reply to the end
// of DATA ("250 2.0.0 Ok: queued as 9C1B298411F"); false if the message was
// not queued.
func QueueID(transcript string) (string, bool) {
	if m := queuedAs.FindStringSubmatch(transcript); m != nil {
		return m[1], true
	}
	return "", false
}

var (
	transcriptCommand = regexp.MustCompile(`^ ?[-~]> (.*)$`)
	transcriptReply   = regexp.MustCompile(`^<(?:-|~|\*\*|~\*) +(.*)$`)
)

// Reply returns the server's reply (all its lines, joined with "\n") to the
// first command in transcript that starts with command, compared without
// case, e.g. Reply(tr, "RCPT TO:<carol@example.com>") = "550 5.1.1 …".
// It returns "" if there is no such command. Both swaks and the built-in
// client wait for each reply before the next command, so replies follow
// their command.
func Reply(transcript, command string) string {
	lines := strings.Split(transcript, "\n")
	for i, line := range lines {
		c := transcriptCommand.FindStringSubmatch(line)
		if c == nil || !hasPrefixFold(c[1], command) {
			continue
		}
		var reply []string
		for _, l := range lines[i+1:] {
			r := transcriptReply.FindStringSubmatch(l)
			if r == nil {
				break
			}
			reply = append(reply, r[1])
		}
		return strings.Join(reply, "\n")
	}
	return ""
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}
