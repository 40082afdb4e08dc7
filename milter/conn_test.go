package milter

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/splitrelay/splitrelay/milter/wire"
	"github.com/splitrelay/splitrelay/rules"
)

// memConn is a milter connection whose MTA side is a recorded stream:
// reads come from it, each write(2) is kept.
type memConn struct {
	r      io.Reader
	writes [][]byte
}

func (c *memConn) Read(p []byte) (int, error) { return c.r.Read(p) }
func (c *memConn) Write(p []byte) (int, error) {
	c.writes = append(c.writes, bytes.Clone(p))
	return len(p), nil
}
func (c *memConn) Close() error                     { return nil }
func (c *memConn) LocalAddr() net.Addr              { return &net.UnixAddr{Name: "m.sock", Net: "unix"} }
func (c *memConn) RemoteAddr() net.Addr             { return &net.UnixAddr{Name: "@", Net: "unix"} }
func (c *memConn) SetDeadline(time.Time) error      { return nil }
func (c *memConn) SetReadDeadline(time.Time) error  { return nil }
func (c *memConn) SetWriteDeadline(time.Time) error { return nil }

// replyPkt is one packet we sent.
type replyPkt struct {
	code byte
	data string
}

// packets splits the writes into packets; each write must hold whole ones.
func (c *memConn) packets(t testing.TB) [][]replyPkt {
	var out [][]replyPkt
	for _, w := range c.writes {
		var ps []replyPkt
		r := wire.NewReader(bytes.NewReader(w), nil, 0, 1<<10, wire.DataSize1M)
		for {
			code, data, err := r.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("write %q: %v", w, err)
			}
			ps = append(ps, replyPkt{code, string(data)})
		}
		out = append(out, ps)
	}
	return out
}

// optneg is the MTA's negotiation: protocol 6, actions and protocol flags.
func optneg(version, actions, proto uint32) []byte {
	var b []byte
	b = binary.BigEndian.AppendUint32(b, version)
	b = binary.BigEndian.AppendUint32(b, actions)
	b = binary.BigEndian.AppendUint32(b, proto)
	return pkt(nil, 'O', string(b))
}

// postfixOffer is what Postfix 3.7 offers: every action and protocol flag
// it knows, without the data-size bits.
var postfixOffer = optneg(6, 0x1ff, 0x1fffff)

func serveStream(t testing.TB, cfg string, stream []byte) (*memConn, *bytes.Buffer, *Server) {
	t.Helper()
	rs, err := rules.Load("t.toml", []byte(cfg), nil)
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	s := New(rs, slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	c := &memConn{r: bytes.NewReader(stream)}
	s.serve(c)
	return c, &logs, s
}

func cfg(dry bool) string {
	return strings.ReplaceAll(testConfig, "%DRY%", map[bool]string{true: "true", false: "false"}[dry])
}

func TestNegotiation(t *testing.T) {
	macroLists := "\x00\x00\x00\x00v j\x00" + "\x00\x00\x00\x01{tls_version}\x00" +
		"\x00\x00\x00\x02{auth_authen} {tls_version}\x00" + "\x00\x00\x00\x03i {rcpt_addr}\x00" +
		"\x00\x00\x00\x04i\x00" + "\x00\x00\x00\x05i\x00"
	head := func(proto uint32) string {
		var b []byte
		b = binary.BigEndian.AppendUint32(b, 6)
		b = binary.BigEndian.AppendUint32(b, Actions)
		b = binary.BigEndian.AppendUint32(b, proto)
		return string(b)
	}
	tests := []struct {
		name  string
		offer []byte
		want  string // the reply's data; "" for none (connection refused)
		log   string
	}{
		{"Postfix 3.7", postfixOffer, head(Protocol) + macroLists, ""},
		{"Sendmail, 1 MB packets", optneg(6, 0x1ff, 0x1fffff|wire.ProtoMDS1M|wire.ProtoMDS256K), head(Protocol|wire.ProtoMDS1M) + macroLists, ""},
		{"256 KB packets", optneg(6, 0x1ff, 0x1fffff|wire.ProtoMDS256K), head(Protocol|wire.ProtoMDS256K) + macroLists, ""},
		{"no macro lists", optneg(6, 0xff, 0x1fffff), head(Protocol), "cannot be told which macros"},
		{"protocol 2", optneg(2, 0x1ff, 0x1fffff), "", "splitrelay needs 6"},
		{"no ADDRCPT_PAR", optneg(6, 0x17f, 0x1fffff), "", "does not offer the actions"},
		{"no NR_BODY", optneg(6, 0x1ff, 0x1fffff&^wire.ProtoNRBody), "", "does not offer the protocol options"},
		{"short", pkt(nil, 'O', "\x00\x00\x00\x06"), "", "want option negotiation"},
		{"not a negotiation", pkt(nil, 'C', "x\x00U"), "", "want option negotiation"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, logs, _ := serveStream(t, cfg(false), tt.offer)
			ps := c.packets(t)
			if tt.want == "" {
				if len(ps) != 0 {
					t.Fatalf("replied %q to a refused negotiation", ps)
				}
			} else if len(ps) != 1 || len(ps[0]) != 1 || ps[0][0].code != 'O' || ps[0][0].data != tt.want {
				t.Fatalf("reply %q\nwant %q", ps, tt.want)
			}
			if !strings.Contains(logs.String(), tt.log) {
				t.Fatalf("log lacks %q:\n%s", tt.log, logs)
			}
		})
	}
}

