package rules

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// Routes: named destinations ("Add route" in Google's console), validated
// with the dialog's own rules.

// routeName is a DNS label and a Postfix service name suffix.
func validRouteName(n string) bool {
	if n == "" || len(n) > 63 || n[0] == '-' || n[len(n)-1] == '-' {
		return false
	}
	for i := 0; i < len(n); i++ {
		c := n[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

func (l *loader) routes(f *file, rs *Ruleset) {
	for name := range f.Routes {
		rs.RouteNames = append(rs.RouteNames, name)
	}
	slices.Sort(rs.RouteNames)
	for _, name := range rs.RouteNames {
		fr := f.Routes[name]
		path := "routes." + quoteKey(name)
		if !validRouteName(name) {
			l.errorf(nil, path, "route name %q must be lower-case letters, digits and '-' (it becomes a DNS label and a Postfix service name)", name)
		}
		r := &Route{
			Name: name, Description: fr.Description, Port: DefaultPort,
			MXLookup: fr.MXLookup, RequireTLS: fr.RequireTLS,
			RequireCASigned: fr.RequireCASigned, ValidateHostname: fr.ValidateHostname,
		}
		rs.Routes[name] = r
		if len(fr.Primary) > 0 || len(fr.Secondary) > 0 {
			l.errorf(ErrUnsupported, path+".primary", "multiple-host routes (primary/secondary tables) are not supported yet; use host and port")
			continue
		}
		if fr.Host == "" {
			l.errorf(nil, path+".host", "a route needs a host")
		} else if h, err := normalizeHost(fr.Host); err != nil {
			l.errorf(nil, path+".host", "%q is not a host name or IP address", fr.Host)
		} else {
			r.Host = h
			if fr.MXLookup {
				if _, err := netip.ParseAddr(h); err == nil {
					l.errorf(nil, path+".mx_lookup", "mx_lookup needs a domain name, not the IP address %s", h)
				}
			}
		}
		if l.md.IsDefined("routes", name, "port") {
			r.Port = fr.Port
			if msg := checkPort(fr.Port, true); msg != "" {
				l.errorf(nil, path+".port", "%s", msg)
			}
		}
		if fr.RequireCASigned && !fr.RequireTLS {
			l.errorf(nil, path+".require_ca_signed", "require_ca_signed needs require_tls = true")
		}
		if fr.ValidateHostname && !fr.RequireCASigned {
			l.errorf(nil, path+".validate_hostname", "validate_hostname needs require_ca_signed = true")
		}
	}
}

// checkPort applies Google's "Add route" port rules: 25, 587 or
// 1024-65535; 465 (implicit TLS) is refused for a single host.
func checkPort(p int, single bool) string {
	switch {
	case p == 465 && single:
		return "465 is not allowed for a single host"
	case p == 25 || p == 587 || p >= 1024 && p <= 65535:
		return ""
	}
	return fmt.Sprintf("%d is not allowed: use 25, 587 or 1024-65535", p)
}

// normalizeHost returns an IP address in canonical form or a host name in
// lower-case A-label form.
func normalizeHost(h string) (string, error) {
	if a, err := netip.ParseAddr(strings.Trim(h, "[]")); err == nil {
		return a.String(), nil
	}
	n, err := normalizeDomain(h)
	if err != nil || strings.HasPrefix(n, "[") {
		return "", errAddress
	}
	return n, nil
}
