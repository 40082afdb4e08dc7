package milter

import (
	"bufio"
	"encoding/binary"
	"net"
)

// bufConn cuts the system calls per milter packet to what the protocol
// needs. go-milter v0.10.2 (internal/wire) reads each packet with two
// unbuffered reads (length, then body) and writes each with two writes
// (length and code, then data); per message that was ~2 syscalls per
// packet Postfix sends and ~2 per packet we send.
//
//   - Reads go through a buffer: one read(2) returns everything Postfix
//     has written so far (often several packets: it pipelines the ones
//     that want no reply).
//   - Writes are framed: a packet is sent when it is complete, in one
//     write(2), and the modification packets of end of message (add or
//     delete a recipient, change the sender…) are held until the final
//     reply that follows them, so a routed message's whole answer —
//     delete, add, accept — leaves in one write. Postfix reads them all
//     before acting (libmilter does the same: modifications are only
//     valid before the final reply).
type bufConn struct {
	net.Conn
	r    *bufio.Reader
	out  []byte // bytes written by go-milter, not yet sent
	scan int    // out[:scan] are complete packets being held
}

func newBufConn(c net.Conn) *bufConn {
	return &bufConn{Conn: c, r: bufio.NewReaderSize(c, 16<<10), out: make([]byte, 0, 512)}
}

func (c *bufConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// Write buffers p and sends what it completes: every packet up to and
// including the first complete one that is not a held modification.
func (c *bufConn) Write(p []byte) (int, error) {
	c.out = append(c.out, p...)
	for len(c.out)-c.scan >= 5 {
		n := int(binary.BigEndian.Uint32(c.out[c.scan:])) // code + data
		end := c.scan + 4 + n
		if end > len(c.out) {
			break // the rest of the packet is the next Write
		}
		code := c.out[c.scan+4]
		c.scan = end
		if held(code) {
			continue
		}
		if err := c.flush(); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// flush sends the complete packets held so far and keeps any partial one.
func (c *bufConn) flush() error {
	if c.scan == 0 {
		return nil
	}
	_, err := c.Conn.Write(c.out[:c.scan])
	rest := copy(c.out, c.out[c.scan:])
	c.out, c.scan = c.out[:rest], 0
	if cap(c.out) > 64<<10 { // a large body replacement: do not keep it
		c.out = append(make([]byte, 0, 512), c.out...)
	}
	return err
}

// held reports whether a reply code is a modification action, sent only
// at end of message and always followed by a final reply (milter protocol
// SMFIR_* codes).
func held(code byte) bool {
	switch code {
	case '+', // SMFIR_ADDRCPT
		'-', // SMFIR_DELRCPT
		'2', // SMFIR_ADDRCPT_PAR
		'e', // SMFIR_CHGFROM
		'h', // SMFIR_ADDHEADER
		'i', // SMFIR_INSHEADER
		'm', // SMFIR_CHGHEADER
		'b', // SMFIR_REPLBODY
		'q': // SMFIR_QUARANTINE
		return true
	}
	return false
}

// bufListener hands out bufConns.
type bufListener struct{ net.Listener }

func (l bufListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return c, err
	}
	return newBufConn(c), nil
}
