package limits

import (
	"encoding/binary"
	"errors"
	"slices"
)

// The persisted form of the counters (embedded store). Only committed
// usage is kept: reservations belong to live transactions, which a
// restart ends anyway (Postfix retries them).
//
//	user: 0x01, n, n × (minute, count), m, m × (hash[8 bytes LE], minute)
//	org:  0x01, n, n × (slot, count) for the day ring, then the same for the peak ring
//
// All numbers except the hash are unsigned varints.

const codecVersion = 1

var errCodec = errors.New("limits: damaged record")

func encodeUser(u *user) []byte {
	b := make([]byte, 0, 8+len(u.msgs.b)*6+len(u.rcpts)*12)
	b = append(b, codecVersion)
	b = binary.AppendUvarint(b, uint64(len(u.msgs.b)))
	for _, x := range u.msgs.b {
		b = binary.AppendUvarint(b, uint64(x.min))
		b = binary.AppendUvarint(b, uint64(x.n))
	}
	b = binary.AppendUvarint(b, uint64(len(u.rcpts)))
	for h, m := range u.rcpts {
		b = binary.LittleEndian.AppendUint64(b, h)
		b = binary.AppendUvarint(b, uint64(m))
	}
	return b
}

// decodeUser rebuilds a user, dropping what is at or before cut.
func decodeUser(b []byte, cut uint32) (*user, error) {
	r := reader{b: b}
	if r.byte() != codecVersion {
		return nil, errCodec
	}
	u := newUser()
	n := r.count(2)
	for range n {
		min, c := uint32(r.uvarint()), r.uvarint()
		if min > cut && c > 0 {
			u.msgs.add(min, int(c))
		}
	}
	m := r.count(9)
	seen := map[uint32]int{}
	for range m {
		h := r.uint64()
		min := uint32(r.uvarint())
		if min > cut {
			u.rcpts[h] = min
			seen[min]++
		}
	}
	if r.err != nil || len(r.b) != 0 {
		return nil, errCodec
	}
	mins := make([]uint32, 0, len(seen))
	for min := range seen {
		mins = append(mins, min)
	}
	slices.Sort(mins)
	for _, min := range mins {
		u.seen.add(min, seen[min])
	}
	if !slices.IsSortedFunc(u.msgs.b, func(a, b bucket) int { return int(a.min) - int(b.min) }) {
		return nil, errCodec
	}
	return u, nil
}

func encodeOrg(o *org) []byte {
	b := []byte{codecVersion}
	for _, r := range []*ring{&o.day, &o.peak} {
		n := 0
		for _, c := range r.counts {
			if c > 0 {
				n++
			}
		}
		b = binary.AppendUvarint(b, uint64(n))
		for i, c := range r.counts {
			if c > 0 {
				b = binary.AppendUvarint(b, uint64(r.slots[i]))
				b = binary.AppendUvarint(b, uint64(c))
			}
		}
	}
	return b
}

func decodeOrg(b []byte, o *org) error {
	r := reader{b: b}
	if r.byte() != codecVersion {
		return errCodec
	}
	for _, rg := range []*ring{&o.day, &o.peak} {
		n := r.count(2)
		for range n {
			slot, c := int64(r.uvarint()), r.uvarint()
			if r.err == nil && slot >= 0 && c <= 1<<31 {
				rg.add(slot, int(c))
			}
		}
	}
	if r.err != nil || len(r.b) != 0 {
		return errCodec
	}
	return nil
}

// reader reads varints, remembering the first error.
type reader struct {
	b   []byte
	err error
}

func (r *reader) byte() byte {
	if len(r.b) == 0 {
		r.err = errCodec
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *reader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = errCodec
		r.b = nil
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) uint64() uint64 {
	if len(r.b) < 8 {
		r.err = errCodec
		r.b = nil
		return 0
	}
	v := binary.LittleEndian.Uint64(r.b)
	r.b = r.b[8:]
	return v
}

// count reads a length whose elements take at least min bytes each, so a
// damaged length cannot make us allocate or loop far beyond the record.
func (r *reader) count(min int) int {
	n := r.uvarint()
	if n > uint64(len(r.b)/min) {
		r.err = errCodec
		r.b = nil
		return 0
	}
	return int(n)
}
