package ldapsync

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"slices"
	"strings"

	"github.com/go-ldap/ldap/v3"

	"github.com/splitrelay/splitrelay/rules"
)

// Fetch reads the directory from the server once: users (UserFilter) and
// groups (GroupFilter) under BaseDN, in paged searches.
func Fetch(ctx context.Context, cfg *rules.LDAP) (*rules.Entries, error) {
	c, err := dial(cfg)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	// The library's operations honour a timeout, not a context: closing
	// the connection ends whatever is in progress.
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()

	if cfg.BindDN != "" {
		pw, err := os.ReadFile(cfg.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("read password_file: %w", err)
		}
		if err := c.Bind(cfg.BindDN, strings.TrimRight(string(pw), "\r\n")); err != nil {
			return nil, fmt.Errorf("bind as %s: %w", cfg.BindDN, err)
		}
	}
	e, err := read(c, cfg)
	if err != nil {
		return nil, err
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	return e, nil
}

// read runs the searches of a sync on c. Groups first: their member DNs
// say which users' DNs are worth remembering. Then users, page by page,
// each entry reduced to its addresses at once: a million entries are
// never held as LDAP entries. An attribute that Active Directory returns
// in ranges (a group of more than 1500 members) is read completely before
// the entry is used, or the sync fails.
func read(c searcher, cfg *rules.LDAP) (*rules.Entries, error) {
	b := newBuilder(cfg)
	groupAttrs := slices.Concat(cfg.AddressAttributes, cfg.MemberAttributes)
	err := search(c, cfg, cfg.GroupFilter, groupAttrs, func(e *ldap.Entry) error {
		if err := completeRanges(c, e, groupAttrs); err != nil {
			return err
		}
		b.group(e)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("search groups %s: %w", cfg.GroupFilter, err)
	}
	err = search(c, cfg, cfg.UserFilter, cfg.AddressAttributes, func(e *ldap.Entry) error {
		if err := completeRanges(c, e, cfg.AddressAttributes); err != nil {
			return err
		}
		b.user(e)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("search users %s: %w", cfg.UserFilter, err)
	}
	return b.entries(), nil
}

func dial(cfg *rules.LDAP) (*ldap.Conn, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil {
		return nil, err
	}
	tc := &tls.Config{ServerName: u.Hostname(), MinVersion: tls.VersionTLS12}
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("read ca_file: %w", err)
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ca_file %s: no PEM certificate", cfg.CAFile)
		}
	}
	c, err := ldap.DialURL(cfg.URL, ldap.DialWithDialer(&net.Dialer{Timeout: cfg.Timeout}), ldap.DialWithTLSConfig(tc))
	if err != nil {
		return nil, fmt.Errorf("connect %s: %w", cfg.URL, err)
	}
	c.SetTimeout(cfg.Timeout)
	if cfg.StartTLS {
		if err := c.StartTLS(tc); err != nil {
			c.Close()
			return nil, fmt.Errorf("starttls %s: %w", cfg.URL, err)
		}
	}
	return c, nil
}

// search runs a paged search (RFC 2696) and hands each entry to fn, one
// page at a time; an error of fn ends it.
func search(c searcher, cfg *rules.LDAP, filter string, attrs []string, fn func(*ldap.Entry) error) error {
	paging := ldap.NewControlPaging(uint32(cfg.PageSize))
	req := ldap.NewSearchRequest(cfg.BaseDN, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false, filter, attrs,
		[]ldap.Control{paging})
	for {
		res, err := c.Search(req)
		if err != nil {
			return err
		}
		for _, e := range res.Entries {
			if err := fn(e); err != nil {
				return err
			}
		}
		ctrl, ok := ldap.FindControl(res.Controls, ldap.ControlTypePaging).(*ldap.ControlPaging)
		if !ok || len(ctrl.Cookie) == 0 {
			return nil
		}
		paging.SetCookie(ctrl.Cookie)
	}
}

// values returns an attribute's values, the name compared without case
// (servers answer in their schema's spelling). A ranged attribute
// ("member;range=0-1499") is not the attribute: completeRanges has
// replaced it by all its values before.
func values(e *ldap.Entry, name string) []string {
	var out []string
	for _, a := range e.Attributes {
		if strings.EqualFold(a.Name, name) {
			out = append(out, a.Values...)
		}
	}
	return out
}

// addresses lists an entry's addresses, primary first: the attributes in
// the configured order; of proxyAddresses only smtp: values, the SMTP:
// one (Exchange's primary) before the others.
func addresses(e *ldap.Entry, attrs []string) []string {
	var out []string
	add := func(s string) {
		s = strings.TrimSpace(s)
		if s != "" && !slices.ContainsFunc(out, func(x string) bool { return strings.EqualFold(x, s) }) {
			out = append(out, s)
		}
	}
	for _, attr := range attrs {
		vals := values(e, attr)
		if !strings.EqualFold(attr, "proxyAddresses") {
			for _, v := range vals {
				add(v)
			}
			continue
		}
		for _, pass := range []bool{true, false} {
			for _, v := range vals {
				prefix, addr, ok := strings.Cut(v, ":")
				if ok && strings.EqualFold(prefix, "smtp") && (prefix == "SMTP") == pass {
					add(addr)
				}
			}
		}
	}
	return out
}

// normDN is the form DNs are compared in: attribute types and values
// without case, no spaces around separators.
func normDN(s string) string {
	if !strings.ContainsAny(s, "\\\"+#<>;") {
		// No escapes, quotes or multi-valued RDNs (the usual case, and
		// a million of them per sync): lower-case, no spaces around
		// the separators, without parsing.
		var b strings.Builder
		b.Grow(len(s))
		for _, part := range strings.Split(s, ",") {
			if b.Len() > 0 {
				b.WriteByte(',')
			}
			k, v, _ := strings.Cut(part, "=")
			b.WriteString(strings.ToLower(strings.TrimSpace(k)))
			b.WriteByte('=')
			b.WriteString(strings.ToLower(strings.TrimSpace(v)))
		}
		return b.String()
	}
	dn, err := ldap.ParseDN(s)
	if err != nil {
		return strings.ToLower(strings.TrimSpace(s))
	}
	var b strings.Builder
	for i, rdn := range dn.RDNs {
		if i > 0 {
			b.WriteByte(',')
		}
		for j, a := range rdn.Attributes {
			if j > 0 {
				b.WriteByte('+')
			}
			b.WriteString(strings.ToLower(a.Type))
			b.WriteByte('=')
			b.WriteString(strings.ToLower(a.Value))
		}
	}
	return b.String()
}

type group struct {
	addrs   []string
	members []string // normalised DNs
}

// builder turns search results into directory entries: each user's first
// address is the account, the others its aliases; a group's members are
// flattened through nested groups (with or without an address of their
// own) to the users and addressed groups they contain.
type builder struct {
	cfg      *rules.LDAP
	out      *rules.Entries
	groups   map[string]*group // normalised DN -> group
	wanted   map[string]bool   // member DNs of some group
	userAddr map[string]string // wanted user DN -> primary address
}

func newBuilder(cfg *rules.LDAP) *builder {
	return &builder{cfg: cfg, out: &rules.Entries{Aliases: map[string]string{}, Groups: map[string][]string{}},
		groups: map[string]*group{}, wanted: map[string]bool{}, userAddr: map[string]string{}}
}

func (b *builder) group(e *ldap.Entry) {
	g := &group{addrs: addresses(e, b.cfg.AddressAttributes)}
	for _, attr := range b.cfg.MemberAttributes {
		for _, m := range values(e, attr) {
			dn := normDN(m)
			g.members = append(g.members, dn)
			b.wanted[dn] = true
		}
	}
	b.groups[normDN(e.DN)] = g
}

func (b *builder) user(e *ldap.Entry) {
	addrs := addresses(e, b.cfg.AddressAttributes)
	if len(addrs) == 0 {
		return
	}
	primary := strings.Clone(addrs[0]) // not a slice of the LDAP packet
	b.out.Users = append(b.out.Users, primary)
	for _, a := range addrs[1:] {
		b.out.Aliases[strings.Clone(a)] = primary
	}
	if len(b.wanted) > 0 {
		if dn := normDN(e.DN); b.wanted[dn] {
			b.userAddr[dn] = primary
		}
	}
}

func (b *builder) entries() *rules.Entries {
	out := b.out
	for _, dn := range sortedKeys(b.groups) {
		g := b.groups[dn]
		if len(g.addrs) == 0 {
			continue // reachable only as a nested group
		}
		var flat []string
		seen := map[string]bool{dn: true}
		var walk func(*group)
		walk = func(x *group) {
			for _, m := range x.members {
				if seen[m] {
					continue
				}
				seen[m] = true
				if a, ok := b.userAddr[m]; ok {
					flat = append(flat, a)
				} else if sub, ok := b.groups[m]; ok {
					if len(sub.addrs) > 0 {
						flat = append(flat, sub.addrs[0])
					}
					walk(sub)
				}
			}
		}
		walk(g)
		out.Groups[g.addrs[0]] = flat
		for _, a := range g.addrs[1:] {
			out.Aliases[a] = g.addrs[0]
		}
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

var errNoSnapshot = errors.New("ldapsync: no snapshot")
