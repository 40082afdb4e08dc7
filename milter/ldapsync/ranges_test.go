package ldapsync

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/go-ldap/ldap/v3"
)

func TestParseRange(t *testing.T) {
	for _, tt := range []struct {
		desc    string
		want    valueRange
		ok      bool
		wantErr string
	}{
		{desc: "member;range=0-1499", want: valueRange{0, 1499}, ok: true},
		{desc: "member;range=1500-*", want: valueRange{1500, -1}, ok: true},
		{desc: "Member;Range=3000-*", want: valueRange{3000, -1}, ok: true},
		{desc: "MEMBER;RANGE=5-5", want: valueRange{5, 5}, ok: true},
		{desc: "member;range=0007-0010", want: valueRange{7, 10}, ok: true},
		{desc: "member"},
		{desc: "memberOf;range=0-1499"},
		{desc: "members;range=0-1499"},
		{desc: "mem;range=0-1499"},
		{desc: "member;lang-en"},
		{desc: "member;"},
		{desc: "member;range=", ok: true, wantErr: `no '-'`},
		{desc: "member;range=1500", ok: true, wantErr: `no '-'`},
		{desc: "member;range=-*", ok: true, wantErr: `low bound ""`},
		{desc: "member;range=*-*", ok: true, wantErr: `low bound "*"`},
		{desc: "member;range=+1-5", ok: true, wantErr: `low bound "+1"`},
		{desc: "member;range= 1-5", ok: true, wantErr: `low bound " 1"`},
		{desc: "member;range=1_0-20", ok: true, wantErr: `low bound "1_0"`},
		{desc: "member;range=0x10-20", ok: true, wantErr: `low bound "0x10"`},
		{desc: "member;range=1-", ok: true, wantErr: `high bound ""`},
		{desc: "member;range=1-2-3", ok: true, wantErr: `high bound "2-3"`},
		{desc: "member;range=1-**", ok: true, wantErr: `high bound "**"`},
		{desc: "member;range=1-5 ", ok: true, wantErr: `high bound "5 "`},
		{desc: "member;range=5-3", ok: true, wantErr: "low above high"},
		{desc: "member;range=2147483648-*", ok: true, wantErr: "low bound"},
		{desc: "member;range=0-2147483648", ok: true, wantErr: "high bound"},
		{desc: "member;range=0-2;range=3-*", ok: true, wantErr: "more than one range"},
		{desc: "member;binary;range=0-2", ok: true, wantErr: "other options"},
		{desc: "member;range=0-2;binary", ok: true, wantErr: "other options"},
	} {
		t.Run(tt.desc, func(t *testing.T) {
			r, ok, err := parseRange(tt.desc, "member")
			if ok != tt.ok || (err == nil) != (tt.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) ||
				(err == nil && r != tt.want) {
				t.Errorf("parseRange = %v, %v, %v; want %v, %v, error with %q", r, ok, err, tt.want, tt.ok, tt.wantErr)
			}
			if err != nil && !strings.Contains(err.Error(), fmt.Sprintf("%q", tt.desc)) {
				t.Errorf("error %q does not quote the description", err)
			}
		})
	}
}

// FuzzRange: parseRange never panics; a range it accepts is well formed
// and reads back the same from its own spelling.
func FuzzRange(f *testing.F) {
	for _, s := range []string{"member;range=0-1499", "member;range=1500-*", "Member;RANGE=3000-*", "member",
		"member;range=5-3", "member;range=x-*", "member;binary;range=0-2", "member;range=0-2;range=3-*", "member;range=99999999999-*"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, desc string) {
		r, ok, err := parseRange(desc, "member")
		if !ok {
			if err != nil {
				t.Fatalf("not ranged, yet error %v", err)
			}
			return
		}
		if !strings.EqualFold(desc[:len("member;")], "member;") {
			t.Fatalf("%q taken for a range of member", desc)
		}
		if err != nil {
			return
		}
		if r.low < 0 || (r.high != -1 && r.high < r.low) {
			t.Fatalf("%q: range %+v", desc, r)
		}
		again, ok, err := parseRange("member;range="+r.String(), "member")
		if !ok || err != nil || again != r {
			t.Fatalf("%q: %v reads back as %v, %v, %v", desc, r, again, ok, err)
		}
	})
}

// answer is one attribute of the fake's answer to a range search.
type answer struct {
	desc    string // "" for an answer without the attribute
	vals    []string
	both    bool  // the whole attribute too, beside the range
	noEntry bool  // the entry is gone
	err     error // the search fails
}

// fakeAD answers the base searches on one entry like Active Directory:
// "member;range=<low>-*" gets serve(low). Any other search is an error.
type fakeAD struct {
	dn    string
	serve func(low int) answer
	asked []string
}

var _ searcher = (*fakeAD)(nil)

