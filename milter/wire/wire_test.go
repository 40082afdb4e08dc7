package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

// pkt encodes one packet as an MTA sends it.
func pkt(code byte, data string) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(len(data)+1))
	return append(append(b, code), data...)
}

// chunked returns one read per call, of at most n bytes.
type chunked struct {
	b []byte
	n int
}

func (c *chunked) Read(p []byte) (int, error) {
	if len(c.b) == 0 {
		return 0, io.EOF
	}
	k := min(len(p), c.n, len(c.b))
	copy(p, c.b[:k])
	c.b = c.b[k:]
	return k, nil
}

func TestReaderPackets(t *testing.T) {
	stream := bytes.Join([][]byte{
		pkt(CmdMacro, "Ri\x00ABC\x00"),
		pkt(CmdRcpt, "<bob@example.com>\x00"),
		pkt(CmdData, ""),
		pkt(CmdBody, strings.Repeat("x", 40000)), // larger than the buffer
		pkt(CmdEOB, ""),
	}, nil)
	want := []struct {
		cmd  byte
		size int
	}{{CmdMacro, 7}, {CmdRcpt, 18}, {CmdData, 0}, {CmdBody, 40000}, {CmdEOB, 0}}
	for _, tt := range []struct {
		name string
		rd   io.Reader
	}{
		{"one read", bytes.NewReader(stream)},
		{"a byte per read", &chunked{stream, 1}},
		{"7 bytes per read", &chunked{stream, 7}},
		{"EOF with the data", iotest.DataErrReader(bytes.NewReader(stream))},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := NewReader(tt.rd, nil, 0, 16<<10, DataSize64K)
			for i, w := range want {
				cmd, data, err := r.Next()
				if err != nil {
					t.Fatalf("packet %d: %v", i, err)
				}
				if cmd != w.cmd || len(data) != w.size {
					t.Fatalf("packet %d: %q with %d bytes, want %q with %d", i, cmd, len(data), w.cmd, w.size)
				}
			}
			if _, _, err := r.Next(); err != io.EOF {
				t.Fatalf("after the last packet: %v, want io.EOF", err)
			}
		})
	}
}

// TestReaderShrinks: a 1 MB packet's buffer is not kept once it is done;
// a 64 KB body chunk's is.
func TestReaderShrinks(t *testing.T) {
	stream := bytes.Join([][]byte{
		pkt(CmdBody, strings.Repeat("x", DataSize1M)),
		pkt(CmdEOB, ""),
		pkt(CmdBody, strings.Repeat("x", DataSize64K)),
		pkt(CmdEOB, ""),
	}, nil)
	r := NewReader(bytes.NewReader(stream), nil, 0, 16<<10, DataSize1M)
	for i, want := range []int{1<<20 + 4, 16 << 10, 64<<10 + 4, 64<<10 + 4} {
		if _, _, err := r.Next(); err != nil {
			t.Fatal(err)
		}
		if len(r.buf) != want {
			t.Errorf("after packet %d: buffer of %d bytes, want %d", i, len(r.buf), want)
		}
	}
}

func TestReaderErrors(t *testing.T) {
	tests := []struct {
		name   string
		stream []byte
		want   error // nil: any error
	}{
		{"cut in the length", []byte{0, 0}, io.ErrUnexpectedEOF},
		{"cut in the data", pkt(CmdHelo, "client.test\x00")[:9], io.ErrUnexpectedEOF},
		{"length 0", []byte{0, 0, 0, 0}, nil},
		{"over the limit", binary.BigEndian.AppendUint32(nil, DataSize64K+2), ErrTooLarge},
		{"4 GB announced", []byte{0xff, 0xff, 0xff, 0xff, 'B'}, ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := NewReader(bytes.NewReader(tt.stream), nil, 0, 64, DataSize64K)
			_, _, err := r.Next()
			if err == nil || err == io.EOF {
				t.Fatalf("Next = %v, want an error", err)
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Fatalf("Next = %v, want %v", err, tt.want)
			}
		})
	}
}

// writes records each write(2).
type writes [][]byte

func (w *writes) Write(p []byte) (int, error) {
	*w = append(*w, bytes.Clone(p))
	return len(p), nil
}

