package postfixtest

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/mail"
	"net/textproto"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// MemSink is a downstream SMTP server in the test process that keeps what
// it receives in memory. Unlike smtp-sink it announces SMTPUTF8 (so mail
// to UTF-8 addresses can be delivered to it), 8BITMIME, DSN and a SIZE of
// 64 MB, and it records each RCPT line exactly as Postfix's smtp client
// sent it. It is also cheap to stop and restart, for load tests.
type MemSink struct {
	Name string
	Addr string // 127.0.0.1:Port
	Port int

	mu    sync.Mutex
	ln    net.Listener
	msgs  []Message
	conns map[net.Conn]bool
}

// StartMemSink starts a MemSink on a free loopback port and registers a
// cleanup that stops it.
func StartMemSink(t testing.TB, name string) *MemSink {
	t.Helper()
	s := &MemSink{Name: name, conns: map[net.Conn]bool{}}
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("postfixtest: %v", err)
	}
	s.Port = ln.Addr().(*net.TCPAddr).Port
	s.Addr = ln.Addr().String()
	s.serve(ln)
	t.Cleanup(s.stop)
	return s
}

// NextHop is the transport(5) next hop that delivers to the sink.
func (s *MemSink) NextHop() string { return fmt.Sprintf("smtp:[127.0.0.1]:%d", s.Port) }

// Stop closes the listener and every open connection: the server is down
// and connections are refused until Start.
func (s *MemSink) Stop(t testing.TB) { s.stop() }

func (s *MemSink) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln != nil {
		s.ln.Close()
		s.ln = nil
	}
	for c := range s.conns {
		c.Close()
	}
}

// Start listens again on the same port after Stop.
func (s *MemSink) Start(t testing.TB) {
	t.Helper()
	var ln net.Listener
	var err error
	for range 50 {
		if ln, err = net.Listen("tcp4", s.Addr); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("postfixtest: restart %s: %v", s.Name, err)
	}
	s.serve(ln)
}

func (s *MemSink) serve(ln net.Listener) {
	s.mu.Lock()
	s.ln = ln
	s.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns[c] = true
			s.mu.Unlock()
			go func() {
				s.session(c)
				s.mu.Lock()
				delete(s.conns, c)
				s.mu.Unlock()
				c.Close()
			}()
		}
	}()
}

// Messages returns the transactions completed so far, in order.
func (s *MemSink) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.msgs...)
}

// Recipients returns the RCPT TO addresses of all completed transactions.
func (s *MemSink) Recipients() []string {
	var r []string
	for _, m := range s.Messages() {
		r = append(r, m.Recipients()...)
	}
	return r
}

func (s *MemSink) session(c net.Conn) {
	c.SetDeadline(time.Now().Add(5 * time.Minute))
	r := bufio.NewReaderSize(c, 64<<10)
	tp := textproto.NewReader(r)
	w := bufio.NewWriter(c)
	reply := func(l string) bool {
		w.WriteString(l + "\r\n")
		return w.Flush() == nil
	}
	reply("220 " + s.Name + " ESMTP memsink")
	var cur Message
	for {
		l, err := tp.ReadLine()
		if err != nil {
			return
		}
		up := strings.ToUpper(l)
		switch {
		case strings.HasPrefix(up, "EHLO"):
			cur.Helo = strings.TrimSpace(l[4:])
			reply("250-" + s.Name + "\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250-DSN\r\n250-SIZE 67108864\r\n250 ENHANCEDSTATUSCODES")
		case strings.HasPrefix(up, "HELO"):
			reply("250 " + s.Name)
		case strings.HasPrefix(up, "MAIL FROM:"):
			cur = Message{Sink: s.Name, Helo: cur.Helo, Proto: "ESMTP", ClientAddr: c.RemoteAddr().String()}
			cur.From, cur.MailArgs = splitPath(strings.TrimSpace(l[len("MAIL FROM:"):]))
			reply("250 2.1.0 Ok")
		case strings.HasPrefix(up, "RCPT TO:"):
			addr, args := splitPath(strings.TrimSpace(l[len("RCPT TO:"):]))
			cur.Rcpts = append(cur.Rcpts, Rcpt{Addr: addr, Args: args})
			reply("250 2.1.5 Ok")
		case up == "DATA":
			if !reply("354 End data with <CR><LF>.<CR><LF>") {
				return
			}
			data, err := tp.ReadDotBytes()
			if err != nil {
				return
			}
			m := cur
			m.Data = data
			if msg, err := mail.ReadMessage(bytes.NewReader(data)); err == nil {
				m.Header = msg.Header
				m.Body, _ = io.ReadAll(msg.Body)
			} else {
				m.Body = data
			}
			s.mu.Lock()
			m.ID = strconv.Itoa(len(s.msgs) + 1)
			s.msgs = append(s.msgs, m)
			s.mu.Unlock()
			if !reply("250 2.0.0 Ok: queued as " + m.ID) {
				return
			}
		case up == "RSET":
			cur = Message{Helo: cur.Helo}
			reply("250 2.0.0 Ok")
		case up == "QUIT":
			reply("221 2.0.0 Bye")
			return
		default:
			reply("250 2.0.0 Ok")
		}
	}
}