func (f *fakeAD) Search(req *ldap.SearchRequest) (*ldap.SearchResult, error) {
	var low int
	_, err := fmt.Sscanf(strings.ToLower(strings.Join(req.Attributes, " ")), "member;range=%d-*", &low)
	if req.Scope != ldap.ScopeBaseObject || req.BaseDN != f.dn || req.Filter != "(objectClass=*)" || len(req.Attributes) != 1 || err != nil ||
		!strings.EqualFold(req.Attributes[0], fmt.Sprintf("member;range=%d-*", low)) {
		return nil, ldap.NewError(ldap.LDAPResultOperationsError, fmt.Errorf("fake: unexpected search %q %d %q %q", req.BaseDN, req.Scope, req.Filter, req.Attributes))
	}
	f.asked = append(f.asked, req.Attributes[0])
	a := f.serve(low)
	if a.err != nil {
		return nil, a.err
	}
	if a.noEntry {
		return &ldap.SearchResult{}, nil
	}
	return &ldap.SearchResult{Entries: []*ldap.Entry{{DN: f.dn, Attributes: a.attrs()}}}, nil
}

func (a answer) attrs() []*ldap.EntryAttribute {
	var out []*ldap.EntryAttribute
	if a.both {
		out = append(out, &ldap.EntryAttribute{Name: "member", Values: []string{"CN=Whole,DC=corp,DC=example,DC=com"}})
	}
	if a.desc != "" {
		out = append(out, &ldap.EntryAttribute{Name: a.desc, Values: a.vals})
	}
	return out
}

// adRanges serves members maxRange at a time, as AD does, the
// descriptions spelled by spell. With emptyTail a full range is never
// the last: a count that is a multiple of maxRange ends with an empty
// "<count>-*" (what AD is reported to do; Samba ends with the full one).
func adRanges(members []string, maxRange int, emptyTail bool, spell func(string) string) func(int) answer {
	return func(low int) answer {
		low = min(low, len(members))
		end := min(low+maxRange, len(members))
		vals := members[low:end]
		desc := fmt.Sprintf("member;range=%d-%d", low, end-1)
		if end == len(members) && !(emptyTail && len(vals) == maxRange) {
			desc = fmt.Sprintf("member;range=%d-*", low)
		}
		return answer{desc: spell(desc), vals: vals}
	}
}

// tamper serves members three at a time, but answers bad for low.
func tamper(members []string, low int, bad answer) func(int) answer {
	good := adRanges(members, 3, false, same)
	return func(l int) answer {
		if l == low {
			return bad
		}
		return good(l)
	}
}

func same(s string) string { return s }

func memberDNs(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("CN=User %05d,OU=People,DC=corp,DC=example,DC=com", i)
	}
	return out
}

const bigGroup = "CN=All Staff,OU=Groups,DC=corp,DC=example,DC=com"