// mtaStream builds what Postfix sends: negotiation, connect and HELO,
// then the given packets.
func mtaStream(client string, more ...[]byte) []byte {
	b := append([]byte(nil), postfixOffer...)
	b = pkt(b, 'D', "C", "v\x00Postfix 3.7.11\x00j\x00mx.example.com\x00")
	b = pkt(b, 'C', "client.test\x00", "4", "\x10\xe1", client+"\x00")
	b = pkt(b, 'H', "client.test\x00")
	for _, m := range more {
		b = append(b, m...)
	}
	return b
}

func message(from, rcpt, stored string, headers ...string) []byte {
	b := pkt(nil, 'M', "<"+from+">\x00", "SIZE=100\x00", "BODY=8BITMIME\x00")
	b = pkt(b, 'D', "R", "{rcpt_addr}\x00"+stored+"\x00")
	b = pkt(b, 'R', "<"+rcpt+">\x00")
	b = pkt(b, 'D', "T", "i\x00Q1\x00")
	b = pkt(b, 'T')
	for i := 0; i+1 < len(headers); i += 2 {
		b = pkt(b, 'L', headers[i]+"\x00", headers[i+1]+"\x00")
	}
	b = pkt(b, 'B', "hello\r\n")
	b = pkt(b, 'D', "E", "i\x00Q1\x00")
	return pkt(b, 'E')
}

func codes(ws [][]replyPkt) []string {
	var out []string
	for _, w := range ws {
		var s []byte
		for _, p := range w {
			s = append(s, p.code)
		}
		out = append(out, string(s))
	}
	return out
}

