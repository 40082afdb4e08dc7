package milter

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"runtime/debug"
	"strconv"
	"strings"

	"github.com/splitrelay/splitrelay/milter/wire"
	"github.com/splitrelay/splitrelay/rules"
)

// conn is one milter connection: the protocol state (buffers, macros,
// negotiated flags) and the session whose callbacks it calls. It decodes
// each packet in place (strings are made only of what the transaction
// keeps: sender, recipients, the From header) and answers with one write
// per reply (wire.Writer).
type conn struct {
	s       *Server
	r       *wire.Reader
	w       *wire.Writer
	mac     wire.Macros
	proto   uint32 // negotiated protocol flags
	actions uint32 // negotiated actions
	maxData int    // negotiated largest packet data
	eom     bool   // at end of message: modifications allowed
	args    []byte // scratch for ESMTP arguments
}

// reply is a callback's answer to the MTA.
type reply struct {
	code byte        // wire.Resp*
	smtp rules.Reply // with wire.RespReplyCode
}

var (
	replyContinue = reply{code: wire.RespContinue}
	replyAccept   = reply{code: wire.RespAccept}
	replyTempFail = reply{code: wire.RespTempFail}
)

// replyWith refuses with an SMTP reply of ours.
func replyWith(r rules.Reply) reply { return reply{code: wire.RespReplyCode, smtp: r} }

// errQuit ends a connection the MTA closed cleanly.
var errQuit = errors.New("quit")

// serve runs one MTA connection to its end.
func (s *Server) serve(nc net.Conn) {
	c := &conn{s: s,
		r: wire.NewReader(nc, nc, s.negTimeout, 16<<10, wire.DataSize1M),
		w: wire.NewWriter(nc, nc, WriteTimeout)}
	defer nc.Close()
	var ss *session
	defer func() {
		// A bug outside the callbacks that guard themselves (session.go's
		// recover) must not take the daemon down with every other
		// connection: this one is closed, and Postfix applies
		// milter_default_action (tempfail) to its message.
		if p := recover(); p != nil {
			s.obs.ProtocolError()
			attrs := []slog.Attr{slog.String(KeyErr, fmt.Sprint(p)), slog.String(KeyStack, string(debug.Stack()))}
			if ss != nil {
				ss.log.Error("internal error; milter connection closed", attrs...)
			} else {
				s.log.LogAttrs(context.Background(), slog.LevelError, "internal error; milter connection closed", attrs...)
			}
		}
	}()
	if err := c.negotiate(); err != nil {
		if !closedConn(err) {
			s.obs.ProtocolError()
			s.log.Warn("milter protocol error", KeyStage, "negotiation", KeyErr, err.Error())
		}
		return
	}
	c.r.SetTimeout(ReadTimeout)
	ss = s.newSession(c)
	defer func() { ss.Cleanup() }()
	for {
		cmd, data, err := c.r.Next()
		if err == nil {
			err = c.handle(&ss, cmd, data)
		}
		if err != nil {
			if err != errQuit && !closedConn(err) {
				// Logged with the connection's and the transaction's
				// attributes (client, sender, queue ID), so that the
				// message Postfix tempfails for it can be found.
				s.obs.ProtocolError()
				ss.txLog().Warn("milter protocol error", slog.String(KeyErr, err.Error()))
			}
			return
		}
		if cmd == wire.CmdQuitNC && s.closing.Load() {
			return // the MTA reconnects to the next splitrelay
		}
	}
}

// closedConn reports an error that only says the connection is gone.
func closedConn(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed)
}

