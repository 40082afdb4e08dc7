package ldapsync

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/go-ldap/ldap/v3"
)

// Active Directory returns at most MaxValRange values of a multi-valued
// attribute (1500, 5000 on newer domain controllers) in one answer. A
// group with more members carries "member;range=0-1499" instead of
// "member", and the client asks for "member;range=1500-*", then for the
// next range, until an answer's range ends in "*" (MS-ADTS 3.1.1.3.1.3.3,
// "Range Retrieval of Attribute Values"; draft-kashi-incremental-00).
// Read as a plain attribute, such a group would look empty: the members
// would be silently dropped and mail routed by the wrong membership.
// completeRanges reads the rest, and fails rather than return part of it.

// maxRangeRounds bounds the follow-up searches for one attribute of one
// entry: 10000 ranges are 15 million values at AD's smallest default
// range, far above any real group, yet end a server that never says "*".
const maxRangeRounds = 10_000

// searcher is the one operation the range loop needs: *ldap.Conn, or a
// fake Active Directory in tests (slapd cannot return ranged attributes:
// RFC 4512 allows no "=" in attribute options).
type searcher interface {
	Search(*ldap.SearchRequest) (*ldap.SearchResult, error)
}

var _ searcher = (*ldap.Conn)(nil)

// valueRange is the range option of a ranged attribute description: the
// values low to high (counted from 0) of the attribute; high is -1 for
// "*", the range that holds the last value.
type valueRange struct{ low, high int }

func (r valueRange) last() bool { return r.high < 0 }

func (r valueRange) String() string {
	if r.last() {
		return strconv.Itoa(r.low) + "-*"
	}
	return strconv.Itoa(r.low) + "-" + strconv.Itoa(r.high)
}

// parseRange reads desc as a description of attr. ok is false when desc
// is not attr with a range option: another attribute, attr itself, or
// attr with other options (a language tag), which are not values of attr
// as configured. err says why a range option is malformed: a range that
// is guessed at could drop members without a word.
func parseRange(desc, attr string) (r valueRange, ok bool, err error) {
	if len(desc) <= len(attr) || desc[len(attr)] != ';' || !strings.EqualFold(desc[:len(attr)], attr) {
		return valueRange{}, false, nil
	}
	var spec string
	options := strings.Split(desc[len(attr)+1:], ";")
	for _, o := range options {
		if len(o) >= len("range=") && strings.EqualFold(o[:len("range=")], "range=") {
			if ok {
				return valueRange{}, true, fmt.Errorf("attribute %q: more than one range option", desc)
			}
			spec, ok = o[len("range="):], true
		}
	}
	if !ok {
		return valueRange{}, false, nil
	}
	if len(options) > 1 {
		return valueRange{}, true, fmt.Errorf("attribute %q: range with other options", desc)
	}
	r, err = parseBounds(spec)
	if err != nil {
		return valueRange{}, true, fmt.Errorf("attribute %q: %w", desc, err)
	}
	return r, true, nil
}

// parseBounds reads "<low>-<high>" or "<low>-*": decimal digits only (no
// sign, space or underscore), low not above high.
func parseBounds(spec string) (valueRange, error) {
	lo, hi, found := strings.Cut(spec, "-")
	if !found {
		return valueRange{}, fmt.Errorf("malformed range %q: no '-'", spec)
	}
	low, err := bound(lo)
	if err != nil {
		return valueRange{}, fmt.Errorf("malformed range %q: low bound %q", spec, lo)
	}
	if hi == "*" {
		return valueRange{low: low, high: -1}, nil
	}
	high, err := bound(hi)
	if err != nil {
		return valueRange{}, fmt.Errorf("malformed range %q: high bound %q", spec, hi)
	}
	if low > high {
		return valueRange{}, fmt.Errorf("malformed range %q: low above high", spec)
	}
	return valueRange{low: low, high: high}, nil
}

// bound reads a range bound; 31 bits, so that high+1 cannot overflow.
func bound(s string) (int, error) {
	n, err := strconv.ParseUint(s, 10, 31)
	return int(n), err
}