func TestConnConversation(t *testing.T) {
	quitNC := pkt(nil, 'K')
	tests := []struct {
		name   string
		cfg    string
		stream []byte
		want   []string // each write's packet codes, after the negotiation
		data   map[int]string
	}{
		{"routed: delete, add, accept in one write", cfg(false),
			mtaStream("192.0.2.9", message("x@elsewhere.test", "Carol@Example.com", "carol@example.com", "From", " x@elsewhere.test")),
			[]string{"c", "c", "-2a"},
			map[int]string{2: "<Carol@Example.com>\x00"}},
		{"kept: accept alone", cfg(false),
			mtaStream("192.0.2.9", message("x@elsewhere.test", "alice@example.com", "alice@example.com")),
			[]string{"c", "c", "a"}, nil},
		{"dry run changes nothing", cfg(true),
			mtaStream("192.0.2.9", message("x@elsewhere.test", "carol@example.com", "carol@example.com")),
			[]string{"c", "c", "a"}, nil},
		{"relay refused with Google's words", relayConfig,
			mtaStream("192.0.2.9", message("x@elsewhere.test", "y@elsewhere.test", "y@elsewhere.test")),
			[]string{"y", "c", "a"},
			map[int]string{0: "550 5.7.0 Mail relay denied\x00"}},
		{"stored form unknown: tempfail", cfg(false),
			mtaStream("192.0.2.9", message("x@elsewhere.test", "carol(comment)@example.com", "")),
			[]string{"y", "c", "a"},
			map[int]string{0: "451 4.3.0 Requested action aborted: local error in processing\x00"}},
		{"two messages on one connection", cfg(false),
			mtaStream("192.0.2.9", message("x@elsewhere.test", "carol@example.com", "carol@example.com"), pkt(nil, 'A'),
				message("x@elsewhere.test", "alice@example.com", "alice@example.com")),
			[]string{"c", "c", "-2a", "c", "c", "a"}, nil},
		{"connection reused after quit-new-connection", cfg(false),
			mtaStream("192.0.2.9", message("x@elsewhere.test", "carol@example.com", "carol@example.com"), quitNC,
				mtaStream("192.0.2.10", message("x@elsewhere.test", "carol@example.com", "carol@example.com"))[len(postfixOffer):]),
			[]string{"c", "c", "-2a", "c", "c", "-2a"}, nil},
		{"unknown command ends the connection", cfg(false),
			mtaStream("192.0.2.9", pkt(nil, 'Z'), message("x@elsewhere.test", "alice@example.com", "alice@example.com")),
			nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, logs, _ := serveStream(t, tt.cfg, tt.stream)
			ws := c.packets(t)[1:]
			got := codes(ws)
			if strings.Join(got, " ") != strings.Join(tt.want, " ") {
				t.Fatalf("writes %q, want %q\n%s", got, tt.want, logs)
			}
			for i, want := range tt.data {
				if ws[i][0].data != want {
					t.Errorf("write %d: %q, want %q", i, ws[i][0].data, want)
				}
			}
		})
	}
}

// TestConnNoStateAcrossClients: after quit-new-connection the next
// client starts clean; an AUTH login of the last one does not let it
// relay.
func TestConnNoStateAcrossClients(t *testing.T) {
	relay := func(auth string) []byte {
		b := pkt(nil, 'D', "M", auth)
		b = pkt(b, 'M', "<app@example.com>\x00")
		b = pkt(b, 'D', "R", "{rcpt_addr}\x00y@elsewhere.test\x00")
		return pkt(b, 'R', "<y@elsewhere.test>\x00")
	}
	helo := pkt(pkt(nil, 'D', "H", "{tls_version}\x00TLSv1.3\x00"), 'H', "client.test\x00")
	first := mtaStream("192.0.2.99", helo, relay("{auth_authen}\x00app@example.com\x00"), pkt(nil, 'A'), pkt(nil, 'K'))
	second := mtaStream("192.0.2.99", relay(""))[len(postfixOffer):]
	c, logs, _ := serveStream(t, relayConfig, append(first, second...))
	ws := c.packets(t)[1:]
	if got := codes(ws); strings.Join(got, " ") != "c y" {
		t.Fatalf("writes %q, want c y\n%s", got, logs)
	}
	if !strings.HasPrefix(ws[1][0].data, "550 5.7.0 Mail relay denied") {
		t.Fatalf("second client: %q", ws[1][0].data)
	}
}

