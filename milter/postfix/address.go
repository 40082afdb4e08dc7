package postfix

import (
	"fmt"
	"net"
	"net/netip"
	"path"
	"strconv"
	"strings"

	"github.com/splitrelay/splitrelay/rules"
)

// milterAddress is the milter's [milter] listen address as Postfix must name
// it in smtpd_milters (MILTER_README, "Specifying Milter applications"):
//
//   - "unix:/var/spool/postfix/splitrelay/milter.sock" becomes
//     "unix:splitrelay/milter.sock" when the socket is inside queueDir:
//     Postfix resolves a relative unix: path against its queue directory,
//     which is also where a chrooted smtpd(8) lives.
//   - other unix sockets keep their absolute path (a note says a chrooted
//     smtpd cannot reach them).
//   - "inet:host:port" and its synonym "tcp:host:port" become
//     "inet:host:port"; a wildcard listen host (empty, 0.0.0.0, ::) is
//     reached on the loopback address.
func milterAddress(listen, queueDir string) (addr string, notes []string, err error) {
	la, err := rules.ParseListenAddr(listen)
	if err != nil {
		return "", nil, fmt.Errorf("postfix: milter.listen %w", err)
	}
	if la.Network == "tcp" {
		return "inet:" + net.JoinHostPort(la.DialHost(), la.Port), nil, nil
	}
	sock, queue := la.Path, path.Clean(queueDir)
	if rel, ok := strings.CutPrefix(sock, queue+"/"); ok {
		return "unix:" + rel, nil, nil
	}
	return "unix:" + sock, []string{
		"The milter socket " + sock + " is outside the Postfix queue directory " + queue +
			": a chrooted smtpd (chroot column \"y\" in master.cf) cannot reach it.",
	}, nil
}

// Nexthop is the transport(5) next hop of route r for the host choice c,
// as smtp(8) reads it. For one host it is "[host]:port" without MX
// lookups, "host:port" with them, and "[ipv6:2001:db8::1]:port" for an
// IPv6 address ("An IPv6 address must be formatted as [ipv6:address]",
// smtp(8)). For a multiple-host route it is a next-hop list (Postfix 3.5
// and later, transport(5)) in the order of r.Order(c): the chosen primary,
// the other primaries, then the secondaries. smtp(8) tries the list in
// order, as it does smtp_fallback_relay: a host that cannot be reached, or
// that answers with a temporary error, passes the mail to the next one.
func Nexthop(r *rules.Route, c rules.Choice) (string, error) {
	var hops []string
	for _, h := range r.Order(c) {
		nh, err := hostNexthop(r, h)
		if err != nil {
			return "", err
		}
		hops = append(hops, nh)
	}
	return strings.Join(hops, ","), nil
}

// hostNexthop is the next hop of one host of route r.
func hostNexthop(r *rules.Route, h rules.Host) (string, error) {
	port := h.Port
	if port == 0 {
		port = 25
	}
	if port < 1 || port > 65535 {
		return "", fmt.Errorf("postfix: route %q: bad port %d", r.Name, h.Port)
	}
	host := strings.TrimSuffix(strings.TrimPrefix(h.Host, "["), "]")
	p := ":" + strconv.Itoa(port)
	if ip, err := netip.ParseAddr(host); err == nil {
		if r.MXLookup {
			return "", fmt.Errorf("postfix: route %q: mx_lookup needs a domain name, not the address %s", r.Name, host)
		}
		if ip.Is6() && !ip.Is4In6() {
			return "[ipv6:" + ip.WithZone("").String() + "]" + p, nil
		}
		return "[" + ip.Unmap().String() + "]" + p, nil
	}
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	if !isDomain(host) {
		return "", fmt.Errorf("postfix: route %q: host %q is neither a host name nor an IP address", r.Name, h.Host)
	}
	if r.MXLookup {
		return host + p, nil
	}
	return "[" + host + "]" + p, nil
}

// Transport is the transport(5) result for route r and host choice c:
// "splitrelay-NAME:NEXTHOP".
func Transport(r *rules.Route, c rules.Choice) (string, error) {
	nh, err := Nexthop(r, c)
	if err != nil {
		return "", err
	}
	return ServicePrefix + r.Name + ":" + nh, nil
}

// quoteRegexp escapes a domain name for a POSIX extended regular expression
// inside a regexp_table(5) "/pattern/": only the dot is special in a name
// made of labels.
func quoteRegexp(domain string) string { return strings.ReplaceAll(domain, ".", `\.`) }

// isDomain is the rules' own host name check (one copy for the loader and
// both generators).
func isDomain(s string) bool { return rules.ValidHostname(s) }
