package rules

import (
	"fmt"
	"net"
	"path"
	"slices"
	"strconv"
	"strings"
)

// build validates the decoded file and prepares the Ruleset: lower-cased
// IDNA domains, compiled patterns, resolved route pointers, flattened
// groups. Evaluation never parses.
func (l *loader) build(f *file) *Ruleset {
	rs := &Ruleset{
		Name:   l.name,
		Routes: map[string]*Route{},
	}
	l.milter(f, rs)
	l.log(f, rs)
	l.metrics(f, rs)
	l.state(f, rs)
	l.organization(f, rs)
	l.ldap(f, rs)
	l.directory(f, rs)
	l.relay(f, rs)
	l.routes(f, rs)
	l.rules(f, rs)
	l.shadowed(rs)
	return rs
}

func (l *loader) milter(f *file, rs *Ruleset) {
	m := f.Milter
	rs.Milter = Milter{Listen: m.Listen, DryRun: m.DryRun}
	if _, _, err := ParseListen(m.Listen); err != nil {
		l.errorf(nil, "milter.listen", "%v", err)
	}
	suffix, err := normalizeDomain(m.RoutingSuffix)
	if err != nil || strings.HasPrefix(suffix, "[") {
		l.errorf(nil, "milter.routing_suffix", "%q is not a domain name", m.RoutingSuffix)
		return
	}
	rs.Milter.RoutingSuffix = suffix
	rs.suffix = "." + suffix
}

// ListenAddr is a [milter] listen address, parsed once for every reader:
// the daemon's listener, the Postfix and Sendmail generators (which must
// name the same socket) and the daemon's own probe.
type ListenAddr struct {
	Network string // "unix" or "tcp", as net.Listen takes it
	Path    string // the socket's absolute path, for unix
	Host    string // for tcp: the address to listen on
	Port    string // for tcp
}

// ParseListenAddr parses a listen address (see ParseListen).
func ParseListenAddr(s string) (ListenAddr, error) {
	network, addr, err := ParseListen(s)
	if err != nil {
		return ListenAddr{}, err
	}
	if network == "unix" {
		return ListenAddr{Network: network, Path: path.Clean(addr)}, nil
	}
	host, port, _ := net.SplitHostPort(addr)
	return ListenAddr{Network: network, Host: host, Port: port}, nil
}

// DialHost is the host an MTA on this machine connects to: a wildcard
// listen address is reached on loopback.
func (l ListenAddr) DialHost() string {
	switch l.Host {
	case "0.0.0.0":
		return "127.0.0.1"
	case "::":
		return "::1"
	}
	return l.Host
}

// ParseListen splits a listen address into a net.Listen network and
// address: "unix:/path" (absolute path) or "inet:host:port" ("tcp:" is
// accepted as a synonym, as in Sendmail's and Postfix's milter syntax).
func ParseListen(s string) (network, addr string, err error) {
	scheme, rest, ok := strings.Cut(s, ":")
	switch {
	case !ok:
		return "", "", fmt.Errorf("%q: want unix:/path or inet:host:port", s)
	case scheme == "unix":
		if !strings.HasPrefix(rest, "/") {
			return "", "", fmt.Errorf("%q: a unix socket needs an absolute path", s)
		}
		return "unix", rest, nil
	case scheme == "inet" || scheme == "tcp":
		host, port, err := net.SplitHostPort(rest)
		if err != nil {
			return "", "", fmt.Errorf("%q: want inet:host:port", s)
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return "", "", fmt.Errorf("%q: port must be 1-65535", s)
		}
		if host == "" {
			return "", "", fmt.Errorf("%q: name the address to listen on (e.g. 127.0.0.1)", s)
		}
		return "tcp", rest, nil
	}
	return "", "", fmt.Errorf("%q: want unix:/path or inet:host:port", s)
}

func (l *loader) log(f *file, rs *Ruleset) {
	rs.Log = Log{Level: f.Log.Level, Format: f.Log.Format}
	if !slices.Contains([]string{"debug", "info", "warn", "error"}, f.Log.Level) {
		l.errorf(nil, "log.level", "%q: want debug, info, warn or error", f.Log.Level)
	}
	if !slices.Contains([]string{"auto", "text", "json"}, f.Log.Format) {
		l.errorf(nil, "log.format", "%q: want auto, text or json", f.Log.Format)
	}
}

func (l *loader) organization(f *file, rs *Ruleset) {
	if len(f.Organization.Domains) == 0 {
		l.errorf(nil, "organization.domains", "at least one domain is required")
	}
	for i, d := range f.Organization.Domains {
		path := fmt.Sprintf("organization.domains[%d]", i)
		n, err := normalizeDomain(d)
		switch {
		case err != nil || strings.HasPrefix(n, "["):
			l.errorf(nil, path, "%q is not a domain name", d)
		case slices.Contains(rs.Domains, n):
			l.errorf(ErrDuplicate, path, "%q is listed twice", d)
		default:
			rs.Domains = append(rs.Domains, n)
		}
	}
	if s := rs.Milter.RoutingSuffix; s != "" {
		for _, d := range rs.Domains {
			if underDomain(s, d) || underDomain(d, s) {
				l.errorf(nil, "milter.routing_suffix", "%q overlaps organization domain %q: use a reserved name such as %q", s, d, DefaultRoutingSuffix)
			}
		}
	}
}

// ours reports whether a normalised domain is one of our domains or an
// alias domain, or a subdomain of one: the recipients split delivery is
// for.
func (rs *Ruleset) ours(domain string) bool {
	for _, d := range rs.Domains {
		if underDomain(domain, d) {
			return true
		}
	}
	for _, d := range rs.aliasDomains {
		if underDomain(domain, d) {
			return true
		}
	}
	return false
}