// negotiate answers the MTA's option negotiation: milter protocol 6, the
// actions and protocol flags we need (server.go) and the macros we read
// at each stage.
func (c *conn) negotiate() error {
	cmd, data, err := c.r.Next()
	if err != nil {
		return err
	}
	if cmd != wire.CmdOptNeg || len(data) < 12 {
		return fmt.Errorf("negotiation: got command %q with %d bytes, want option negotiation", cmd, len(data))
	}
	version := binary.BigEndian.Uint32(data)
	mtaActions := binary.BigEndian.Uint32(data[4:])
	mtaProto := binary.BigEndian.Uint32(data[8:])
	if version < 6 {
		return fmt.Errorf("MTA speaks milter protocol %d, splitrelay needs 6 (Postfix: milter_protocol = 6)", version)
	}
	if Actions&mtaActions != Actions {
		return fmt.Errorf("MTA does not offer the actions we need: offered %#x, need %#x", mtaActions, uint32(Actions))
	}
	if Protocol&mtaProto != Protocol {
		return fmt.Errorf("MTA does not offer the protocol options we need: offered %#x, need %#x", mtaProto&^wire.ProtoInternal, uint32(Protocol))
	}
	c.actions, c.proto = Actions, Protocol
	size := uint32(0)
	c.maxData = wire.DataSize64K
	switch {
	case mtaProto&wire.ProtoMDS1M != 0:
		size, c.maxData = wire.ProtoMDS1M, wire.DataSize1M
	case mtaProto&wire.ProtoMDS256K != 0:
		size, c.maxData = wire.ProtoMDS256K, wire.DataSize256K
	}
	c.w.Start(wire.CmdOptNeg)
	c.w.Uint32(6)
	c.w.Uint32(c.actions)
	c.w.Uint32(c.proto | size)
	if mtaActions&wire.ActSetSymList != 0 {
		for _, m := range macroRequests {
			c.w.Uint32(m.stage)
			c.w.CString(m.names)
		}
	} else {
		c.s.log.Warn("the MTA cannot be told which macros to send (no SMFIF_SETSYMLIST): TLS and AUTH are only seen if its milter_*_macros send them")
	}
	if err := c.w.End(wire.DataSize64K); err != nil {
		return err
	}
	return c.w.Flush()
}

// handle runs one packet: the session's callback and, unless the
// protocol says the command gets none, the reply.
func (c *conn) handle(ssp **session, cmd byte, data []byte) error {
	ss := *ssp
	var r reply
	switch cmd {
	case wire.CmdMacro:
		if len(data) == 0 {
			return errors.New("macro packet without a command")
		}
		if st, ok := wire.MacroStage(data[0]); ok {
			c.mac.Set(st, data[1:])
		}
		return nil
	case wire.CmdConnect:
		c.mac.Clear(wire.StageHelo)
		host, rest, ok := wire.CString(data)
		if !ok || len(rest) == 0 {
			return errors.New("connect packet without host name and family")
		}
		family, port, addr := rest[0], uint16(0), []byte(nil)
		if family != 'U' {
			if len(rest) < 3 {
				return fmt.Errorf("connect packet for family %q without port", family)
			}
			port = binary.BigEndian.Uint16(rest[1:])
			addr, _, _ = wire.CString(rest[3:])
		}
		r = ss.Connect(string(host), familyName(family), port, clientAddr(family, addr))
	case wire.CmdHelo:
		c.mac.Clear(wire.StageMail)
		name, _, _ := wire.CString(data)
		r = ss.Helo(string(name))
	case wire.CmdMail, wire.CmdRcpt:
		addr, rest, ok := wire.CString(data)
		if !ok {
			return fmt.Errorf("%c packet without a NUL-terminated address", cmd)
		}
		if cmd == wire.CmdMail {
			c.mac.Clear(wire.StageRcpt)
			r = ss.MailFrom(string(unangle(addr)), c.esmtpArgs(rest))
		} else {
			c.mac.Clear(wire.StageData)
			r = ss.RcptTo(string(unangle(addr)), c.esmtpArgs(rest))
		}
	case wire.CmdData:
		c.mac.Clear(wire.StageEOH)
		r = replyContinue
	case wire.CmdHeader:
		name, rest, ok := wire.CString(data)
		value, _, ok2 := wire.CString(rest)
		if !ok || !ok2 {
			return errors.New("header packet without a NUL-terminated name and value")
		}
		ss.Header(name, value)
		c.mac.Clear(wire.StageCmd)
		r = replyContinue
	case wire.CmdEOH:
		c.mac.Clear(wire.StageEOM)
		r = replyContinue
	case wire.CmdBody:
		ss.BodyChunk(data)
		c.mac.Clear(wire.StageCmd)
		r = replyContinue
	case wire.CmdEOB:
		if len(data) > 0 { // a last body chunk
			ss.BodyChunk(data)
		}
		c.eom = true
		r = ss.EndOfMessage()
		c.eom = false
		switch r.code {
		case wire.RespContinue:
			r = replyAccept // nothing more to decide: as libmilter does
		case wire.RespAccept:
		default: // refused or tempfailed: the modifications go with the message
			c.w.Discard()
		}
		c.mac.Clear(wire.StageMail)
	case wire.CmdAbort:
		ss.Abort()
		c.mac.Clear(wire.StageMail)
		return nil
	case wire.CmdUnknown:
		c.mac.Clear(wire.StageCmd)
		r = replyContinue
	case wire.CmdQuitNC:
		// The MTA reuses this connection for its next client: a new
		// session, nothing of the last client's kept.
		ss.Cleanup()
		c.mac.Clear(wire.StageConnect)
		*ssp = c.s.newSession(c)
		return nil
	case wire.CmdQuit:
		return errQuit
	default:
		return fmt.Errorf("unknown milter command %q", cmd)
	}
	if wire.NoReply(cmd, c.proto) {
		return nil
	}
	c.writeReply(r)
	return c.w.Flush()
}