// TestRecordedConversations replays real MTA conversations, recorded by
// the end-to-end suite's TestE2EMilterWire and TestSendmailMilterWire
// (go test ./cmd/splitrelay/e2e -run MilterWire -record-milter): Postfix
// 3.7 and Sendmail 8.17 packets exactly as they send them (macro packets
// before headers and body, aborts, body chunks of 64 KB), each answered as
// the daemon answered them then, byte for byte.
func TestRecordedConversations(t *testing.T) {
	dir := filepath.Join("..", "testdata", "milter")
	streams, _ := filepath.Glob(filepath.Join(dir, "*.mta"))
	if len(streams) == 0 {
		t.Fatal("no recorded conversations in testdata/milter")
	}
	for _, f := range streams {
		t.Run(filepath.Base(f), func(t *testing.T) {
			mta, _, _ := strings.Cut(filepath.Base(f), "-")
			conf, err := os.ReadFile(filepath.Join(dir, mta+".toml"))
			if err != nil {
				t.Fatal(err)
			}
			stream, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			want, err := os.ReadFile(strings.TrimSuffix(f, ".mta") + ".ours")
			if err != nil {
				t.Fatal(err)
			}
			c, logs, _ := serveStream(t, string(conf), stream)
			if got := bytes.Join(c.writes, nil); !bytes.Equal(got, want) {
				t.Fatalf("replies differ\ngot  %q\nwant %q\n%s", got, want, logs)
			}
			// one write per reply: each write ends with a final reply
			for _, w := range c.packets(t) {
				if wire.IsModification(w[len(w)-1].code) {
					t.Fatalf("a write ends with a modification: %q", w)
				}
			}
			if strings.Contains(logs.String(), "protocol error") {
				t.Fatalf("protocol error:\n%s", logs)
			}
		})
	}
}

