package e2e

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"net"
	"net/textproto"
	"os"
	"strings"
	"testing"
	"time"
)

// A dialogue is what one relay client product sends, written down in
// testdata/clients/*.smtp from its documentation, and replayed by a small
// scripted SMTP client against the gateway. One directive per line:
//
//	# text                 a comment
//	gateway NAME           the gateway policy the file runs against (see TestE2EClientDialogues)
//	client ADDR            a new SMTP session from local address ADDR (the previous one is closed)
//	> LINE                 send LINE; nothing is read (several > lines in a row pipeline, RFC 2920)
//	< REPLY                read one reply; it must start with REPLY ("250", "550 5.7.0 Mail relay denied")
//	starttls               the TLS handshake, after "220" to STARTTLS
//	message                send the | lines that follow, dot-stuffed, and the final "."
//	bdat                   send the | lines that follow as one chunk: "BDAT n LAST" and the bytes (RFC 3030)
//	| LINE                 a line of the message (lines end in CRLF on the wire)
//	sleep DURATION         stay idle, e.g. "sleep 20s"
//	land SINK RCPT...      at the end, SINK ("internet", "gmail") has received these recipients
//	rcptargs SINK RCPT K=V...  and RCPT arrived there with these ESMTP parameters
type dialogue struct {
	name    string
	gateway string
	steps   []step
	land    map[string][]string
	args    []rcptArgs
}

type step struct {
	line int
	verb string // client, send, expect, starttls, message, bdat, sleep
	arg  string
	body []string // message, bdat
}

type rcptArgs struct {
	sink, rcpt string
	params     []string // K=V
}

// parseDialogue reads a dialogue file; errors name FILE:LINE.
func parseDialogue(path string) (*dialogue, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	d := &dialogue{name: path, land: map[string][]string{}}
	for i, line := range strings.Split(strings.TrimRight(string(data), "\n"), "\n") {
		n := i + 1
		bad := func(format string, a ...any) error {
			return fmt.Errorf("%s:%d: %s", path, n, fmt.Sprintf(format, a...))
		}
		verb, arg, _ := strings.Cut(line, " ")
		switch verb {
		case "", "#":
		case ">":
			d.steps = append(d.steps, step{line: n, verb: "send", arg: arg})
		case "<":
			d.steps = append(d.steps, step{line: n, verb: "expect", arg: arg})
		case "|":
			if len(d.steps) == 0 || (d.steps[len(d.steps)-1].verb != "message" && d.steps[len(d.steps)-1].verb != "bdat") {
				return nil, bad("message line outside message or bdat")
			}
			d.steps[len(d.steps)-1].body = append(d.steps[len(d.steps)-1].body, arg)
		case "gateway":
			d.gateway = arg
		case "client", "sleep":
			d.steps = append(d.steps, step{line: n, verb: verb, arg: arg})
			if verb == "sleep" {
				if _, err := time.ParseDuration(arg); err != nil {
					return nil, bad("%v", err)
				}
			}
		case "starttls", "message", "bdat":
			if arg != "" {
				return nil, bad("%s takes no argument", verb)
			}
			d.steps = append(d.steps, step{line: n, verb: verb})
		case "land":
			f := strings.Fields(arg)
			if len(f) < 2 {
				return nil, bad("land SINK RCPT...")
			}
			d.land[f[0]] = append(d.land[f[0]], f[1:]...)
		case "rcptargs":
			f := strings.Fields(arg)
			if len(f) < 3 {
				return nil, bad("rcptargs SINK RCPT K=V...")
			}
			d.args = append(d.args, rcptArgs{sink: f[0], rcpt: f[1], params: f[2:]})
		default:
			if strings.HasPrefix(verb, "#") {
				continue
			}
			return nil, bad("unknown directive %q", verb)
		}
	}
	if d.gateway == "" {
		return nil, fmt.Errorf("%s: no gateway line", path)
	}
	return d, nil
}

// replay runs the dialogue against the SMTP server at addr. It returns the
// transcript and the first difference from the script.
func (d *dialogue) replay(addr string) (string, error) {
	var (
		tr   strings.Builder
		conn net.Conn
		text *textproto.Conn
	)
	closeConn := func() {
		if conn != nil {
			conn.Close()
			conn, text = nil, nil
		}
	}
	defer closeConn()
	for _, st := range d.steps {
		at := func(err error) error { return fmt.Errorf("%s:%d: %w", d.name, st.line, err) }
		if st.verb != "client" && conn == nil {
			return tr.String(), at(fmt.Errorf("no session: start with a client line"))
		}
		if conn != nil {
			conn.SetDeadline(time.Now().Add(60 * time.Second))
		}
		switch st.verb {
		case "client":
			closeConn()
			dialer := net.Dialer{Timeout: 10 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(st.arg)}}
			c, err := dialer.Dial("tcp", addr)
			if err != nil {
				return tr.String(), at(err)
			}
			conn, text = c, textproto.NewConn(c)
			fmt.Fprintf(&tr, "=== connect from %s\n", st.arg)
		case "send":
			fmt.Fprintf(&tr, "> %s\n", st.arg)
			if err := text.PrintfLine("%s", st.arg); err != nil {
				return tr.String(), at(err)
			}
		case "expect":
			code, msg, err := text.ReadResponse(0)
			if err != nil {
				return tr.String(), at(err)
			}
			got := fmt.Sprintf("%d %s", code, msg)
			fmt.Fprintf(&tr, "< %s\n", strings.ReplaceAll(got, "\n", "\n< "))
			if !strings.HasPrefix(got, st.arg) {
				return tr.String(), at(fmt.Errorf("reply %q, want %q", got, st.arg))
			}
		case "starttls":
			tc := tls.Client(conn, &tls.Config{ServerName: "mx.test.example", InsecureSkipVerify: true}) // the instance's self-signed certificate
			if err := tc.Handshake(); err != nil {
				return tr.String(), at(err)
			}
			conn, text = tc, textproto.NewConn(tc)
			fmt.Fprintf(&tr, "=== TLS %s\n", tls.VersionName(tc.ConnectionState().Version))
		case "message":
			w := text.DotWriter()
			for _, l := range st.body {
				fmt.Fprintf(w, "%s\n", l)
			}
			if err := w.Close(); err != nil {
				return tr.String(), at(err)
			}
			fmt.Fprintf(&tr, "> (%d lines)\n> .\n", len(st.body))
		case "bdat":
			var chunk strings.Builder
			for _, l := range st.body {
				chunk.WriteString(l + "\r\n")
			}
			bw := bufio.NewWriter(conn)
			fmt.Fprintf(bw, "BDAT %d LAST\r\n%s", chunk.Len(), chunk.String())
			if err := bw.Flush(); err != nil {
				return tr.String(), at(err)
			}
			fmt.Fprintf(&tr, "> BDAT %d LAST (%d lines)\n", chunk.Len(), len(st.body))
		case "sleep":
			dur, _ := time.ParseDuration(st.arg)
			fmt.Fprintf(&tr, "=== idle %v\n", dur)
			conn.SetDeadline(time.Now().Add(dur + 60*time.Second))
			time.Sleep(dur)
		}
	}
	return tr.String(), nil
}

func TestParseDialogues(t *testing.T) {
	files, err := dialogueFiles()
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no testdata/clients/*.smtp")
	}
	for _, f := range files {
		if _, err := parseDialogue(f); err != nil {
			t.Error(err)
		}
	}
}
