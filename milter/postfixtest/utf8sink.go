package postfixtest

import (
	"errors"
	"io"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// UTF8Sink is an SMTP server that, unlike smtp-sink, offers SMTPUTF8
// (RFC 6531) and DSN (RFC 3461): the route's server for tests of
// internationalised addresses. It keeps every envelope it accepts.
type UTF8Sink struct {
	Addr string // 127.0.0.1:Port
	Port int

	srv *smtp.Server
	mu  sync.Mutex
	got []Envelope
}

// Envelope is one transaction an UTF8Sink accepted.
type Envelope struct {
	From  string
	UTF8  bool // MAIL FROM said SMTPUTF8
	Rcpts []EnvelopeRcpt
	Data  []byte
}

// EnvelopeRcpt is one RCPT TO with its DSN arguments, decoded by go-smtp.
type EnvelopeRcpt struct {
	Addr      string // as received
	Notify    []smtp.DSNNotify
	OrcptType smtp.DSNAddressType // "RFC822" or "UTF-8"
	Orcpt     string              // the decoded ORCPT address
}

// StartUTF8Sink starts an UTF8Sink on a free loopback port and stops it at
// the end of the test.
func StartUTF8Sink(t testing.TB) *UTF8Sink {
	t.Helper()
	s := &UTF8Sink{}
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("postfixtest: %v", err)
	}
	s.Addr = ln.Addr().String()
	s.Port = ln.Addr().(*net.TCPAddr).Port
	s.srv = smtp.NewServer(s)
	s.srv.Domain = "utf8sink.test"
	s.srv.EnableSMTPUTF8 = true
	s.srv.EnableDSN = true
	s.srv.AllowInsecureAuth = true
	s.srv.ReadTimeout, s.srv.WriteTimeout = time.Minute, time.Minute
	go s.srv.Serve(ln)
	t.Cleanup(func() { s.srv.Close() })
	return s
}

// NextHop is the transport(5) next hop that delivers to the sink.
func (s *UTF8Sink) NextHop() string { return "smtp:[127.0.0.1]:" + strconv.Itoa(s.Port) }

// Envelopes returns what the sink accepted so far.
func (s *UTF8Sink) Envelopes() []Envelope {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Envelope(nil), s.got...)
}

// Wait waits until the sink holds n envelopes, at most timeout.
func (s *UTF8Sink) Wait(t testing.TB, n int, timeout time.Duration) []Envelope {
	t.Helper()
	for deadline := time.Now().Add(timeout); ; {
		if e := s.Envelopes(); len(e) >= n || time.Now().After(deadline) {
			return e
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// NewSession is go-smtp's Backend.
func (s *UTF8Sink) NewSession(*smtp.Conn) (smtp.Session, error) { return &utf8Session{sink: s}, nil }

type utf8Session struct {
	sink *UTF8Sink
	env  Envelope
}

func (u *utf8Session) AuthPlain(string, string) error { return errors.New("no AUTH") }

func (u *utf8Session) Mail(from string, opts *smtp.MailOptions) error {
	u.env = Envelope{From: from, UTF8: opts != nil && opts.UTF8}
	return nil
}

func (u *utf8Session) Rcpt(to string, opts *smtp.RcptOptions) error {
	r := EnvelopeRcpt{Addr: to}
	if opts != nil {
		r.Notify, r.OrcptType, r.Orcpt = opts.Notify, opts.OriginalRecipientType, opts.OriginalRecipient
	}
	u.env.Rcpts = append(u.env.Rcpts, r)
	return nil
}

func (u *utf8Session) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	u.env.Data = data
	u.sink.mu.Lock()
	u.sink.got = append(u.sink.got, u.env)
	u.sink.mu.Unlock()
	return nil
}

func (u *utf8Session) Reset()        { u.env = Envelope{} }
func (u *utf8Session) Logout() error { return nil }
