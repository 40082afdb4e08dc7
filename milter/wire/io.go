package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"
)

// Deadliner is the part of a net.Conn that bounds a read or write in time.
type Deadliner interface {
	SetReadDeadline(time.Time) error
	SetWriteDeadline(time.Time) error
}

// Reader reads the MTA's packets through one buffer: a read(2) takes
// whatever the MTA has written so far, often several packets (Postfix
// pipelines those that want no reply), and the packets are then cut from
// the buffer without copying.
type Reader struct {
	rd   io.Reader
	dl   Deadliner     // nil: no deadline
	tmo  time.Duration // each read(2) must return within tmo
	buf  []byte
	r, w int // buf[r:w] is read and not yet returned
	max  int
	size int // the buffer's usual size
}

// keepLarge is the largest buffer kept once the packet that needed it is
// done: room for the 64 KB body chunks Postfix sends. A larger one (up to
// 1 MB, when the MTA negotiated SMFIP_MDS_1M) is dropped, so that idle
// connections hold little memory.
const keepLarge = 4 + 1 + DataSize64K

// ErrTooLarge is returned for a packet longer than the reader's limit.
var ErrTooLarge = errors.New("milter packet too large")

// NewReader returns a Reader of rd with a buffer of size bytes, accepting
// packets of up to max bytes of data. When dl is not nil, every read(2)
// gets a deadline timeout from its start.
func NewReader(rd io.Reader, dl Deadliner, timeout time.Duration, size, max int) *Reader {
	return &Reader{rd: rd, dl: dl, tmo: timeout, buf: make([]byte, size), max: max, size: size}
}

// Next returns the next packet's command byte and data. The data is a
// slice of the reader's buffer, valid until the next call to Next. At a
// packet boundary, a closed connection is io.EOF; within a packet,
// io.ErrUnexpectedEOF.
func (r *Reader) Next() (cmd byte, data []byte, err error) {
	if r.r == r.w && len(r.buf) > keepLarge {
		r.buf, r.r, r.w = make([]byte, r.size), 0, 0
	}
	if err := r.fill(4); err != nil {
		if err == io.ErrUnexpectedEOF && r.w == r.r {
			err = io.EOF
		}
		return 0, nil, err
	}
	n := int(binary.BigEndian.Uint32(r.buf[r.r:]))
	if n == 0 {
		return 0, nil, errors.New("milter packet of length 0 (no command byte)")
	}
	if n-1 > r.max {
		return 0, nil, fmt.Errorf("%w: %d bytes, the limit is %d", ErrTooLarge, n-1, r.max)
	}
	if err := r.fill(4 + n); err != nil {
		return 0, nil, err
	}
	p := r.buf[r.r+4 : r.r+4+n]
	r.r += 4 + n
	return p[0], p[1:], nil
}

// fill reads until buf[r:] holds n bytes, moving the unread part to the
// front (or into a larger buffer) when the end is reached.
func (r *Reader) fill(n int) error {
	for r.w-r.r < n {
		if r.r+n > len(r.buf) {
			if n > len(r.buf) {
				nb := make([]byte, n) // a packet larger than the buffer: grow for it
				r.w = copy(nb, r.buf[r.r:r.w])
				r.buf = nb
			} else {
				r.w = copy(r.buf, r.buf[r.r:r.w])
			}
			r.r = 0
		}
		if r.dl != nil {
			if err := r.dl.SetReadDeadline(time.Now().Add(r.tmo)); err != nil {
				return err
			}
		}
		m, err := r.rd.Read(r.buf[r.w:])
		r.w += m
		if err != nil {
			if r.w-r.r >= n {
				break
			}
			if err == io.EOF {
				return io.ErrUnexpectedEOF
			}
			return err
		}
	}
	return nil
}

// SetTimeout changes the time each read(2) may take from now on.
func (r *Reader) SetTimeout(d time.Duration) { r.tmo = d }

// Writer builds replies in one buffer and sends them with one write(2) per
// Flush: the modifications of end of message and its final reply leave
// together, and Postfix reads them all before acting.
type Writer struct {
	wr    io.Writer
	dl    Deadliner
	tmo   time.Duration
	out   []byte
	start int // where the packet being built starts; -1: none
}

// NewWriter returns a Writer to wr. When dl is not nil every write(2) gets
// a deadline timeout from its start.
func NewWriter(wr io.Writer, dl Deadliner, timeout time.Duration) *Writer {
	return &Writer{wr: wr, dl: dl, tmo: timeout, out: make([]byte, 0, 512), start: -1}
}

// Start begins a packet with reply code code.
func (w *Writer) Start(code byte) {
	w.start = len(w.out)
	w.out = append(w.out, 0, 0, 0, 0, code)
}

// String appends s to the packet's data.
func (w *Writer) String(s string) { w.out = append(w.out, s...) }

// CString appends s and its terminating NUL.
func (w *Writer) CString(s string) { w.out = append(append(w.out, s...), 0) }

// Bytes appends b.
func (w *Writer) Bytes(b []byte) { w.out = append(w.out, b...) }

// Byte appends c.
func (w *Writer) Byte(c byte) { w.out = append(w.out, c) }

// Uint32 appends v, big-endian.
func (w *Writer) Uint32(v uint32) { w.out = binary.BigEndian.AppendUint32(w.out, v) }

// End finishes the packet begun by Start. A packet whose data exceeds max
// bytes is dropped and reported: the MTA would refuse it.
func (w *Writer) End(max int) error {
	if w.start < 0 {
		return errors.New("milter: End without Start")
	}
	n := len(w.out) - w.start - 4 // command byte and data
	if n-1 > max {
		w.out, w.start = w.out[:w.start], -1
		return fmt.Errorf("milter reply of %d bytes, the limit is %d", n-1, max)
	}
	binary.BigEndian.PutUint32(w.out[w.start:], uint32(n))
	w.start = -1
	return nil
}

// Reply appends a packet without data.
func (w *Writer) Reply(code byte) {
	w.out = append(w.out, 0, 0, 0, 1, code)
}

// Discard forgets every packet not yet sent (the modifications of a
// message that is tempfailed instead).
func (w *Writer) Discard() { w.out, w.start = w.out[:0], -1 }

// Flush sends every complete packet in one write.
func (w *Writer) Flush() error {
	if len(w.out) == 0 {
		return nil
	}
	if w.start >= 0 {
		return errors.New("milter: Flush inside a packet")
	}
	if w.dl != nil {
		if err := w.dl.SetWriteDeadline(time.Now().Add(w.tmo)); err != nil {
			return err
		}
	}
	_, err := w.wr.Write(w.out)
	if cap(w.out) > 64<<10 { // a replaced body: do not keep its buffer
		w.out = make([]byte, 0, 512)
	} else {
		w.out = w.out[:0]
	}
	return err
}