func TestCompleteRanges(t *testing.T) {
	m10, m3000, m4000, m12001 := memberDNs(10), memberDNs(3000), memberDNs(4000), memberDNs(12001)
	special := `CN=\#R&D (Zürich)\, *all*\+ext \"ops\"\;x\<y\>=z,OU=Groups,DC=corp,DC=example,DC=com`
	for _, tt := range []struct {
		name    string
		dn      string
		attr    string  // configured; "member" if ""
		first   *answer // the entry as the group search returns it; serve(0) if nil
		serve   func(low int) answer
		want    []string
		asked   int    // searches for further ranges
		wantErr string // in the error, after "read member of <dn>: "
	}{
		{name: "not ranged", first: &answer{desc: "member", vals: m10}, want: m10},
		{name: "ranges of 1500", serve: adRanges(m4000, 1500, false, same), want: m4000, asked: 2},
		{name: "ranges of 5000", serve: adRanges(m12001, 5000, false, same), want: m12001, asked: 2},
		{name: "ranges of 3", serve: adRanges(m10, 3, false, same), want: m10, asked: 3},
		{name: "one range, whole", serve: adRanges(m10, 10, false, same), want: m10},
		{name: "exact multiple, last full", serve: adRanges(m3000, 1500, false, same), want: m3000, asked: 1},
		{name: "exact multiple, empty last range", serve: adRanges(m3000, 1500, true, same), want: m3000, asked: 2},
		{name: "ranges of 3, empty last range", serve: adRanges(m10[:9], 3, true, same), want: m10[:9], asked: 3},
		{name: "Member;Range=", serve: adRanges(m10, 3, false, func(s string) string { return strings.Replace(s, "member;range", "Member;Range", 1) }), want: m10, asked: 3},
		{name: "MEMBER;RANGE=", serve: adRanges(m10, 3, false, strings.ToUpper), want: m10, asked: 3},
		{name: "configured MEMBER", attr: "MEMBER", serve: adRanges(m10, 3, false, same), want: m10, asked: 3},
		{name: "special characters in the DN", dn: special, serve: adRanges(m4000, 1500, true, same), want: m4000, asked: 2},

		{name: "overlapping range", asked: 1, serve: tamper(m10, 3, answer{desc: "member;range=2-4", vals: m10[2:5]}),
			wantErr: "range 2-4 overlaps the values read, next is 3"},
		{name: "same range again", asked: 1, serve: tamper(m10, 3, answer{desc: "member;range=0-2", vals: m10[0:3]}),
			wantErr: "range 0-2 overlaps"},
		{name: "gapped range", asked: 1, serve: tamper(m10, 3, answer{desc: "member;range=4-6", vals: m10[4:7]}),
			wantErr: "range 4-6 skips values 3 to 3"},
		{name: "gapped last range", asked: 2, serve: tamper(m10, 6, answer{desc: "member;range=9-*", vals: m10[9:]}),
			wantErr: "range 9-* skips values 6 to 8"},
		{name: "first range not from 0", first: &answer{desc: "member;range=1-3", vals: m10[1:4]},
			wantErr: "range 1-3 skips values 0 to 0"},
		{name: "short range", asked: 1, serve: tamper(m10, 3, answer{desc: "member;range=3-5", vals: m10[3:5]}),
			wantErr: "range 3-5 holds 2 values, not 3"},
		{name: "long range", asked: 1, serve: tamper(m10, 3, answer{desc: "member;range=3-5", vals: m10[3:7]}),
			wantErr: "range 3-5 holds 4 values, not 3"},
		{name: "never ends", serve: func(low int) answer {
			return answer{desc: fmt.Sprintf("member;range=%d-%d", low, low), vals: []string{"x"}}
		},
			asked: maxRangeRounds, wantErr: "no last range after 10000 searches (at 10000-10000)"},
		{name: "malformed first range", first: &answer{desc: "member;range=0-abc", vals: m10[:3]},
			wantErr: `attribute "member;range=0-abc": malformed range "0-abc": high bound "abc"`},
		{name: "malformed later range", asked: 1, serve: tamper(m10, 3, answer{desc: "member;range=3-", vals: m10[3:6]}),
			wantErr: `search member;range=3-*: attribute "member;range=3-": malformed range "3-": high bound ""`},
		{name: "low above high", asked: 1, serve: tamper(m10, 3, answer{desc: "member;range=5-3"}),
			wantErr: `low above high`},
		{name: "range with an option", first: &answer{desc: "member;range=0-2;binary", vals: m10[:3]},
			wantErr: "range with other options"},
		{name: "no range in the answer", asked: 1, serve: tamper(m10, 3, answer{}),
			wantErr: "search member;range=3-*: no range of member in the answer"},
		{name: "range option ignored", asked: 1, serve: tamper(m10, 3, answer{desc: "member", vals: m10}),
			wantErr: "no range of member in the answer"},
		{name: "whole values and a range", first: &answer{desc: "member;range=0-2", vals: m10[:3], both: true},
			wantErr: "both whole values and range 0-2 in one answer"},
		{name: "entry gone", asked: 2, serve: tamper(m10, 6, answer{noEntry: true}),
			wantErr: "search member;range=6-*: 0 entries in the answer, want 1"},
		{name: "search fails", asked: 1, serve: tamper(m10, 3, answer{err: ldap.NewError(ldap.LDAPResultBusy, errors.New("busy"))}),
			wantErr: "search member;range=3-*: LDAP Result Code 51"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dn, attr := tt.dn, tt.attr
			if dn == "" {
				dn = bigGroup
			}
			if attr == "" {
				attr = "member"
			}
			f := &fakeAD{dn: dn, serve: tt.serve}
			if f.serve == nil {
				f.serve = func(int) answer { t.Fatal("searched for a range"); return answer{} }
			}
			first := tt.first
			if first == nil {
				a := f.serve(0)
				first = &a
			}
			e := &ldap.Entry{DN: dn, Attributes: append([]*ldap.EntryAttribute{{Name: "mail", Values: []string{"all@example.com"}}}, first.attrs()...)}
			err := completeRanges(f, e, []string{"mail", attr})
			if len(f.asked) != tt.asked {
				t.Errorf("%d searches for ranges, want %d: %q", len(f.asked), tt.asked, f.asked[:min(len(f.asked), 5)])
			}
			if tt.wantErr != "" {
				prefix := "read " + attr + " of " + dn + ": "
				if err == nil || !strings.HasPrefix(err.Error(), prefix) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want %q…%q", err, prefix, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := values(e, attr); !slices.Equal(got, tt.want) {
				t.Errorf("%d members, want %d", len(got), len(tt.want))
			}
			if got := values(e, "mail"); !slices.Equal(got, []string{"all@example.com"}) {
				t.Errorf("mail %q", got)
			}
		})
	}
}
