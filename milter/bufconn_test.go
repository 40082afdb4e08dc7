package milter

import (
	"bytes"
	"net"
	"testing"
)

// recConn records each Write it receives.
type recConn struct {
	net.Conn
	writes [][]byte
}

func (c *recConn) Write(p []byte) (int, error) {
	c.writes = append(c.writes, bytes.Clone(p))
	return len(p), nil
}

func packet(code byte, data string) [][]byte {
	n := len(data) + 1
	hdr := []byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n), code}
	if data == "" {
		return [][]byte{hdr}
	}
	return [][]byte{hdr, []byte(data)} // as go-milter writes it: two writes
}

func TestBufConnWrites(t *testing.T) {
	tests := []struct {
		name    string
		packets [][][]byte
		want    []string // the underlying writes, as code sequences
	}{
		{"continue alone", [][][]byte{packet('c', "")}, []string{"c"}},
		{"reply code in one write", [][][]byte{packet('y', "550 5.7.0 Mail relay denied\x00")}, []string{"y"}},
		{"routed message: delete, add, accept in one write", [][][]byte{
			packet('-', "<bob@example.com>\x00"), packet('2', "<bob@example.com.legacy.splitrelay.invalid>\x00ORCPT=rfc822;bob@example.com\x00"), packet('a', ""),
		}, []string{"-2a"}},
		{"two replies, two writes", [][][]byte{packet('c', ""), packet('c', "")}, []string{"c", "c"}},
		{"progress is never held", [][][]byte{packet('+', "<x@y>\x00"), packet('p', ""), packet('a', "")}, []string{"+p", "a"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc := &recConn{}
			c := newBufConn(rc)
			for _, p := range tt.packets {
				for _, w := range p {
					if n, err := c.Write(w); n != len(w) || err != nil {
						t.Fatalf("Write = %d, %v", n, err)
					}
				}
			}
			var got []string
			for _, w := range rc.writes {
				var codes []byte
				for len(w) >= 5 {
					n := int(w[0])<<24 | int(w[1])<<16 | int(w[2])<<8 | int(w[3])
					codes = append(codes, w[4])
					w = w[4+n:]
				}
				if len(w) != 0 {
					t.Fatalf("a write ends inside a packet: %q left", w)
				}
				got = append(got, string(codes))
			}
			if len(got) != len(tt.want) {
				t.Fatalf("writes %q, want %q", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Fatalf("writes %q, want %q", got, tt.want)
				}
			}
		})
	}
}
