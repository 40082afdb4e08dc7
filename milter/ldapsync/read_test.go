package ldapsync

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/splitrelay/splitrelay/rules"
)

// fakeDirectory is a whole Active Directory for read: the paged subtree
// searches of users and groups, and base searches for the further
// ranges of a group with more than maxRange members. log records the
// searches in order.
type fakeDirectory struct {
	cfg      *rules.LDAP
	users    []*ldap.Entry
	groups   []*ldap.Entry
	members  map[string][]string // group DN -> member DNs
	maxRange int
	broken   string // a group DN whose second range the server fails
	log      []string
}

var _ searcher = (*fakeDirectory)(nil)

func (f *fakeDirectory) Search(req *ldap.SearchRequest) (*ldap.SearchResult, error) {
	if req.Scope == ldap.ScopeBaseObject {
		return f.rangeSearch(req)
	}
	entries := f.users
	if req.Filter == f.cfg.GroupFilter {
		entries = f.groups
	}
	paging, _ := ldap.FindControl(req.Controls, ldap.ControlTypePaging).(*ldap.ControlPaging)
	if paging == nil {
		return nil, ldap.NewError(ldap.LDAPResultSizeLimitExceeded, fmt.Errorf("fake: search not paged"))
	}
	from, _ := strconv.Atoi(string(paging.Cookie))
	to := min(from+int(paging.PagingSize), len(entries))
	f.log = append(f.log, fmt.Sprintf("page %s %d-%d", req.Filter, from, to))
	next := &ldap.ControlPaging{}
	if to < len(entries) {
		next.SetCookie([]byte(strconv.Itoa(to)))
	}
	page := make([]*ldap.Entry, 0, to-from)
	for _, e := range entries[from:to] {
		page = append(page, f.answer(e, 0))
	}
	return &ldap.SearchResult{Entries: page, Controls: []ldap.Control{next}}, nil
}

func (f *fakeDirectory) rangeSearch(req *ldap.SearchRequest) (*ldap.SearchResult, error) {
	var low int
	if _, err := fmt.Sscanf(req.Attributes[0], "member;range=%d-*", &low); err != nil {
		return nil, err
	}
	f.log = append(f.log, "range "+req.BaseDN+" "+req.Attributes[0])
	if req.BaseDN == f.broken && low > f.maxRange {
		return nil, ldap.NewError(ldap.LDAPResultUnavailable, fmt.Errorf("fake: unavailable"))
	}
	for _, g := range f.groups {
		if g.DN == req.BaseDN {
			a := f.answer(g, low)
			return &ldap.SearchResult{Entries: []*ldap.Entry{{DN: g.DN, Attributes: a.Attributes[1:]}}}, nil
		}
	}
	return nil, ldap.NewError(ldap.LDAPResultNoSuchObject, fmt.Errorf("fake: no %s", req.BaseDN))
}

// answer is e as the server sends it, with the members from low on: a
// range of them when there are more than maxRange.
func (f *fakeDirectory) answer(e *ldap.Entry, low int) *ldap.Entry {
	m, ok := f.members[e.DN]
	if !ok {
		return e
	}
	out := &ldap.Entry{DN: e.DN, Attributes: e.Attributes}
	if low == 0 && len(m) <= f.maxRange {
		out.Attributes = append(slices.Clip(out.Attributes), &ldap.EntryAttribute{Name: "member", Values: m})
		return out
	}
	a := adRanges(m, f.maxRange, false, same)(low)
	out.Attributes = append(slices.Clip(out.Attributes), &ldap.EntryAttribute{Name: a.desc, Values: a.vals})
	return out
}

// newFakeDirectory: users u00…u19, and groups small (2 members), big (8)
// and bigger (19, with small nested), served in ranges of 3 and pages of 2.
func newFakeDirectory(cfg *rules.LDAP) *fakeDirectory {
	f := &fakeDirectory{cfg: cfg, members: map[string][]string{}, maxRange: 3}
	dn := func(cn string) string { return "CN=" + cn + ",DC=corp,DC=example,DC=com" }
	var users []string
	for i := range 20 {
		u := fmt.Sprintf("u%02d", i)
		users = append(users, dn(u))
		f.users = append(f.users, &ldap.Entry{DN: dn(u), Attributes: []*ldap.EntryAttribute{{Name: "mail", Values: []string{u + "@example.com"}}}})
	}
	group := func(cn string, members ...string) {
		f.groups = append(f.groups, &ldap.Entry{DN: dn(cn), Attributes: []*ldap.EntryAttribute{{Name: "mail", Values: []string{cn + "@example.com"}}}})
		f.members[dn(cn)] = members
	}
	group("small", users[0:2]...)
	group("big", users[2:10]...)
	group("bigger", append(users[1:19], dn("small"))...)
	return f
}

