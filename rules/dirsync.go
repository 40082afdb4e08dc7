package rules

import (
	"fmt"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// LDAP is [directory.ldap]: an LDAP server or Active Directory that the
// daemon reads the directory from in the background (milter/ldapsync).
// rules only validates it; the sync hands its result back as Entries.
type LDAP struct {
	// URL is ldap://host[:port] or ldaps://host[:port].
	URL string
	// StartTLS upgrades an ldap:// connection before binding (default
	// true); ldaps:// is TLS from the start.
	StartTLS bool
	// CAFile is a PEM file of the CAs that sign the server's certificate;
	// "" uses the system's.
	CAFile string
	// BindDN and PasswordFile authenticate the sync (a simple bind); an
	// empty BindDN binds anonymously.
	BindDN, PasswordFile string
	// BaseDN is where both searches start (whole subtree).
	BaseDN string
	// UserFilter selects the accounts of the primary system; GroupFilter
	// the groups.
	UserFilter, GroupFilter string
	// AddressAttributes hold an entry's addresses: the first value found
	// is the primary address, the others its aliases. proxyAddresses
	// values count when they start with smtp: (SMTP: is the primary).
	AddressAttributes []string
	// MemberAttributes hold a group's member DNs; a member that is a group
	// is expanded (nested groups).
	MemberAttributes []string
	// PageSize is the page of the paged searches (RFC 2696).
	PageSize int
	// Refresh is the time between syncs; Timeout bounds each operation.
	Refresh, Timeout time.Duration
}

type fileLDAP struct {
	URL               string   `toml:"url"`
	StartTLS          bool     `toml:"start_tls"`
	CAFile            string   `toml:"ca_file"`
	BindDN            string   `toml:"bind_dn"`
	PasswordFile      string   `toml:"password_file"`
	BaseDN            string   `toml:"base_dn"`
	UserFilter        string   `toml:"user_filter"`
	GroupFilter       string   `toml:"group_filter"`
	AddressAttributes []string `toml:"address_attributes"`
	MemberAttributes  []string `toml:"member_attributes"`
	PageSize          int      `toml:"page_size"`
	Refresh           string   `toml:"refresh"`
	Timeout           string   `toml:"timeout"`
}

// Defaults of [directory.ldap]: filters that fit OpenLDAP (inetOrgPerson,
// groupOfNames) and Active Directory (user, group) alike.
const (
	DefaultLDAPUserFilter  = "(&(objectClass=person)(|(mail=*)(proxyAddresses=*)))"
	DefaultLDAPGroupFilter = "(|(objectClass=groupOfNames)(objectClass=groupOfUniqueNames)(objectClass=group))"
	DefaultLDAPPageSize    = 500
	DefaultLDAPRefresh     = "15m"
	DefaultLDAPTimeout     = "30s"
)

var (
	defaultLDAPAddressAttributes = []string{"mail", "proxyAddresses"}
	defaultLDAPMemberAttributes  = []string{"member", "uniqueMember"}
)

func ldapDefaults(f *fileLDAP) {
	f.StartTLS = true
	f.UserFilter = DefaultLDAPUserFilter
	f.GroupFilter = DefaultLDAPGroupFilter
	f.AddressAttributes = defaultLDAPAddressAttributes
	f.MemberAttributes = defaultLDAPMemberAttributes
	f.PageSize = DefaultLDAPPageSize
	f.Refresh = DefaultLDAPRefresh
	f.Timeout = DefaultLDAPTimeout
}

// ldap validates [directory.ldap]; absent or without url, there is no sync.
func (l *loader) ldap(f *file, rs *Ruleset) {
	fl := f.Directory.LDAP
	if fl.URL == "" {
		if l.md.IsDefined("directory", "ldap") {
			l.errorf(nil, "directory.ldap", "url is required (ldap://host or ldaps://host)")
		}
		return
	}
	const p = "directory.ldap."
	x := &LDAP{URL: fl.URL, StartTLS: fl.StartTLS, CAFile: fl.CAFile, BindDN: fl.BindDN, PasswordFile: fl.PasswordFile,
		BaseDN: fl.BaseDN, UserFilter: fl.UserFilter, GroupFilter: fl.GroupFilter,
		AddressAttributes: fl.AddressAttributes, MemberAttributes: fl.MemberAttributes, PageSize: fl.PageSize}
	u, err := url.Parse(fl.URL)
	switch {
	case err != nil || u.Host == "":
		l.errorf(nil, p+"url", "%q: want ldap://host[:port] or ldaps://host[:port]", fl.URL)
	case u.Scheme == "ldaps":
		x.StartTLS = false
	case u.Scheme != "ldap":
		l.errorf(nil, p+"url", "%q: want ldap:// (with start_tls) or ldaps://", fl.URL)
	}
	if x.BaseDN == "" {
		l.errorf(nil, p+"base_dn", "base_dn is required, e.g. \"dc=corp,dc=example,dc=com\"")
	}
	if x.BindDN != "" && x.PasswordFile == "" {
		l.errorf(nil, p+"password_file", "a bind_dn needs a password_file (the password is not written in this file)")
	}
	for _, k := range []struct{ key, v string }{{"password_file", x.PasswordFile}, {"ca_file", x.CAFile}} {
		if k.v != "" && !filepath.IsAbs(k.v) {
			l.errorf(nil, p+k.key, "%q: want an absolute path", k.v)
		}
	}
	for _, k := range []struct{ key, v string }{{"user_filter", x.UserFilter}, {"group_filter", x.GroupFilter}} {
		if !strings.HasPrefix(k.v, "(") || !strings.HasSuffix(k.v, ")") || strings.Count(k.v, "(") != strings.Count(k.v, ")") {
			l.errorf(nil, p+k.key, "%q is not an LDAP filter (RFC 4515): want (attribute=value) with balanced parentheses", k.v)
		}
	}
	if len(x.AddressAttributes) == 0 {
		l.errorf(nil, p+"address_attributes", "name at least one attribute (mail, proxyAddresses)")
	}
	if x.PageSize < 1 || x.PageSize > 100000 {
		l.errorf(nil, p+"page_size", "%d: want 1-100000", x.PageSize)
	}
	for _, d := range []struct {
		key, v string
		to     *time.Duration
		min    time.Duration
	}{{"refresh", fl.Refresh, &x.Refresh, time.Second}, {"timeout", fl.Timeout, &x.Timeout, time.Second}} {
		v, err := time.ParseDuration(d.v)
		if err != nil || v < d.min {
			l.errorf(nil, p+d.key, "%q: want a duration of at least %s, e.g. \"15m\"", d.v, d.min)
		}
		*d.to = v
	}
	rs.LDAP = x
}

// syncedDirectory reports whether directory entries also come from a
// background sync ([directory.ldap]): group: filters may then name groups
// the file does not list, and aliases may name accounts only the sync
// knows.
func (rs *Ruleset) syncedDirectory() bool { return rs.LDAP != nil }

// Entries is directory content from outside the configuration file (an
// LDAP sync), as addresses.
type Entries struct {
	Users   []string            `json:"users"`
	Aliases map[string]string   `json:"aliases"` // alias -> user or group
	Groups  map[string][]string `json:"groups"`  // group -> members (users, groups, any address)
}

// BuildDirectory makes a directory of e alone, to Overlay on the file's:
// rs.WithDirectory(rs.Directory().Overlay(d)). Addresses that do not
// parse and duplicates are skipped and reported in problems (at most a
// few, then a count); an alias may name an account of the file.
func BuildDirectory(e *Entries) (d *Directory, problems []string) {
	b := newDirBuilder(len(e.Users) + len(e.Aliases) + len(e.Groups))
	skipped := 0
	problem := func(format string, args ...any) {
		if skipped++; skipped <= maxDirWarnings {
			problems = append(problems, fmt.Sprintf(format, args...))
		}
	}
	for _, u := range e.Users {
		a, err := b.parse(u)
		if err != nil {
			problem("user %q is not an email address", u)
			continue
		}
		if prev := b.addUser(a); prev == User || prev == Group {
			problem("user %q is listed twice", u)
		}
	}
	for _, g := range sortedKeys(e.Groups) {
		a, err := b.parse(g)
		if err != nil {
			problem("group %q is not an email address", g)
			continue
		}
		n, prev := b.addGroup(a)
		if prev == User {
			problem("%q is both a user and a group", g)
			continue
		}
		for _, m := range e.Groups[g] {
			if ma, err := b.parse(m); err == nil {
				b.addMember(n, ma)
			} else {
				problem("member %q of %s is not an email address", m, g)
			}
		}
	}
	for _, al := range sortedKeys(e.Aliases) {
		a, err := b.parse(al)
		t, err2 := b.parse(e.Aliases[al])
		if err != nil || err2 != nil {
			problem("alias %q -> %q: not an email address", al, e.Aliases[al])
			continue
		}
		if prev := b.addAlias(a, t); prev != External {
			problem("alias %q collides with another entry", al)
		}
	}
	data, _ := b.build(false)
	if skipped > maxDirWarnings {
		problems = append(problems, fmt.Sprintf("%d more problems not shown", skipped-maxDirWarnings))
	}
	return &Directory{layers: []*dirData{data}}, problems
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
