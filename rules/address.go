package rules

import (
	"errors"
	"net/netip"
	"strings"

	"golang.org/x/net/idna"
)

// address is an envelope or header address split and normalised once.
type address struct {
	local  string // as written (case kept: only the receiving system may fold it)
	domain string // lower-case IDNA A-label, no trailing dot
}

// key is the form directory and address: matches compare: case folded in
// the local part as well as the domain, as Postfix lookup tables and Gmail
// do.
func (a address) key() string { return strings.ToLower(a.local) + "@" + a.domain }

// String is the form patterns see: local part as written, domain
// normalised.
func (a address) String() string { return a.local + "@" + a.domain }

var errAddress = errors.New("rules: not an address")

// idnaProfile maps and validates domains the way a resolver would look them
// up (UTS #46 non-transitional), giving the A-label form.
var idnaProfile = idna.New(idna.MapForLookup(), idna.BidiRule(), idna.Transitional(false))

// parseAddress splits local@domain. A leading source route
// (@relay:user@domain, RFC 5321 4.1.2) is dropped, as Postfix does; a
// trailing dot on the domain is dropped. The domain must be a valid host
// name (IDNA allowed) or an address literal.
func parseAddress(s string) (address, error) {
	if strings.HasPrefix(s, "@") {
		if i := strings.IndexByte(s, ':'); i > 0 {
			s = s[i+1:]
		}
	}
	at := strings.LastIndexByte(s, '@')
	if at <= 0 || at == len(s)-1 {
		return address{}, errAddress
	}
	local := s[:at]
	if strings.ContainsAny(local, " \t\r\n") && !strings.HasPrefix(local, `"`) {
		return address{}, errAddress
	}
	domain, err := normalizeDomain(s[at+1:])
	if err != nil {
		return address{}, err
	}
	return address{local: local, domain: domain}, nil
}

// normalizeDomain returns the lower-case A-label form of a domain name, or
// an address literal ([192.0.2.1], [IPv6:2001:db8::1]) unchanged but lower
// case.
func normalizeDomain(d string) (string, error) {
	d = strings.TrimSuffix(d, ".")
	if d == "" {
		return "", errors.New("rules: empty domain")
	}
	if strings.HasPrefix(d, "[") && strings.HasSuffix(d, "]") {
		lit := strings.TrimPrefix(strings.ToLower(d[1:len(d)-1]), "ipv6:")
		if _, err := netip.ParseAddr(lit); err != nil {
			return "", errors.New("rules: bad address literal")
		}
		return strings.ToLower(d), nil
	}
	a, err := idnaProfile.ToASCII(d)
	if err != nil {
		return "", err
	}
	a = strings.ToLower(a)
	if !validHostname(a) {
		return "", errors.New("rules: not a valid domain name")
	}
	return a, nil
}

// validHostname checks LDH labels of at most 63 octets, 253 in all.
func validHostname(h string) bool {
	if h == "" || len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// underDomain reports whether d is dom or a subdomain of it.
func underDomain(d, dom string) bool {
	return d == dom || strings.HasSuffix(d, "."+dom)
}