// writeReply appends r. An SMTP text is sent as one line without NUL, CR
// or LF, and with "%" doubled (Sendmail expands it).
func (c *conn) writeReply(r reply) {
	if r.code != wire.RespReplyCode {
		c.w.Reply(r.code)
		return
	}
	c.w.Start(wire.RespReplyCode)
	var num [3]byte
	c.w.Bytes(strconv.AppendInt(num[:0], int64(r.smtp.Code), 10))
	c.w.Byte(' ')
	if r.smtp.Enhanced != "" {
		c.w.String(r.smtp.Enhanced)
		c.w.Byte(' ')
	}
	c.oneLine(r.smtp.Text, true)
	c.w.Byte(0)
	if err := c.w.End(wire.DataSize64K); err != nil {
		c.w.Reply(wire.RespTempFail) // cannot happen with our replies; never accept instead
	}
}

// esmtpArgs joins the NUL-separated ESMTP arguments of MAIL or RCPT with
// spaces; no arguments (the usual case) cost nothing.
func (c *conn) esmtpArgs(b []byte) string {
	c.args = c.args[:0]
	for len(b) > 0 {
		a, rest, ok := wire.CString(b)
		if !ok {
			a, rest = b, nil
		}
		if len(a) > 0 {
			if len(c.args) > 0 {
				c.args = append(c.args, ' ')
			}
			c.args = append(c.args, a...)
		}
		b = rest
	}
	if len(c.args) == 0 {
		return ""
	}
	return string(c.args)
}

// unangle strips the angle brackets the MTA keeps around MAIL and RCPT
// addresses.
func unangle(b []byte) []byte {
	if angled(b) {
		return b[1 : len(b)-1]
	}
	return b
}

// angled reports an address in angle brackets.
func angled[T string | []byte](a T) bool {
	return len(a) >= 2 && a[0] == '<' && a[len(a)-1] == '>'
}

