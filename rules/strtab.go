package rules

import (
	"hash/maphash"
	"strings"
	"unicode/utf8"
	"unsafe"
)

// strtab is a set of distinct strings kept in one byte slice with an
// open-addressing hash index. Entry i is blob[ends[i-1]:ends[i]]. Each
// index slot holds the entry number and 32 bits of its hash, so a probe
// reads the blob only when the hash matches. A million addresses cost
// their bytes plus about 20 bytes each, and the
// garbage collector has no pointer to follow in any of it: a directory of
// a million users is three allocations, not two million (a
// map[string]bool of the same users takes three times the memory and
// every GC cycle walks it).
//
// A strtab is built by one goroutine with add, then only read.
type strtab struct {
	blob  []byte
	ends  []uint32
	index []uint64 // power-of-two size; 0 is empty, else hash>>32<<32 | entry number + 1
	seed  maphash.Seed
}

func newStrtab(capacity int) *strtab {
	t := &strtab{seed: maphash.MakeSeed()}
	size := 16
	for size*5 < capacity*8 { // at most 5/8 full once capacity is reached
		size <<= 1
	}
	t.index = make([]uint64, size)
	t.ends = make([]uint32, 0, capacity)
	return t
}

func (t *strtab) len() int { return len(t.ends) }

func (t *strtab) bytes(i int) []byte {
	start := uint32(0)
	if i > 0 {
		start = t.ends[i-1]
	}
	return t.blob[start:t.ends[i]]
}

// at returns entry i without copying: the blob is never written again
// once the table is built, so the string stays valid and immutable.
func (t *strtab) at(i int) string {
	b := t.bytes(i)
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

// find returns the entry number of s.
func (t *strtab) find(s string) (int, bool) {
	if t == nil || len(t.ends) == 0 {
		return 0, false
	}
	mask := uint64(len(t.index) - 1)
	hash := maphash.String(t.seed, s)
	tag := hash >> 32 << 32
	for h := hash & mask; ; h = (h + 1) & mask {
		x := t.index[h]
		if x == 0 {
			return 0, false
		}
		if x&^0xffffffff == tag && t.at(int(uint32(x)-1)) == s {
			return int(uint32(x) - 1), true
		}
	}
}

// addTail makes blob[from:] an entry: it returns its number, and false
// when it was already there (the tail is then removed again).
func (t *strtab) addTail(from int) (int, bool) {
	tail := t.blob[from:]
	if 8*(len(t.ends)+1) > 5*len(t.index) {
		t.grow()
	}
	mask := uint64(len(t.index) - 1)
	s := unsafe.String(unsafe.SliceData(tail), len(tail))
	hash := maphash.String(t.seed, s)
	tag := hash >> 32 << 32
	h := hash & mask
	for ; t.index[h] != 0; h = (h + 1) & mask {
		x := t.index[h]
		if i := int(uint32(x) - 1); x&^0xffffffff == tag && t.at(i) == s {
			t.blob = t.blob[:from]
			return i, false
		}
	}
	t.ends = append(t.ends, uint32(len(t.blob)))
	t.index[h] = tag | uint64(len(t.ends))
	return len(t.ends) - 1, true
}

// add adds s; see addTail.
func (t *strtab) add(s string) (int, bool) {
	from := len(t.blob)
	t.blob = append(t.blob, s...)
	return t.addTail(from)
}

func (t *strtab) grow() {
	t.index = make([]uint64, 2*len(t.index))
	mask := uint64(len(t.index) - 1)
	for i := range t.ends {
		hash := maphash.String(t.seed, t.at(i))
		h := hash & mask
		for t.index[h] != 0 {
			h = (h + 1) & mask
		}
		t.index[h] = hash>>32<<32 | uint64(i+1)
	}
}

// compact gives back the spare capacity of a built table when it is worth
// a copy (the loader sizes the blob from the files, so usually it is not).
func (t *strtab) compact() {
	if cap(t.blob)-len(t.blob) > len(t.blob)/8+4096 {
		t.blob = append([]byte(nil), t.blob...)
	}
	if cap(t.ends)-len(t.ends) > len(t.ends)/8+1024 {
		t.ends = append([]uint32(nil), t.ends...)
	}
}

// appendLower appends s with its letters lower-cased, as strings.ToLower
// would (the directory key of a local part), without a copy for ASCII.
func appendLower(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= utf8.RuneSelf {
			return append(dst, strings.ToLower(s)...)
		}
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		dst = append(dst, c)
	}
	return dst
}