// FuzzConn feeds the server whatever an MTA might send. It must not
// panic or hang, every write must hold whole packets, and modifications
// may only come right before an end-of-message reply.
func FuzzConn(f *testing.F) {
	seeds, _ := filepath.Glob(filepath.Join("..", "testdata", "milter", "*.mta"))
	for _, s := range seeds {
		b, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add(mtaStream("192.0.2.9", message("x@elsewhere.test", "carol@example.com", "carol@example.com", "From", " x@elsewhere.test")))
	f.Add(mtaStream("192.0.2.9", message("", "carol@example.com", "carol@example.com"), pkt(nil, 'K'), pkt(nil, 'Q')))
	rs, err := rules.Load("t.toml", []byte(cfg(false)), nil)
	if err != nil {
		f.Fatal(err)
	}
	s := New(rs, slog.New(slog.DiscardHandler))
	f.Fuzz(func(t *testing.T, stream []byte) {
		c := &memConn{r: bytes.NewReader(stream)}
		s.serve(c)
		for _, w := range c.packets(t) {
			for i, p := range w {
				switch {
				case wire.IsModification(p.code):
					if i == len(w)-1 {
						t.Fatalf("write %q ends with a modification", w)
					}
				case strings.IndexByte("actyrdO", p.code) < 0:
					t.Fatalf("unknown reply %q in %q", p.code, w)
				}
			}
		}
	})
}

// TestConnPanicClosesConnection: a bug outside the guarded callbacks (here
// rules that vanished, which MAIL FROM dereferences) closes that one
// connection with a logged stack, without a reply that could accept
// anything, and the daemon goes on.
func TestConnPanicClosesConnection(t *testing.T) {
	rs, err := rules.Load("t.toml", []byte(cfg(false)), nil)
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	s := New(rs, slog.New(slog.NewTextHandler(&logs, nil)))
	s.SetRules(nil)
	c := &memConn{r: bytes.NewReader(mtaStream("192.0.2.9", message("x@elsewhere.test", "carol@example.com", "carol@example.com")))}
	s.serve(c)
	if got := codes(c.packets(t)); strings.Join(got, " ") != "O" {
		t.Fatalf("writes %q, want only the negotiation", got)
	}
	if !strings.Contains(logs.String(), "internal error; milter connection closed") || !strings.Contains(logs.String(), "stack=") {
		t.Fatalf("no logged stack:\n%s", logs.String())
	}
	s.SetRules(rs)
	c = &memConn{r: bytes.NewReader(mtaStream("192.0.2.9", message("x@elsewhere.test", "alice@example.com", "alice@example.com")))}
	s.serve(c)
	if got := codes(c.packets(t)[1:]); strings.Join(got, " ") != "c c a" {
		t.Fatalf("the next connection: writes %q", got)
	}
}

// TestConnProtocolErrorLogged: a broken conversation is logged with the
// connection's and the transaction's attributes, so that the message the
// MTA tempfails for it can be found, and counted.
func TestConnProtocolErrorLogged(t *testing.T) {
	b := pkt(nil, 'M', "<x@elsewhere.test>\x00")
	b = pkt(b, 'D', "R", "i\x00Q42\x00{rcpt_addr}\x00alice@example.com\x00")
	b = pkt(b, 'R', "<alice@example.com>\x00")
	b = pkt(b, 'L', "From\x00") // a header without its value
	_, logs, s := serveStream(t, cfg(false), mtaStream("192.0.2.9", b))
	line := ""
	for _, l := range strings.Split(logs.String(), "\n") {
		if strings.Contains(l, `msg="milter protocol error"`) {
			line = l
		}
	}
	for _, want := range []string{"conn_id=", "client_addr=192.0.2.9", "mail_from=x@elsewhere.test", "queue_id=Q42", "header packet"} {
		if !strings.Contains(line, want) {
			t.Errorf("protocol error line lacks %q: %q", want, line)
		}
	}
	if n := s.Stats().protocolErrors.Load(); n != 1 {
		t.Errorf("%d protocol errors counted, want 1", n)
	}
}

// TestConnClientAddress: the client address decides the relay networks,
// in every spelling MTAs send it; one that cannot be read matches none.
func TestConnClientAddress(t *testing.T) {
	const conf = `
[organization]
domains = ["example.com"]
[relay]
require_network = true
require_smtp_auth = false
networks = [{ cidr = "2001:db8::/112", description = "v6 clients", enabled = true },
            { cidr = "192.0.2.0/24", description = "v4 clients", enabled = true }]
`
	tests := []struct {
		family, addr string
		want         string // RCPT reply code
		logged       string // client_addr in the log
	}{
		{"6", "2001:db8::99", "c", "2001:db8::99"},
		{"6", "IPv6:2001:db8::99", "c", "2001:db8::99"}, // Sendmail's {client_addr}
		{"6", "[2001:db8::99]", "c", "2001:db8::99"},
		{"6", "IPv6:2001:db8::1:1", "y", "2001:db8::1:1"},
		{"6", "IPv6:2001:DB8:0:0:0:0:0:99", "c", "2001:db8::99"},
		{"4", "192.0.2.9", "c", "192.0.2.9"},
		{"4", "::ffff:192.0.2.9", "c", "192.0.2.9"}, // v4-mapped
		{"4", "198.51.100.1", "y", "198.51.100.1"},
		{"6", "IPv6:not-an-address", "y", "not-an-address"},
		// ::1 as the real MTAs send it (measured, e2e TestE2ERelayIPv6 and
		// TestSendmailRelayIPv6): Postfix 3.7 and Sendmail 8.17, which
		// writes IPv6 uncompressed.
		{"6", "::1", "y", "::1"},
		{"6", "IPv6:0:0:0:0:0:0:0:1", "y", "::1"},
	}
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			b := append([]byte(nil), postfixOffer...)
			b = pkt(b, 'C', "client.test\x00", tt.family, "\x10\xe1", tt.addr+"\x00")
			b = pkt(b, 'M', "<app@example.com>\x00")
			b = pkt(b, 'D', "R", "{rcpt_addr}\x00y@elsewhere.test\x00")
			b = pkt(b, 'R', "<y@elsewhere.test>\x00")
			c, logs, _ := serveStream(t, conf, b)
			if got := codes(c.packets(t)[1:]); strings.Join(got, " ") != tt.want {
				t.Fatalf("RCPT reply %q, want %q\n%s", got, tt.want, logs)
			}
			if !strings.Contains(logs.String(), " client_addr="+tt.logged+" ") {
				t.Errorf("want client_addr=%s in every line:\n%s", tt.logged, logs)
			}
		})
	}
}

