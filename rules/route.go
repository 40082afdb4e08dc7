package rules

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
)

// Routes: named destinations ("Add route" in Google's console), validated
// with the dialog's own rules.

// ValidLabel reports whether n is a lower-case DNS label of letters,
// digits and hyphens: what a route name must be to stand in an address,
// a Postfix service name and a Sendmail mailer name. The loader and both
// generators check with it, so they cannot drift apart.
func ValidLabel(n string) bool { return validRouteName(n) }

// ValidHostname reports whether h is a host name as the rules keep them
// (lower-case A-labels; '_' allowed, which some internal hosts carry; at
// most 63 octets a label, 253 in all). The generators check every name
// they write with it.
func ValidHostname(h string) bool { return validHostname(h) }

// SortedRoutes returns the routes in RouteNames order (for a Ruleset
// built by hand without RouteNames, by name).
func (rs *Ruleset) SortedRoutes() []*Route {
	names := rs.RouteNames
	if len(names) == 0 {
		names = slices.Sorted(maps.Keys(rs.Routes))
	}
	out := make([]*Route, 0, len(names))
	for _, n := range names {
		if r := rs.Routes[n]; r != nil {
			out = append(out, r)
		}
	}
	return out
}

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
			l.multipleHosts(path, name, fr, r)
		} else {
			l.singleHost(path, name, fr, r)
		}
		l.tls(path, fr, r)
	}
	l.hostLabels(rs)
}

// singleHost validates the single-host form: host and port.
func (l *loader) singleHost(path, name string, fr fileRoute, r *Route) {
	if fr.Host == "" {
		l.errorf(nil, path+".host", "a route needs a host (or primary and secondary tables of hosts)")
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
}

// multipleHosts validates the multiple-host form: a primary table and an
// optional secondary table, each host with its port and load.
func (l *loader) multipleHosts(path, name string, fr fileRoute, r *Route) {
	if fr.Host != "" {
		l.errorf(nil, path+".host", "use either host (a single host) or primary/secondary tables (multiple hosts), not both")
	}
	if l.md.IsDefined("routes", name, "port") {
		l.errorf(nil, path+".port", "in the multiple-host form each host has its own port")
	}
	if len(fr.Primary) == 0 {
		l.errorf(nil, path+".secondary", "a multiple-host route needs a primary table; the secondary table is only its backup")
	}
	r.Port = 0
	r.Primary = l.hosts(path+".primary", fr.Primary, fr.MXLookup)
	r.Secondary = l.hosts(path+".secondary", fr.Secondary, fr.MXLookup)
	for i, h := range r.Secondary {
		for _, p := range r.Primary {
			if p.Host != "" && p.Host == h.Host && p.Port == h.Port {
				l.errorf(ErrDuplicate, fmt.Sprintf("%s.secondary[%d].host", path, i), "%s is already a primary host", h)
			}
		}
	}
	// Port 465 is SMTP over implicit TLS. Postfix's smtp_tls_wrappermode
	// applies to a whole transport, and a route is one transport whose
	// next-hop list holds all its hosts: either every host uses 465 or none.
	all := r.Order(Choice{})
	n465 := 0
	for _, h := range all {
		if h.Port == 465 {
			n465++
		}
	}
	if n465 > 0 && n465 < len(all) {
		l.errorf(nil, path+".primary", "port 465 (implicit TLS) cannot be mixed with other ports in one route: use 465 for every host or for none")
	}
}

// tls checks that the route's TLS options are a combination Postfix can
// enforce exactly (see milter/postfix, tlsParams): a route never delivers
// with less protection than its options say, and it is not silently made
// stricter either.
func (l *loader) tls(path string, fr fileRoute, r *Route) {
	if fr.RequireCASigned && !fr.RequireTLS {
		l.errorf(nil, path+".require_ca_signed", "require_ca_signed needs require_tls = true")
	}
	if fr.ValidateHostname && !fr.RequireCASigned {
		l.errorf(nil, path+".validate_hostname", "validate_hostname needs require_ca_signed = true (Postfix checks the name only in a certificate whose CA signature it verified)")
	}
	if fr.RequireCASigned && fr.RequireTLS && !fr.ValidateHostname {
		l.errorf(nil, path+".require_ca_signed", "require_ca_signed without validate_hostname cannot be enforced by Postfix: its \"verify\" level always checks a name too. "+
			"Set validate_hostname = true (the certificate must name the host), or remove require_ca_signed (TLS without certificate checks)")
	}
	if fr.ValidateHostname {
		for _, h := range r.Order(Choice{}) {
			if _, err := netip.ParseAddr(h.Host); err == nil {
				l.errorf(nil, path+".validate_hostname", "validate_hostname needs host names: Postfix does not match a certificate against the IP address %s", h.Host)
				break
			}
		}
	}
}

// hostLabels refuses an organisation domain whose last label looks like a
// host label (p1, p2s1, ...): its routed addresses would be ambiguous.
func (l *loader) hostLabels(rs *Ruleset) {
	for i, d := range rs.Domains {
		if isHostLabel(d[strings.LastIndexByte(d, '.')+1:]) {
			l.errorf(nil, fmt.Sprintf("organization.domains[%d]", i), "%q ends in a label of the form p<N> or p<N>s<M>, which splitrelay uses for host labels in routed addresses", d)
		}
	}
}

// checkPort applies Google's "Add route" port rules: 25, 587 or
// 1024-65535; 465 (implicit TLS) is refused for a single host. The dialog
// (seed 001) forbids 465 for the single-host option only, so the
// multiple-host form accepts it (as implicit TLS for every host of the
// route, see multipleHosts).
func checkPort(p int, single bool) string {
	switch {
	case p == 465 && single:
		return "465 is not allowed for a single host"
	case p == 25 || p == 587 || p == 465 || p >= 1024 && p <= 65535:
		return ""
	case !single:
		return fmt.Sprintf("%d is not allowed: use 25, 465, 587 or 1024-65535", p)
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
