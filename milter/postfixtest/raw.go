package postfixtest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"strings"
	"testing"
	"time"
)

// RawMail is one SMTP transaction sent byte for byte: unlike Mail (swaks),
// which normalises what it sends, the RCPT lines are written exactly as
// given, so tests can send the forms hostile or broken clients use
// (source routes, spaces inside the brackets, NUL and 8-bit bytes).
type RawMail struct {
	Source   string   // local address to connect from, e.g. "127.0.0.3"; default the kernel's choice
	Helo     string   // EHLO argument; default "client.test"
	From     string   // the bytes after "MAIL FROM:"; default "<sender@client.test>"
	MailArgs string   // ESMTP parameters appended to MAIL FROM, e.g. "SMTPUTF8"
	Rcpts    []string // the bytes after "RCPT TO:", one command each, e.g. "<@r.test:zed@acme.test>"
	// Data is the message (header and body); LF line ends become CRLF and
	// dots are stuffed. Nil sends a small default message.
	Data    []byte
	Timeout time.Duration // bound for the whole session; default 120s
}

// RawResult is what the client was told.
type RawResult struct {
	Mail    string   // reply to MAIL FROM
	Rcpt    []string // reply to each RCPT, in order ("" for those not sent)
	Data    string   // reply to the end of DATA; "" when DATA was not reached (no RCPT accepted)
	QueueID string   // from "250 2.0.0 Ok: queued as ID"; "" if not queued
}

// Accepted reports whether the message was queued.
func (r RawResult) Accepted() bool { return strings.HasPrefix(r.Data, "250") }

// SendRaw runs one transaction against the instance and fails the test on
// a network or protocol error (a refusal is not an error: see RawResult).
func (in *Instance) SendRaw(t testing.TB, m RawMail) RawResult {
	t.Helper()
	r, err := SMTP(in.Addr(), m)
	if err != nil {
		t.Fatalf("postfixtest: %v", err)
	}
	return r
}

// errReply is an unexpected reply that ends the session.
var errReply = errors.New("postfixtest: unexpected reply")

// SMTP runs one transaction against addr (for load generators that must
// not stop on the first error). A 4xx/5xx reply to MAIL or DATA is
// returned in the result, not as an error.
func SMTP(addr string, m RawMail) (RawResult, error) {
	var res RawResult
	timeout := m.Timeout
	if timeout == 0 {
		timeout = 120 * time.Second
	}
	d := net.Dialer{Timeout: 10 * time.Second}
	if m.Source != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(m.Source)}
	}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return res, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(timeout))
	br := bufio.NewReader(c)
	tp := textproto.NewReader(br)
	cmd := func(line string) (string, error) {
		if line != "" {
			if _, err := io.WriteString(c, line+"\r\n"); err != nil {
				return "", err
			}
		}
		var b strings.Builder
		for {
			l, err := tp.ReadLine()
			if err != nil {
				return b.String(), fmt.Errorf("after %.60q: %w", line, err)
			}
			b.WriteString(l)
			if len(l) < 4 || l[3] != '-' {
				return b.String(), nil
			}
			b.WriteString("\n")
		}
	}
	quit := func() { cmd("QUIT") }
	if r, err := cmd(""); err != nil || !strings.HasPrefix(r, "220") {
		return res, fmt.Errorf("%w: greeting %q %v", errReply, r, err)
	}
	helo := m.Helo
	if helo == "" {
		helo = "client.test"
	}
	if r, err := cmd("EHLO " + helo); err != nil || !strings.HasPrefix(r, "250") {
		return res, fmt.Errorf("%w: EHLO %q %v", errReply, r, err)
	}
	from := m.From
	if from == "" {
		from = "<sender@client.test>"
	}
	mail := "MAIL FROM:" + from
	if m.MailArgs != "" {
		mail += " " + m.MailArgs
	}
	if res.Mail, err = cmd(mail); err != nil {
		return res, err
	}
	if !strings.HasPrefix(res.Mail, "250") {
		quit()
		return res, nil
	}
	ok := false
	for _, r := range m.Rcpts {
		reply, err := cmd("RCPT TO:" + r)
		if err != nil {
			return res, err
		}
		res.Rcpt = append(res.Rcpt, reply)
		ok = ok || strings.HasPrefix(reply, "250")
	}
	if !ok {
		quit()
		return res, nil
	}
	if r, err := cmd("DATA"); err != nil || !strings.HasPrefix(r, "354") {
		return res, fmt.Errorf("%w: DATA %q %v", errReply, r, err)
	}
	data := m.Data
	if data == nil {
		data = []byte("From: sender@client.test\nSubject: postfixtest\n\nhello\n")
	}
	w := bufio.NewWriterSize(c, 64<<10)
	writeDotStuffed(w, data)
	if err := w.Flush(); err != nil {
		return res, err
	}
	if res.Data, err = cmd(""); err != nil {
		return res, err
	}
	if i := strings.Index(res.Data, "queued as "); i >= 0 && strings.HasPrefix(res.Data, "250") {
		res.QueueID = strings.TrimSpace(res.Data[i+len("queued as "):])
	}
	quit()
	return res, nil
}

// writeDotStuffed writes data with CRLF line ends and leading dots
// doubled, then the final ".".
func writeDotStuffed(w *bufio.Writer, data []byte) {
	for len(data) > 0 {
		line := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			data = nil
		}
		line = bytes.TrimSuffix(line, []byte("\r"))
		if len(line) > 0 && line[0] == '.' {
			w.WriteByte('.')
		}
		w.Write(line)
		w.WriteString("\r\n")
	}
	w.WriteString(".\r\n")
}