// TestConnNegotiationTimeout: a connection that never negotiates is
// closed after the negotiation timeout; once negotiated, the same pause is
// an MTA waiting for its client and keeps the connection.
func TestConnNegotiationTimeout(t *testing.T) {
	rs, err := rules.Load("t.toml", []byte(cfg(false)), nil)
	if err != nil {
		t.Fatal(err)
	}
	s := New(rs, slog.New(slog.DiscardHandler))
	s.negTimeout = 200 * time.Millisecond
	sock := filepath.Join(t.TempDir(), "m.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(ln)
	t.Cleanup(func() { s.Shutdown(t.Context()) })

	silent, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	silent.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := silent.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("a silent connection: read %v, want EOF (closed by the server)", err)
	}

	mta, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer mta.Close()
	if _, err := mta.Write(postfixOffer); err != nil {
		t.Fatal(err)
	}
	time.Sleep(600 * time.Millisecond) // three negotiation timeouts
	if _, err := mta.Write(mtaStream("192.0.2.9", message("x@elsewhere.test", "alice@example.com", "alice@example.com"))[len(postfixOffer):]); err != nil {
		t.Fatal(err)
	}
	mta.SetReadDeadline(time.Now().Add(5 * time.Second))
	// negotiation reply, RCPT, DATA, end of message
	for i := 0; i < 4; i++ {
		var hdr [5]byte
		if _, err := io.ReadFull(mta, hdr[:]); err != nil {
			t.Fatalf("reply %d after the pause: %v", i, err)
		}
		if _, err := io.ReadFull(mta, make([]byte, binary.BigEndian.Uint32(hdr[:])-1)); err != nil {
			t.Fatal(err)
		}
	}
}

// TestShutdownDrains: Shutdown stops accepting at once, waits for the MTA
// to end the connections in progress (Postfix ends one with its SMTP
// session), and closes those left when its context ends.
func TestShutdownDrains(t *testing.T) {
	rs, err := rules.Load("t.toml", []byte(cfg(false)), nil)
	if err != nil {
		t.Fatal(err)
	}
	start := func(t *testing.T) (*Server, string, chan error) {
		s := New(rs, slog.New(slog.DiscardHandler))
		sock := filepath.Join(t.TempDir(), "m.sock")
		ln, err := net.Listen("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		served := make(chan error, 1)
		go func() { served <- s.Serve(ln) }()
		return s, sock, served
	}
	negotiated := func(t *testing.T, sock string) net.Conn {
		c, err := net.Dial("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Write(postfixOffer); err != nil {
			t.Fatal(err)
		}
		var hdr [4]byte
		if _, err := io.ReadFull(c, hdr[:]); err != nil {
			t.Fatal(err)
		}
		io.ReadFull(c, make([]byte, binary.BigEndian.Uint32(hdr[:])))
		return c
	}

	t.Run("the MTA ends its connection", func(t *testing.T) {
		s, sock, served := start(t)
		c := negotiated(t, sock)
		done := make(chan error, 1)
		go func() { done <- s.Shutdown(context.Background()) }()
		if err := <-served; err != nil {
			t.Fatalf("Serve after Shutdown: %v", err)
		}
		if _, err := net.Dial("unix", sock); err == nil {
			t.Fatal("still accepting after Shutdown")
		}
		select {
		case err := <-done:
			t.Fatalf("Shutdown returned %v with a connection in progress", err)
		case <-time.After(300 * time.Millisecond):
		}
		// the session goes on meanwhile
		c.Write(mtaStream("192.0.2.9", message("x@elsewhere.test", "alice@example.com", "alice@example.com"))[len(postfixOffer):])
		var hdr [5]byte
		if _, err := io.ReadFull(c, hdr[:]); err != nil || hdr[4] != 'c' {
			t.Fatalf("RCPT during the drain: %q %v", hdr, err)
		}
		c.Close()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("Shutdown: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Shutdown did not return after the last connection ended")
		}
	})
	t.Run("the context ends first", func(t *testing.T) {
		s, sock, _ := start(t)
		c := negotiated(t, sock)
		defer c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		if err := s.Shutdown(ctx); err != context.DeadlineExceeded {
			t.Fatalf("Shutdown = %v, want the context's deadline", err)
		}
		if _, err := c.Read(make([]byte, 1)); err != io.EOF {
			t.Fatalf("the connection left: read %v, want EOF", err)
		}
	})
}