// clientAddr is a connect packet's client address as an IP address can
// be read from it. Sendmail writes an IPv6 client as "IPv6:2001:db8::1"
// ({client_addr}), some MTAs in brackets; left so, no relay network
// could match it (the relay policy fails closed).
//
// An address that parses is returned in its canonical form (RFC 5952,
// IPv4-mapped unmapped): the one the relay policy judges and names in
// its reasons. Sendmail 8.17 writes IPv6 uncompressed ("IPv6:0:0:0:0:0:0:0:1"
// for ::1, measured through the real daemon, e2e TestSendmailRelayIPv6),
// Postfix compressed ("::1"); client_addr in the log must be one string
// for one client, whichever MTA is in front.
func clientAddr(family byte, addr []byte) string {
	a := string(addr)
	if family == '6' {
		a = strings.TrimPrefix(a, "IPv6:")
		if len(a) > 2 && a[0] == '[' && a[len(a)-1] == ']' {
			a = a[1 : len(a)-1]
		}
	}
	if ip, err := netip.ParseAddr(a); err == nil {
		return ip.Unmap().String()
	}
	return a
}

// familyName names a connect packet's address family as the session
// expects it.
func familyName(f byte) string {
	switch f {
	case '4':
		return "tcp4"
	case '6':
		return "tcp6"
	case 'L':
		return "unix"
	}
	return "unknown"
}

// macro is the value of a macro the MTA sent, "" when it did not.
func (c *conn) macro(name string) string { return c.mac.Get(name) }

// errNotAllowed is a modification outside end of message or not
// negotiated: a bug of ours, which tempfails the message.
var errNotAllowed = errors.New("modification not allowed here")

// modify appends a modification packet: code, then each of parts as a
// NUL-terminated string. An address part (the first of a recipient or
// sender change) is put in angle brackets; CR and LF become spaces.
func (c *conn) modify(code byte, action uint32, addr string, args ...string) error {
	if !c.eom || c.actions&action == 0 {
		return errNotAllowed
	}
	c.w.Start(code)
	bare := !angled(addr)
	if bare {
		c.w.Byte('<')
	}
	c.oneLine(addr, false)
	if bare {
		c.w.Byte('>')
	}
	c.w.Byte(0)
	for _, a := range args {
		c.oneLine(a, false)
		c.w.Byte(0)
	}
	return c.w.End(wire.DataSize64K)
}

// oneLine appends s with NUL, CR and LF as spaces, so that it stays one
// string on one line; with percent, "%" is doubled (Sendmail expands it
// in a reply text).
func (c *conn) oneLine(s string, percent bool) {
	for i := 0; i < len(s); i++ {
		switch ch := s[i]; {
		case ch == 0 || ch == '\r' || ch == '\n':
			c.w.Byte(' ')
		case ch == '%' && percent:
			c.w.String("%%")
		default:
			c.w.Byte(ch)
		}
	}
}

// AddRecipient adds rcpt, with ESMTP args when there are any.
func (c *conn) AddRecipient(rcpt, args string) error {
	if args == "" {
		return c.modify(wire.RespAddRcpt, wire.ActAddRcpt, rcpt)
	}
	return c.modify(wire.RespAddRcptPar, wire.ActAddRcptPar, rcpt, args)
}

// DeleteRecipient removes rcpt, spelled as the MTA stored it.
func (c *conn) DeleteRecipient(rcpt string) error {
	return c.modify(wire.RespDelRcpt, wire.ActDelRcpt, rcpt)
}

// ChangeFrom replaces the envelope sender.
func (c *conn) ChangeFrom(from string) error {
	return c.modify(wire.RespChgFrom, wire.ActChangeFrom, from)
}

// ReplaceBody sends body in place of the message's, in packets of the
// negotiated size.
func (c *conn) ReplaceBody(body []byte) error {
	if !c.eom || c.actions&wire.ActChangeBody == 0 {
		return errNotAllowed
	}
	for first := true; first || len(body) > 0; first = false {
		n := min(len(body), c.maxData)
		c.w.Start(wire.RespReplBody)
		c.w.Bytes(body[:n])
		if err := c.w.End(c.maxData); err != nil {
			return err
		}
		body = body[n:]
	}
	return nil
}

// connLog names a connection's first log attributes.
func connLog(id uint64) slog.Attr { return slog.String(KeyConnID, strconv.FormatUint(id, 10)) }
