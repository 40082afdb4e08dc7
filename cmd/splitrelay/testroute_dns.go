package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// resolver looks up MX and address records the way Postfix's smtp(8)
// client does for a next hop: MX records by preference (a domain without
// MX records is its own mail exchanger, RFC 5321 section 5.1), then A and
// AAAA records of each name. It asks one DNS server with miekg/dns, so a
// test can point it at a server on the loopback interface.
type resolver struct {
	server  string        // host:port
	timeout time.Duration // per query
}

// newResolver uses server (host or host:port) or, when it is empty, the
// first nameserver of /etc/resolv.conf.
func newResolver(server string, timeout time.Duration) (*resolver, error) {
	if server == "" {
		cc, err := dns.ClientConfigFromFile("/etc/resolv.conf")
		if err != nil {
			return nil, fmt.Errorf("read /etc/resolv.conf: %w (use --resolver)", err)
		}
		if len(cc.Servers) == 0 {
			return nil, errors.New("no nameserver in /etc/resolv.conf (use --resolver)")
		}
		server = net.JoinHostPort(cc.Servers[0], cc.Port)
	} else if _, _, err := net.SplitHostPort(server); err != nil {
		server = net.JoinHostPort(strings.Trim(server, "[]"), "53")
	}
	return &resolver{server: server, timeout: timeout}, nil
}

// exchanger is one mail exchanger of a domain.
type exchanger struct {
	Pref uint16
	Name string
}

// errNoRecords is a name that exists without records of the asked type.
var errNoRecords = errors.New("no records")

// query asks the server one question; UDP first, TCP when the answer is
// truncated.
func (r *resolver) query(ctx context.Context, name string, qtype uint16) ([]dns.RR, error) {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	m.RecursionDesired = true
	m.SetEdns0(1232, false)
	var in *dns.Msg
	var err error
	for _, proto := range []string{"udp", "tcp"} {
		c := &dns.Client{Net: proto, Timeout: r.timeout}
		in, _, err = c.ExchangeContext(ctx, m, r.server)
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", dns.TypeToString[qtype], name, err)
		}
		if !in.Truncated {
			break
		}
	}
	switch in.Rcode {
	case dns.RcodeSuccess:
	case dns.RcodeNameError:
		return nil, fmt.Errorf("%s %s: no such domain (NXDOMAIN)", dns.TypeToString[qtype], name)
	default:
		return nil, fmt.Errorf("%s %s: %s", dns.TypeToString[qtype], name, dns.RcodeToString[in.Rcode])
	}
	return in.Answer, nil
}

// mx returns the mail exchangers of domain by preference; a domain with
// no MX records is its own exchanger.
func (r *resolver) mx(ctx context.Context, domain string) ([]exchanger, error) {
	ans, err := r.query(ctx, domain, dns.TypeMX)
	if err != nil {
		return nil, err
	}
	var out []exchanger
	for _, rr := range ans {
		if mx, ok := rr.(*dns.MX); ok {
			out = append(out, exchanger{Pref: mx.Preference, Name: strings.ToLower(strings.TrimSuffix(mx.Mx, "."))})
		}
	}
	if len(out) == 0 {
		return []exchanger{{Name: domain}}, nil
	}
	if len(out) == 1 && out[0].Name == "" {
		return nil, fmt.Errorf("MX %s: null MX: the domain accepts no mail (RFC 7505)", domain)
	}
	slices.SortStableFunc(out, func(a, b exchanger) int { return int(a.Pref) - int(b.Pref) })
	return out, nil
}

// addrs returns the IPv4 then IPv6 addresses of name.
func (r *resolver) addrs(ctx context.Context, name string) ([]netip.Addr, error) {
	var out []netip.Addr
	var errs []error
	for _, t := range []uint16{dns.TypeA, dns.TypeAAAA} {
		ans, err := r.query(ctx, name, t)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, rr := range ans {
			switch rr := rr.(type) {
			case *dns.A:
				if a, ok := netip.AddrFromSlice(rr.A); ok {
					out = append(out, a.Unmap())
				}
			case *dns.AAAA:
				if a, ok := netip.AddrFromSlice(rr.AAAA); ok {
					out = append(out, a)
				}
			}
		}
	}
	if len(out) == 0 {
		if len(errs) > 0 {
			return nil, errs[0]
		}
		return nil, fmt.Errorf("%s: %w (A, AAAA)", name, errNoRecords)
	}
	return out, nil
}