func fakeConfig() *rules.LDAP {
	return &rules.LDAP{BaseDN: "DC=corp,DC=example,DC=com", UserFilter: rules.DefaultLDAPUserFilter, GroupFilter: rules.DefaultLDAPGroupFilter,
		AddressAttributes: []string{"mail", "proxyAddresses"}, MemberAttributes: []string{"member"}, PageSize: 2, Timeout: time.Minute}
}

// TestReadRanges: a sync reads every member of the groups that come in
// ranges, with base searches between the pages of the paged group search.
func TestReadRanges(t *testing.T) {
	cfg := fakeConfig()
	f := newFakeDirectory(cfg)
	e, err := read(f, cfg)
	if err != nil {
		t.Fatal(err)
	}
	addrs := func(from, to int) []string {
		var out []string
		for i := from; i < to; i++ {
			out = append(out, fmt.Sprintf("u%02d@example.com", i))
		}
		return out
	}
	for g, want := range map[string][]string{
		"small@example.com":  addrs(0, 2),
		"big@example.com":    addrs(2, 10),
		"bigger@example.com": append(addrs(1, 19), "small@example.com", "u00@example.com"),
	} {
		if got := e.Groups[g]; !slices.Equal(got, want) {
			t.Errorf("%s: %q, want %q", g, got, want)
		}
	}
	groups, users := "page "+cfg.GroupFilter, "page "+cfg.UserFilter
	big, bigger := "range CN=big,DC=corp,DC=example,DC=com member;range=", "range CN=bigger,DC=corp,DC=example,DC=com member;range="
	want := []string{groups + " 0-2", big + "3-*", big + "6-*", groups + " 2-3",
		bigger + "3-*", bigger + "6-*", bigger + "9-*", bigger + "12-*", bigger + "15-*", bigger + "18-*"}
	for i := 0; i < 20; i += 2 {
		want = append(want, fmt.Sprintf("%s %d-%d", users, i, i+2))
	}
	if !slices.Equal(f.log, want) {
		t.Errorf("searches:\n%s\nwant:\n%s", strings.Join(f.log, "\n"), strings.Join(want, "\n"))
	}
}

// TestSyncRangeFailure: a group whose ranges cannot all be read fails
// the sync, names the group and the attribute in the log, and leaves
// the directory in use as it was, not with the group truncated.
func TestSyncRangeFailure(t *testing.T) {
	cfg := fakeConfig()
	f := newFakeDirectory(cfg)
	var log bytes.Buffer
	rec := &recorder{}
	s := New(*cfg, t.TempDir(), slog.New(slog.NewTextHandler(&log, nil)), rec, rec.apply)
	s.fetch = func(_ context.Context, cfg *rules.LDAP) (*rules.Entries, error) { f.log = nil; return read(f, cfg) }
	if !s.Sync(context.Background()) {
		t.Fatalf("sync failed: %s", log.String())
	}
	d := rec.dir
	if !d.Member("bigger@example.com", "u18@example.com") {
		t.Fatal("u18 is not a member of bigger")
	}

	f.broken = "CN=bigger,DC=corp,DC=example,DC=com"
	if s.Sync(context.Background()) {
		t.Fatal("sync with a range that fails succeeded")
	}
	if rec.dir != d || !d.Member("bigger@example.com", "u18@example.com") {
		t.Error("the directory in use changed")
	}
	if !slices.Equal(rec.oks, []string{Success, Failure}) {
		t.Errorf("observed %q", rec.oks)
	}
	for _, want := range []string{"directory sync failed; keeping the directory in use",
		"search groups " + cfg.GroupFilter + ": read member of CN=bigger,DC=corp,DC=example,DC=com: search member;range=6-*: LDAP Result Code 52"} {
		if !strings.Contains(log.String(), want) {
			t.Errorf("log without %q:\n%s", want, log.String())
		}
	}
	if last := f.log[len(f.log)-1]; !strings.HasSuffix(last, "member;range=6-*") {
		t.Errorf("searched on after the failure: %s", last)
	}
}