// findRange returns the index in attrs of attr's ranged description and
// its range, or -1 when attr is not ranged. An answer with several ranges
// of attr, or with a range and whole values, is refused: which values
// are missing could only be guessed.
func findRange(attrs []*ldap.EntryAttribute, attr string) (int, valueRange, error) {
	at, whole := -1, false
	var r valueRange
	for i, a := range attrs {
		if strings.EqualFold(a.Name, attr) {
			whole = true
			continue
		}
		ar, ok, err := parseRange(a.Name, attr)
		if err != nil {
			return -1, r, err
		}
		if !ok {
			continue
		}
		if at >= 0 {
			return -1, r, fmt.Errorf("ranges %s and %s in one answer", r, ar)
		}
		at, r = i, ar
	}
	if at >= 0 && whole {
		return -1, r, fmt.Errorf("both whole values and range %s in one answer", r)
	}
	return at, r, nil
}

// completeRanges replaces every attribute of attrs that e carries as a
// range by the attribute with all its values, read from c with base
// searches on e's DN: on the connection of the paged search whose page
// holds e, between its pages (the server keeps a paged search's state
// until the next page is asked for). The error names the entry and the
// attribute.
func completeRanges(c searcher, e *ldap.Entry, attrs []string) error {
	for _, attr := range attrs {
		if err := completeRange(c, e, attr); err != nil {
			return fmt.Errorf("read %s of %s: %w", attr, e.DN, err)
		}
	}
	return nil
}

func completeRange(c searcher, e *ldap.Entry, attr string) error {
	i, r, err := findRange(e.Attributes, attr)
	if err != nil || i < 0 {
		return err
	}
	a := e.Attributes[i]
	if err := checkRange(r, 0, len(a.Values)); err != nil {
		return err
	}
	all := &ldap.EntryAttribute{Name: attr, Values: a.Values, ByteValues: a.ByteValues}
	for rounds := 0; !r.last(); rounds++ {
		if rounds == maxRangeRounds {
			return fmt.Errorf("no last range after %d searches (at %s)", rounds, r)
		}
		next := r.high + 1
		var got *ldap.EntryAttribute
		if r, got, err = askRange(c, e.DN, attr, next); err != nil {
			return err
		}
		if err := checkRange(r, next, len(got.Values)); err != nil {
			return err
		}
		all.Values = append(all.Values, got.Values...)
		all.ByteValues = append(all.ByteValues, got.ByteValues...)
	}
	e.Attributes[i] = all
	return nil
}

// checkRange verifies that r continues the values read so far: it starts
// at want, the next value, and, unless it is the last, holds as many
// values as it spans. A range that overlaps, skips or is short would
// leave the group with duplicated or missing members.
func checkRange(r valueRange, want, n int) error {
	switch {
	case r.low < want:
		return fmt.Errorf("range %s overlaps the values read, next is %d", r, want)
	case r.low > want:
		return fmt.Errorf("range %s skips values %d to %d", r, want, r.low-1)
	case !r.last() && n != r.high-r.low+1:
		return fmt.Errorf("range %s holds %d values, not %d", r, n, r.high-r.low+1)
	}
	return nil
}

// askRange asks for attr's values from low on with a base search on dn.
// The DN is the entry's own as the server sent it, used as the search
// base, never put into a filter: it needs no escaping.
func askRange(c searcher, dn, attr string, low int) (valueRange, *ldap.EntryAttribute, error) {
	desc := attr + ";range=" + strconv.Itoa(low) + "-*"
	req := ldap.NewSearchRequest(dn, ldap.ScopeBaseObject, ldap.NeverDerefAliases, 0, 0, false, "(objectClass=*)",
		[]string{desc}, nil)
	res, err := c.Search(req)
	if err != nil {
		return valueRange{}, nil, fmt.Errorf("search %s: %w", desc, err)
	}
	if len(res.Entries) != 1 {
		return valueRange{}, nil, fmt.Errorf("search %s: %d entries in the answer, want 1", desc, len(res.Entries))
	}
	attrs := res.Entries[0].Attributes
	i, r, err := findRange(attrs, attr)
	if err != nil {
		return valueRange{}, nil, fmt.Errorf("search %s: %w", desc, err)
	}
	if i < 0 {
		return valueRange{}, nil, fmt.Errorf("search %s: no range of %s in the answer", desc, attr)
	}
	return r, attrs[i], nil
}
