package e2e

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/splitrelay/splitrelay/milter"
	"github.com/splitrelay/splitrelay/milter/postfixtest"
	"github.com/splitrelay/splitrelay/milter/sendmailtest"
	"github.com/splitrelay/splitrelay/milter/wire"
	"github.com/splitrelay/splitrelay/rules"
)

var recordMilter = flag.Bool("record-milter", false, "write the milter conversations of TestE2EMilterWire to testdata/milter (the replay tests and FuzzConn's seeds)")

// milterTap sits between Postfix and the daemon on a unix socket of its
// own and keeps both directions of every milter connection.
type milterTap struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	convs  []*conversation
	wg     sync.WaitGroup
}

// conversation is one milter connection as it went over the wire.
type conversation struct {
	mta, ours bytes.Buffer
}

// tapSocket puts a tap on the daemon's unix socket path: the socket moves
// to path.real (the daemon keeps listening on it) and the tap takes its
// place, so the MTA's configuration does not change.
func tapSocket(t *testing.T, path string) *milterTap {
	t.Helper()
	target := path + ".real"
	if err := os.Rename(path, target); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o666); err != nil {
		t.Fatal(err)
	}
	tp := &milterTap{ln: ln, target: target}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			tp.wg.Add(1)
			go tp.relay(c)
		}
	}()
	t.Cleanup(func() { ln.Close(); tp.wg.Wait() })
	return tp
}

func (tp *milterTap) relay(mta net.Conn) {
	defer tp.wg.Done()
	defer mta.Close()
	d, err := net.Dial("unix", tp.target)
	if err != nil {
		return
	}
	defer d.Close()
	cv := &conversation{}
	tp.mu.Lock()
	tp.convs = append(tp.convs, cv)
	tp.mu.Unlock()
	done := make(chan struct{})
	var ours bytes.Buffer
	go func() {
		io.Copy(io.MultiWriter(mta, &ours), d)
		mta.(*net.UnixConn).CloseWrite()
		close(done)
	}()
	var in bytes.Buffer
	io.Copy(io.MultiWriter(d, &in), mta)
	d.(*net.UnixConn).CloseWrite()
	<-done
	tp.mu.Lock()
	cv.mta, cv.ours = in, ours
	tp.mu.Unlock()
}

