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
	users, err := search(c, cfg, cfg.UserFilter, cfg.AddressAttributes)
	if err != nil {
		return nil, fmt.Errorf("search users %s: %w", cfg.UserFilter, err)
	}
	groups, err := search(c, cfg, cfg.GroupFilter, slices.Concat(cfg.AddressAttributes, cfg.MemberAttributes))
	if err != nil {
		return nil, fmt.Errorf("search groups %s: %w", cfg.GroupFilter, err)
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	return entries(cfg, users, groups), nil
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

func search(c *ldap.Conn, cfg *rules.LDAP, filter string, attrs []string) ([]*ldap.Entry, error) {
	req := ldap.NewSearchRequest(cfg.BaseDN, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false, filter, attrs, nil)
	res, err := c.SearchWithPaging(req, uint32(cfg.PageSize))
	if err != nil {
		return nil, err
	}
	return res.Entries, nil
}

// values returns an attribute's values, the name compared without case
// (servers answer in their schema's spelling).
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

// entries turns the search results into directory entries: each user's
// first address is the account, the others its aliases; a group's members
// are flattened through nested groups (with or without an address of
// their own) to the users and addressed groups they contain.
func entries(cfg *rules.LDAP, users, groups []*ldap.Entry) *rules.Entries {
	out := &rules.Entries{Aliases: map[string]string{}, Groups: map[string][]string{}}
	userAddr := map[string]string{} // DN -> primary address
	for _, e := range users {
		addrs := addresses(e, cfg.AddressAttributes)
		if len(addrs) == 0 {
			continue
		}
		userAddr[normDN(e.DN)] = addrs[0]
		out.Users = append(out.Users, addrs[0])
		for _, a := range addrs[1:] {
			out.Aliases[a] = addrs[0]
		}
	}
	byDN := map[string]*group{}
	for _, e := range groups {
		g := &group{addrs: addresses(e, cfg.AddressAttributes)}
		for _, attr := range cfg.MemberAttributes {
			for _, m := range values(e, attr) {
				g.members = append(g.members, normDN(m))
			}
		}
		byDN[normDN(e.DN)] = g
	}
	for _, dn := range sortedKeys(byDN) {
		g := byDN[dn]
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
				if a, ok := userAddr[m]; ok {
					flat = append(flat, a)
				} else if sub, ok := byDN[m]; ok {
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
