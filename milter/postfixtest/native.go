package postfixtest

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"time"
)

// nativeSession is the built-in SMTP client Send uses when swaks cannot
// express the envelope (ESMTP parameters on MAIL or RCPT). It writes a
// transcript in swaks's format: "=== " notes, " -> " commands, "<-  "
// replies and "<** " replies other than the expected one.
type nativeSession struct {
	conn net.Conn
	r    *bufio.Reader
	tr   strings.Builder
}

func sendNative(addr string, m Mail) (string, int) {
	s := &nativeSession{}
	code := s.run(addr, m)
	if s.conn != nil {
		s.conn.Close()
		s.note("Connection closed with remote host.")
	}
	return s.tr.String(), code
}

func (s *nativeSession) run(addr string, m Mail) int {
	s.note("Trying " + addr + "...")
	d := net.Dialer{Timeout: m.Timeout}
	if m.Source != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(m.Source)}
	}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		s.fail("Error connecting to %s: %v", addr, err)
		return exitConnect
	}
	s.conn, s.r = conn, bufio.NewReader(conn)
	_ = conn.SetDeadline(time.Now().Add(m.Timeout))
	s.note("Connected to " + addr + ".")

	if ok, err := s.expect("220"); !ok {
		return s.quit(err, exitBanner)
	}
	if ok, err := s.cmd("EHLO "+m.Helo, "250"); !ok {
		return s.quit(err, exitHelo)
	}
	mail := "MAIL FROM:<" + m.From + ">"
	if m.MailArgs != "" {
		mail += " " + m.MailArgs
	}
	if ok, err := s.cmd(mail, "250"); !ok {
		return s.quit(err, exitMail)
	}
	accepted := 0
	for _, rcpt := range m.To {
		cmd := "RCPT TO:<" + rcpt + ">"
		if args := m.RcptArgs[rcpt]; args != "" {
			cmd += " " + args
		}
		ok, err := s.cmd(cmd, "250")
		if err != nil {
			return exitClosed
		}
		if ok {
			accepted++
		}
	}
	if accepted == 0 {
		return s.quit(nil, exitNoRcpt)
	}
	if ok, err := s.cmd("DATA", "354"); !ok {
		return s.quit(err, exitData)
	}
	if err := s.data(m.message()); err != nil {
		s.fail("%v", err)
		return exitClosed
	}
	if ok, err := s.expect("250"); !ok {
		return s.quit(err, exitAfterData)
	}
	if ok, err := s.cmd("QUIT", "221"); !ok && err == nil {
		return exitQuit
	}
	return exitOK
}

// quit ends a failed session politely and returns code; after a read or
// write error it only returns code.
func (s *nativeSession) quit(err error, code int) int {
	if err != nil {
		return code
	}
	_, _ = s.cmd("QUIT", "221")
	return code
}

// cmd sends one command and reads its reply; ok tells whether the reply
// code is want. err is a connection error, already in the transcript.
func (s *nativeSession) cmd(line, want string) (ok bool, err error) {
	s.tr.WriteString(" -> " + line + "\n")
	if _, err := s.conn.Write([]byte(line + "\r\n")); err != nil {
		s.fail("%v", err)
		return false, err
	}
	return s.expect(want)
}

// expect reads a (multi-line) reply.
func (s *nativeSession) expect(want string) (ok bool, err error) {
	for {
		line, err := s.r.ReadString('\n')
		if err != nil {
			s.fail("Remote host closed connection unexpectedly: %v", err)
			return false, err
		}
		line = strings.TrimRight(line, "\r\n")
		ok = strings.HasPrefix(line, want)
		prefix := "<-  "
		if !ok {
			prefix = "<** "
		}
		s.tr.WriteString(prefix + line + "\n")
		if len(line) < 4 || line[3] != '-' {
			return ok, nil
		}
	}
}

// data sends the message, CRLF line ends and dot-stuffed, and the final ".".
func (s *nativeSession) data(msg []byte) error {
	text := strings.ReplaceAll(string(msg), "\r\n", "\n")
	text = strings.TrimSuffix(text, "\n")
	var b strings.Builder
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(line, ".") {
			line = "." + line
		}
		s.tr.WriteString(" -> " + line + "\n")
		b.WriteString(line + "\r\n")
	}
	s.tr.WriteString(" -> .\n")
	b.WriteString(".\r\n")
	_, err := s.conn.Write([]byte(b.String()))
	return err
}

func (s *nativeSession) note(msg string) { s.tr.WriteString("=== " + msg + "\n") }

func (s *nativeSession) fail(format string, args ...any) {
	s.tr.WriteString("*** " + fmt.Sprintf(format, args...) + "\n")
}
