package milter

import (
	"context"
	"encoding/binary"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	gomilter "github.com/d--j/go-milter"

	"github.com/splitrelay/splitrelay/milter/wire"
	"github.com/splitrelay/splitrelay/rules"
)

// rawMTA speaks the MTA side of the milter protocol with pre-encoded
// packets and no allocations per message, so that a benchmark's allocs/op
// and syscalls are the server's own: what Postfix sends for one message
// (MAIL, RCPT with {rcpt_addr}, DATA, the From header, end of message), with
// the replies our protocol flags ask for.
type rawMTA struct {
	c   net.Conn
	msg []byte // every packet of one message, as Postfix pipelines them
	buf []byte
}

func pkt(b []byte, code byte, parts ...string) []byte {
	n := 1
	for _, p := range parts {
		n += len(p)
	}
	b = binary.BigEndian.AppendUint32(b, uint32(n))
	b = append(b, code)
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

func dialRaw(tb testing.TB, network, addr string) *rawMTA {
	c, err := net.Dial(network, addr)
	if err != nil {
		tb.Fatal(err)
	}
	m := &rawMTA{c: c, buf: make([]byte, 64<<10)}
	// Negotiate as Postfix 3.7 does: protocol 6, every action and protocol
	// option offered.
	var opt []byte
	opt = binary.BigEndian.AppendUint32(opt, 6)
	opt = binary.BigEndian.AppendUint32(opt, 0x1ff)
	opt = binary.BigEndian.AppendUint32(opt, 0x1fffff)
	m.send(tb, pkt(nil, 'O', string(opt)))
	m.replies(tb, 1)
	var conn []byte
	conn = pkt(conn, 'D', "C", "v\x00Postfix 3.7.11\x00")
	conn = pkt(conn, 'C', "client.test\x00", "4", "\x10\xe1", "192.0.2.99\x00")
	conn = pkt(conn, 'H', "client.test\x00")
	m.send(tb, conn)
	var b []byte
	b = pkt(b, 'M', "<someone@elsewhere.test>\x00")
	b = pkt(b, 'D', "R", "i\x00ABC123\x00{rcpt_addr}\x00carol@example.com\x00")
	b = pkt(b, 'R', "<carol@example.com>\x00")
	m.msg = b
	return m
}

func (m *rawMTA) send(tb testing.TB, b []byte) {
	if _, err := m.c.Write(b); err != nil {
		tb.Fatal(err)
	}
}

// replies reads n final replies (and the modifications before them).
func (m *rawMTA) replies(tb testing.TB, n int) {
	for n > 0 {
		if _, err := io.ReadFull(m.c, m.buf[:4]); err != nil {
			tb.Fatal(err)
		}
		l := binary.BigEndian.Uint32(m.buf)
		if _, err := io.ReadFull(m.c, m.buf[:l]); err != nil {
			tb.Fatal(err)
		}
		if !wire.IsModification(m.buf[0]) { // modifications precede the final reply
			n--
		}
	}
}

var (
	dataPkts = pkt(pkt(nil, 'D', "T", "i\x00ABC123\x00"), 'T')
	hdrPkts  = pkt(pkt(nil, 'L', "From\x00", " Someone <someone@elsewhere.test>\x00"), 'L', "Subject\x00", " hello\x00")
	eomPkts  = pkt(pkt(nil, 'D', "E", "i\x00ABC123\x00"), 'E')
)

// message sends one routed message and reads the replies to RCPT, DATA
// and end of message.
func (m *rawMTA) message(tb testing.TB) {
	m.send(tb, m.msg)
	m.replies(tb, 1) // RCPT
	m.send(tb, dataPkts)
	m.replies(tb, 1) // DATA
	m.send(tb, hdrPkts)
	m.send(tb, eomPkts)
	m.replies(tb, 1) // end of message: delete, add, accept
}

// benchServer serves testConfig on a unix socket for the benchmark, with
// logging at the default level (info) to io.Discard, until it ends.
func benchServer(b *testing.B) string {
	rs, err := rules.Load("t.toml", []byte(strings.ReplaceAll(testConfig, "%DRY%", "false")), nil)
	if err != nil {
		b.Fatal(err)
	}
	s := New(rs, slog.New(slog.NewTextHandler(io.Discard, nil)))
	sock := filepath.Join(b.TempDir(), "m.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		b.Fatal(err)
	}
	go s.Serve(ln)
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.Shutdown(ctx)
	})
	return sock
}

// BenchmarkTransaction is one whole routed message through a real milter
// connection on a unix socket: every protocol read and write, the rules
// transaction, the modifications, logging at the default level (info, to
// io.Discard). allocs/op are the server's: the client above allocates
// nothing per message.
func BenchmarkTransaction(b *testing.B) {
	sock := benchServer(b)
	m := dialRaw(b, "unix", sock)
	defer m.c.Close()
	m.message(b) // warm up
	b.ReportAllocs()
	for b.Loop() {
		m.message(b)
	}
}

// BenchmarkSessionGoMilterClient is one whole milter connection as
// Postfix makes it for an SMTP session with one routed message
// (negotiation, connect, HELO, MAIL, RCPT with {rcpt_addr}, DATA, two
// headers, body, end of message, close), driven by go-milter's client: a
// second implementation of the protocol against ours. Its allocs/op are
// the client's and the server's together (BenchmarkTransaction has the
// server's alone).
func BenchmarkSessionGoMilterClient(b *testing.B) {
	sock := benchServer(b)
	c := gomilter.NewClient("unix", sock, gomilter.WithAction(gomilter.OptAction(Actions)))
	b.ReportAllocs()
	for b.Loop() {
		macros := gomilter.NewMacroBag()
		macros.Set(gomilter.MacroMTAVersion, "Postfix 3.7.11")
		ss, err := c.Session(macros)
		if err != nil {
			b.Fatal(err)
		}
		must := func(act *gomilter.Action, err error) {
			if err != nil || act == nil || act.Type != gomilter.ActionContinue {
				b.Fatalf("%v %v", act, err)
			}
		}
		must(ss.Conn("client.test", gomilter.FamilyInet, 4321, "192.0.2.99"))
		must(ss.Helo("client.test"))
		must(ss.Mail("someone@elsewhere.test", ""))
		macros.Set(gomilter.MacroRcptAddr, "carol@example.com")
		macros.Set(gomilter.MacroQueueId, "ABC123")
		must(ss.Rcpt("carol@example.com", ""))
		must(ss.DataStart())
		must(ss.HeaderField("From", "Someone <someone@elsewhere.test>", nil))
		must(ss.HeaderField("Subject", "hello", nil))
		must(ss.HeaderEnd())
		mods, final, err := ss.BodyReadFrom(strings.NewReader("hello\r\n"))
		if err != nil || final.Type != gomilter.ActionAccept || len(mods) != 2 {
			b.Fatalf("end of message: %v %v %v", mods, final, err)
		}
		ss.Close()
	}
}
