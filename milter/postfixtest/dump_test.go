package postfixtest_test

import (
	"errors"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/splitrelay/splitrelay/milter/postfixtest"
)

// smtp-sink-two-rcpts.dump is a real dump: swaks -> Postfix 3.7.11 ->
// smtp-sink, two recipients, a body line starting with a dot.
func TestParseDump(t *testing.T) {
	raw, err := os.ReadFile("testdata/smtp-sink-two-rcpts.dump")
	if err != nil {
		t.Fatal(err)
	}
	m, err := postfixtest.ParseDump(raw)
	if err != nil {
		t.Fatal(err)
	}
	if m.ClientAddr != "127.0.0.1" || m.Proto != "ESMTP" || m.Helo != "mx.test.example" || m.ID != "22a4e3ed" {
		t.Errorf("client %q proto %q helo %q id %q", m.ClientAddr, m.Proto, m.Helo, m.ID)
	}
	if m.From != "sender@external.test" || m.MailArgs != "" {
		t.Errorf("From %q MailArgs %q", m.From, m.MailArgs)
	}
	want := []postfixtest.Rcpt{
		{Addr: "alice@example.com", Args: "ORCPT=rfc822;alice@example.com"},
		{Addr: "bob@example.com", Args: "ORCPT=rfc822;bob@example.com"},
	}
	if !slices.Equal(m.Rcpts, want) {
		t.Errorf("Rcpts = %q, want %q", m.Rcpts, want)
	}
	if v, ok := m.Rcpts[1].Param("orcpt"); !ok || v != "rfc822;bob@example.com" {
		t.Errorf("Param(orcpt) = %q, %v", v, ok)
	}
	if got := m.Header.Get("Subject"); got != "hi" {
		t.Errorf("Subject = %q", got)
	}
	if got := m.Header["Received"]; len(got) != 1 || !strings.Contains(got[0], "(Postfix) with ESMTP id 9C1B298411F") {
		t.Errorf("Received = %q, want only Postfix's", got)
	}
	if got, want := string(m.Body), "hello\n.dotline\n\n\n"; got != want {
		t.Errorf("Body = %q, want %q", got, want)
	}
	if !strings.HasPrefix(string(m.Data), "Received: from client.test") || strings.HasSuffix(string(m.Data), "\n\n\n\n") {
		t.Errorf("Data = %q", m.Data)
	}
}

func TestParseDumpIncomplete(t *testing.T) {
	raw, err := os.ReadFile("testdata/smtp-sink-two-rcpts.dump")
	if err != nil {
		t.Fatal(err)
	}
	full := string(raw)
	for name, data := range map[string]string{
		"empty":          "",
		"before DATA":    full[:strings.Index(full, "Received:")],
		"mid Received":   full[:strings.Index(full, "\tSun")],
		"mid body line":  full[:strings.Index(full, "hello")+3],
		"mid first line": "X-Client-Ad",
	} {
		if _, err := postfixtest.ParseDump([]byte(data)); !errors.Is(err, postfixtest.ErrIncompleteDump) {
			t.Errorf("%s: err = %v, want ErrIncompleteDump", name, err)
		}
	}
}

func TestParseDumpAddresses(t *testing.T) {
	for _, tc := range []struct {
		line, addr, args string
	}{
		{"<> RET=HDRS", "", "RET=HDRS"},
		{"<bob@example.com>", "bob@example.com", ""},
		{`<"a >b"@example.com> NOTIFY=NEVER`, `"a >b"@example.com`, "NOTIFY=NEVER"},
		{`<"a\"> b"@example.com> X=1`, `"a\"> b"@example.com`, "X=1"},
		{"bare@example.com SIZE=1", "bare@example.com", "SIZE=1"},
		{"<unterminated", "unterminated", ""},
	} {
		raw := "X-Client-Addr: 127.0.0.1\nX-Client-Proto: ESMTP\nX-Mail-Args: <s@x.test>\nX-Rcpt-Args: " + tc.line +
			"\nReceived: from h ([127.0.0.1])\n\tby s (smtp-sink) with ESMTP id 1;\n\tdate\nSubject: x\n\nbody\n\n"
		m, err := postfixtest.ParseDump([]byte(raw))
		if err != nil {
			t.Fatalf("%q: %v", tc.line, err)
		}
		if got := m.Rcpts[0]; got.Addr != tc.addr || got.Args != tc.args {
			t.Errorf("%q: got %q %q, want %q %q", tc.line, got.Addr, got.Args, tc.addr, tc.args)
		}
	}
}

func TestParseDumpUnknownRecord(t *testing.T) {
	if _, err := postfixtest.ParseDump([]byte("X-Other: 1\n")); err == nil || errors.Is(err, postfixtest.ErrIncompleteDump) {
		t.Errorf("err = %v, want an unknown-record error", err)
	}
}

func FuzzParseDump(f *testing.F) {
	raw, err := os.ReadFile("testdata/smtp-sink-two-rcpts.dump")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(raw)
	f.Add([]byte("X-Mail-Args: <\nReceived: x\n\tby y (smtp-sink) with SMTP id\n\t\n\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := postfixtest.ParseDump(data)
		if err != nil {
			return
		}
		if len(m.Data) >= len(data) || len(m.Rcpts) > strings.Count(string(data), "\n") {
			t.Errorf("inconsistent parse of %q: %+v", data, m)
		}
	})
}