func TestWriterOneWritePerFlush(t *testing.T) {
	var ws writes
	w := NewWriter(&ws, nil, 0)
	w.Start(RespDelRcpt)
	w.CString("<bob@example.com>")
	if err := w.End(DataSize64K); err != nil {
		t.Fatal(err)
	}
	w.Start(RespAddRcptPar)
	w.CString("<bob@example.com.legacy.splitrelay.invalid>")
	w.CString("ORCPT=rfc822;bob@example.com")
	if err := w.End(DataSize64K); err != nil {
		t.Fatal(err)
	}
	w.Reply(RespAccept)
	if len(ws) != 0 {
		t.Fatalf("%d writes before Flush", len(ws))
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if len(ws) != 1 {
		t.Fatalf("%d writes, want 1", len(ws))
	}
	r := NewReader(bytes.NewReader(ws[0]), nil, 0, 64, DataSize64K)
	var codes []byte
	for {
		cmd, _, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		codes = append(codes, cmd)
	}
	if string(codes) != "-2a" {
		t.Fatalf("packets %q, want -2a", codes)
	}
	if err := w.Flush(); err != nil || len(ws) != 1 {
		t.Fatalf("an empty Flush wrote: %d writes, %v", len(ws), err)
	}
}

func TestWriterLimit(t *testing.T) {
	var ws writes
	w := NewWriter(&ws, nil, 0)
	w.Reply(RespContinue)
	w.Start(RespReplBody)
	w.Bytes(make([]byte, 11))
	if err := w.End(10); err == nil {
		t.Fatal("a packet over the limit was accepted")
	}
	w.Flush()
	if len(ws) != 1 || len(ws[0]) != 5 {
		t.Fatalf("writes %q: the packet over the limit was not dropped alone", ws)
	}
}

func TestMacros(t *testing.T) {
	var m Macros
	m.Set(StageConnect, []byte("v\x00Postfix 3.7.11\x00j\x00mx.example.com\x00"))
	m.Set(StageMail, []byte("{auth_authen}\x00alice\x00i\x00OLD\x00"))
	m.Set(StageRcpt, []byte("{rcpt_addr}\x00bob@example.com\x00{i}\x00NEW\x00"))
	tests := []struct {
		name, want string
		ok         bool
	}{
		{"v", "Postfix 3.7.11", true},
		{"j", "mx.example.com", true},
		{"{auth_authen}", "alice", true},
		{"{rcpt_addr}", "bob@example.com", true},
		{"i", "NEW", true}, // latest stage first, {i} matches i
		{"{j}", "mx.example.com", true},
		{"{tls_version}", "", false},
		{"rcpt_addr", "", false}, // only one-letter names match with and without braces
	}
	for _, tt := range tests {
		v, ok := m.Lookup(tt.name)
		if string(v) != tt.want || ok != tt.ok {
			t.Errorf("Lookup(%q) = %q, %v; want %q, %v", tt.name, v, ok, tt.want, tt.ok)
		}
	}
	// A new MAIL clears the recipient's macros; the connection's stay.
	m.Set(StageMail, []byte("i\x00NEXT\x00"))
	if v := m.Get("{rcpt_addr}"); v != "" {
		t.Errorf("recipient macro survived the next MAIL: %q", v)
	}
	if v := m.Get("i"); v != "NEXT" {
		t.Errorf("i = %q, want NEXT", v)
	}
	if v := m.Get("v"); v != "Postfix 3.7.11" {
		t.Errorf("connect macro lost: v = %q", v)
	}
	m.Clear(StageMail)
	if v := m.Get("{auth_authen}"); v != "" {
		t.Errorf("Clear(StageMail) kept {auth_authen} = %q", v)
	}
	// Malformed lists end the scan without reading past them.
	m.Set(StageHelo, []byte("{tls_version}\x00"))
	if v, ok := m.Lookup("{tls_version}"); !ok || len(v) != 0 {
		t.Errorf("name without value: %q, %v; want set and empty", v, ok)
	}
	m.Set(StageHelo, []byte("{tls_version}"))
	if v, ok := m.Lookup("{tls_version}"); ok {
		t.Errorf("name without its NUL: %q, %v; want not set", v, ok)
	}
}

func TestNoReply(t *testing.T) {
	proto := uint32(ProtoNRConn | ProtoNRHelo | ProtoNRMail | ProtoNRHeader | ProtoNRBody)
	for cmd, want := range map[byte]bool{
		CmdConnect: true, CmdHelo: true, CmdMail: true, CmdRcpt: false, CmdData: false,
		CmdHeader: true, CmdEOH: false, CmdBody: true, CmdEOB: false,
		CmdMacro: true, CmdAbort: true, CmdQuit: true, CmdQuitNC: true, CmdUnknown: false,
	} {
		if got := NoReply(cmd, proto); got != want {
			t.Errorf("NoReply(%q) = %v, want %v", cmd, got, want)
		}
	}
}

func TestCString(t *testing.T) {
	for _, tt := range []struct {
		in, s, rest string
		ok          bool
	}{
		{"a\x00b\x00", "a", "b\x00", true},
		{"\x00", "", "", true},
		{"abc", "", "", false},
		{"", "", "", false},
	} {
		s, rest, ok := CString([]byte(tt.in))
		if string(s) != tt.s || string(rest) != tt.rest || ok != tt.ok {
			t.Errorf("CString(%q) = %q, %q, %v", tt.in, s, rest, ok)
		}
	}
}

func BenchmarkReader(b *testing.B) {
	var stream []byte
	for range 64 {
		stream = append(stream, pkt(CmdHeader, "Subject\x00 hello\x00")...)
	}
	rd := bytes.NewReader(stream)
	r := NewReader(rd, nil, 0, 16<<10, DataSize64K)
	b.ReportAllocs()
	for b.Loop() {
		rd.Reset(stream)
		for {
			if _, _, err := r.Next(); err != nil {
				break
			}
		}
	}
}