// conversations waits until n connections have ended, and returns them.
func (tp *milterTap) conversations(t *testing.T, n int) []*conversation {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		tp.mu.Lock()
		var ended []*conversation
		for _, c := range tp.convs {
			if c.mta.Len() > 0 {
				ended = append(ended, c)
			}
		}
		tp.mu.Unlock()
		if len(ended) >= n {
			return ended
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d milter connections ended, want %d", len(ended), n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// packets splits a byte stream into milter packets.
func packets(t *testing.T, b []byte) (codes []byte) {
	t.Helper()
	r := wire.NewReader(bytes.NewReader(b), nil, 0, 64<<10, wire.DataSize1M)
	for {
		code, _, err := r.Next()
		if err == io.EOF {
			return codes
		}
		if err != nil {
			t.Fatalf("stream of %d bytes: %v", len(b), err)
		}
		codes = append(codes, code)
	}
}

// TestE2EMilterWire records real Postfix milter conversations through a
// tap (checkWire).
func TestE2EMilterWire(t *testing.T) {
	s := newSite(t, routes, config(false))
	tap := tapSocket(t, s.addr)
	mails := []postfixtest.Mail{
		{From: "someone@elsewhere.test", HeaderFrom: "Someone <someone@elsewhere.test>",
			To:       []string{"alice@example.com", "carol@example.com", "sales@example.com", "Zed@Example.ORG"},
			RcptArgs: map[string]string{"carol@example.com": "NOTIFY=SUCCESS,FAILURE"}},
		{From: "alice@example.com", HeaderFrom: "Alice <alice@example.com>", To: []string{"bob@example.com"},
			MailArgs: "RET=HDRS ENVID=t1", Body: strings.Repeat("a line of the body\r\n", 5000)},
		{From: "", To: []string{"carol@example.com"}, Subject: "null sender"},
	}
	for _, m := range mails {
		s.send(m)
	}
	s.landed(map[string][]string{
		"gmail":   {"alice@example.com", "sales@example.com", "bob@example.com"},
		"legacy":  {"carol@example.com", "Zed@Example.ORG", "carol@example.com"},
		"archive": {"sales@example.com", "bob@example.com"},
	})
	checkWire(t, "postfix", tap.conversations(t, len(mails)), s.cfgPath, s.pf.Dir)
}

// TestSendmailMilterWire is TestE2EMilterWire with Sendmail, whose
// conversations differ: other macros, packet sizes and command order.
func TestSendmailMilterWire(t *testing.T) {
	s := newSendmailSiteOn(t, routes, config(false), sendmailtest.Options{}, "unix")
	tap := tapSocket(t, s.ds.addr)
	mails := []postfixtest.Mail{
		{From: "someone@elsewhere.test", HeaderFrom: "Someone <someone@elsewhere.test>",
			To:       []string{"alice@example.com", "carol@example.com", "sales@example.com", "Zed@Example.ORG"},
			RcptArgs: map[string]string{"carol@example.com": "NOTIFY=SUCCESS,FAILURE"}},
		{From: "alice@example.com", HeaderFrom: "Alice <alice@example.com>", To: []string{"bob@example.com"},
			Body: strings.Repeat("a line of the body\r\n", 5000)},
	}
	for _, m := range mails {
		s.send(m)
	}
	s.landed(map[string][]string{
		"gmail":   {"alice@example.com", "sales@example.com", "bob@example.com"},
		"legacy":  {"carol@example.com", "Zed@Example.ORG"},
		"archive": {"sales@example.com", "bob@example.com"},
	})
	checkWire(t, "sendmail", tap.conversations(t, len(mails)), s.cfgPath, filepath.Dir(s.cfgPath), filepath.Dir(s.ds.addr))
}

// checkWire checks recorded conversations: each reply stream holds one
// reply per command that wants one (modifications only before the final
// reply of an end of message), and replaying the MTA's side to an
// in-process server with the daemon's rules gives back our side byte for
// byte. With -record-milter the conversations become
// testdata/milter/<mta>-N.mta and .ours, with the rules as <mta>.toml
// (the test's own directories tmp written as /e2e), replayed by milter's
// TestRecordedConversations and seeds of FuzzConn.
func checkWire(t *testing.T, mta string, convs []*conversation, cfgPath string, tmp ...string) {
	t.Helper()
	raw, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	rs, err := rules.Load(filepath.Base(cfgPath), raw, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i, cv := range convs {
		mtaCodes, ourCodes := packets(t, cv.mta.Bytes()), packets(t, cv.ours.Bytes())
		want := 0
		for _, c := range mtaCodes[1:] { // after the negotiation
			if strings.IndexByte("RTE", c) >= 0 { // RCPT, DATA, end of message: the commands we answer
				want++
			}
		}
		finals := 0
		for j, c := range ourCodes[1:] {
			switch {
			case !wire.IsModification(c):
				finals++
			case j+2 >= len(ourCodes):
				t.Errorf("conversation %d ends with a modification: %q", i, ourCodes)
			}
		}
		if finals != want {
			t.Errorf("conversation %d: %d replies to %d commands that want one\n%s: %q\nours: %q", i, finals, want, mta, mtaCodes, ourCodes)
		}
		if got := replay(t, rs, cv.mta.Bytes()); !bytes.Equal(got, cv.ours.Bytes()) {
			t.Errorf("conversation %d: the replay differs\nlive:   %q\nreplay: %q", i, cv.ours.Bytes(), got)
		}
	}
	if !*recordMilter {
		return
	}
	dir := filepath.Join("..", "..", "..", "testdata", "milter")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, d := range tmp {
		raw = bytes.ReplaceAll(raw, []byte(d), []byte("/e2e"))
	}
	if err := os.WriteFile(filepath.Join(dir, mta+".toml"), raw, 0o644); err != nil {
		t.Fatal(err)
	}
	for i, cv := range convs {
		base := filepath.Join(dir, fmt.Sprintf("%s-%d", mta, i+1))
		if err := os.WriteFile(base+".mta", cv.mta.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(base+".ours", cv.ours.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// replay sends Postfix's side of a conversation to an in-process server
// with rules rs and returns what it answers.
func replay(t *testing.T, rs *rules.Ruleset, mta []byte) []byte {
	t.Helper()
	srv := milter.New(rs, slog.New(slog.DiscardHandler))
	ln, err := net.Listen("unix", filepath.Join(t.TempDir(), "r.sock"))
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	defer srv.Shutdown(t.Context())
	c, err := net.Dial("unix", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	go func() {
		c.Write(mta)
		c.(*net.UnixConn).CloseWrite()
	}()
	out, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("replay: %v", err)
	}
	return out
}
