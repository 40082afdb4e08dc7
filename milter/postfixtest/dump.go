package postfixtest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/mail"
	"strings"
)

// Message is one mail transaction as an smtp-sink received it.
type Message struct {
	Sink       string // name of the Sink that received it
	File       string // the dump file
	ClientAddr string // X-Client-Addr: the SMTP client's IP address
	Proto      string // X-Client-Proto: SMTP, ESMTP or LMTP
	Helo       string // X-Helo-Args: the last HELO/EHLO argument ("" if none)
	From       string // the MAIL FROM address without <>; "" for the null sender
	MailArgs   string // ESMTP parameters after the MAIL FROM address, e.g. "SIZE=396 BODY=8BITMIME"
	Rcpts      []Rcpt // one per RCPT command, in the order sent
	ID         string // smtp-sink's id for the transaction (its Received header)

	Data   []byte      // the message as received: header and body, LF line ends, dot-unstuffed
	Header mail.Header // Data's header; nil if Data does not parse as a message
	Body   []byte      // Data's body (all of Data if it does not parse)
	Raw    []byte      // the whole dump file
}

// Rcpt is one RCPT TO command: the address and its ESMTP parameters. As
// smtp-sink records it, Postfix's smtp client sends
//
//	X-Rcpt-Args: <bob@example.com> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;bob@example.com
//
// Postfix adds ORCPT=rfc822;<the recipient as it was received> to every
// recipient when the server announces DSN, as smtp-sink does; NOTIFY only
// when the client asked for it.
type Rcpt struct {
	Addr string // without <>
	Args string // e.g. "NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;bob@example.com"
}

// Param returns the value of the ESMTP parameter name (case-insensitive),
// e.g. Param("ORCPT") = "rfc822;bob@example.com".
func (r Rcpt) Param(name string) (string, bool) {
	return param(r.Args, name)
}

// MailParam returns the value of a MAIL FROM parameter, e.g. "RET".
func (m Message) MailParam(name string) (string, bool) {
	return param(m.MailArgs, name)
}

func param(args, name string) (string, bool) {
	for _, f := range strings.Fields(args) {
		k, v, _ := strings.Cut(f, "=")
		if strings.EqualFold(k, name) {
			return v, true
		}
	}
	return "", false
}

// Recipients returns the RCPT TO addresses of m.
func (m Message) Recipients() []string {
	addrs := make([]string, len(m.Rcpts))
	for i, r := range m.Rcpts {
		addrs[i] = r.Addr
	}
	return addrs
}

// ErrIncompleteDump means the dump file holds a transaction that did not
// (yet) reach the end of DATA.
var ErrIncompleteDump = errors.New("postfixtest: incomplete smtp-sink dump")

// ParseDump parses one smtp-sink -d dump file. smtp-sink (Postfix 3.7)
// creates the file at MAIL FROM and writes, one record a line:
//
//	X-Client-Addr: 127.0.0.1
//	X-Client-Proto: ESMTP
//	X-Helo-Args: mx.test.example           (only after a HELO/EHLO)
//	X-Mail-Args: <sender@external.test> SIZE=396
//	X-Rcpt-Args: <bob@example.com> ORCPT=rfc822;bob@example.com   (one per RCPT)
//	Received: from mx.test.example ([127.0.0.1])      (at DATA)
//		by NAME (smtp-sink) with ESMTP id 22a4e3ed;
//		Sun, 22 Nov 2026 15:36:17 +0000 (UTC)
//
// then the message with CRs removed and dots unstuffed, then the LF of the
// final "." line: a complete dump ends with an empty line. smtp-sink
// closes the file before it answers the final ".", and deletes it on RSET.
func ParseDump(raw []byte) (Message, error) {
	m := Message{Raw: raw}
	r := bufio.NewReader(bytes.NewReader(raw))
	offset := 0
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return m, ErrIncompleteDump
		}
		offset += len(line)
		line = strings.TrimSuffix(line, "\n")
		key, value, ok := strings.Cut(line, ": ")
		if !ok {
			return m, fmt.Errorf("postfixtest: dump line %q is not an smtp-sink record", line)
		}
		switch key {
		case "X-Client-Addr":
			m.ClientAddr = value
		case "X-Client-Proto":
			m.Proto = value
		case "X-Helo-Args":
			m.Helo = value
		case "X-Mail-Args":
			m.From, m.MailArgs = splitPath(value)
		case "X-Rcpt-Args":
			addr, args := splitPath(value)
			m.Rcpts = append(m.Rcpts, Rcpt{Addr: addr, Args: args})
		case "Received":
			id, n, err := parseSinkReceived(r)
			if err != nil {
				return m, err
			}
			m.ID = id
			offset += n
			return m, m.setData(raw[offset:])
		default:
			return m, fmt.Errorf("postfixtest: unknown smtp-sink record %q", key)
		}
	}
}

// parseSinkReceived reads the two continuation lines of smtp-sink's own
// Received header and returns its id and the bytes read.
func parseSinkReceived(r *bufio.Reader) (id string, n int, err error) {
	by, err := r.ReadString('\n')
	if err != nil {
		return "", 0, ErrIncompleteDump
	}
	date, err := r.ReadString('\n')
	if err != nil {
		return "", 0, ErrIncompleteDump
	}
	_, after, ok := strings.Cut(by, " (smtp-sink) with ")
	if !strings.HasPrefix(by, "\tby ") || !ok || !strings.HasPrefix(date, "\t") {
		return "", 0, fmt.Errorf("postfixtest: malformed smtp-sink Received header %q", by+date)
	}
	_, id, _ = strings.Cut(after, " id ")
	id = strings.TrimSuffix(strings.TrimSuffix(id, "\n"), ";")
	return id, len(by) + len(date), nil
}

func (m *Message) setData(data []byte) error {
	if !bytes.HasSuffix(data, []byte("\n")) {
		return ErrIncompleteDump
	}
	m.Data = data[:len(data)-1]
	msg, err := mail.ReadMessage(bytes.NewReader(m.Data))
	if err != nil {
		m.Body = m.Data
		return nil
	}
	m.Header = msg.Header
	m.Body, err = io.ReadAll(msg.Body)
	return err
}

// splitPath splits "<addr> PARAM=x PARAM=y" into the address without the
// angle brackets and the parameters. A quoted local part may hold '>' or
// spaces.
func splitPath(s string) (addr, args string) {
	if !strings.HasPrefix(s, "<") {
		addr, args, _ = strings.Cut(s, " ")
		return addr, strings.TrimSpace(args)
	}
	quoted := false
	for i := 1; i < len(s); i++ {
		switch s[i] {
		case '\\':
			if quoted {
				i++
			}
		case '"':
			quoted = !quoted
		case '>':
			if !quoted {
				return s[1:i], strings.TrimSpace(s[i+1:])
			}
		}
	}
	return s[1:], ""
}
