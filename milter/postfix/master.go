package postfix

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/splitrelay/splitrelay/rules"
)

// service is route r's master.cf transport: a clone of the smtp(8) client
// ("smtp unix - - n - - smtp") with its own syslog name, the generic map
// that restores the original recipient, and the route's TLS requirements.
// A multiple-host route is one transport too: its hosts are the next-hop
// lists of the transport map (see Nexthop).
//
// Chroot is "n": the transport then needs nothing copied into the queue
// directory (resolv.conf, CA certificates) whatever the distribution's
// default is.
func service(r *rules.Route, genericRef string) (Service, error) {
	s := Service{
		Name: ServicePrefix + r.Name, Type: "unix",
		Private: "-", Unpriv: "-", Chroot: "n", Wakeup: "-", Maxproc: "-",
		Command: "smtp",
		Params: []Param{
			{"syslog_name", "postfix/" + ServicePrefix + r.Name},
			{"smtp_generic_maps", genericRef},
			// A route delivers to its own hosts only: a global
			// smtp_fallback_relay must not receive its mail.
			{"smtp_fallback_relay", ""},
		},
	}
	if r.Description != "" {
		s.Comments = append(s.Comments, "route "+r.Name+": "+oneLine(r.Description))
	} else {
		s.Comments = append(s.Comments, "route "+r.Name)
	}
	if r.Multiple() {
		s.Comments = append(s.Comments, "hosts: "+hostTables(r)+"; the milter picks the first host of each message by load, "+
			"the transport map lists the others after it")
	}
	params, notes, err := tlsParams(r)
	if err != nil {
		return Service{}, err
	}
	s.Params = append(s.Params, params...)
	s.Comments = append(s.Comments, notes...)
	return s, nil
}

// hostTables describes the primary and secondary tables with their loads.
func hostTables(r *rules.Route) string {
	table := func(hs []rules.Host) string {
		var parts []string
		for _, h := range hs {
			parts = append(parts, h.String()+" "+strconv.Itoa(h.Load)+"%")
		}
		return strings.Join(parts, ", ")
	}
	s := "primary " + table(r.Primary)
	if len(r.Secondary) > 0 {
		s += ", secondary " + table(r.Secondary)
	}
	return s
}

// ErrTLS is returned for route TLS options that Postfix cannot enforce
// exactly; rules.Load refuses them already, so only a hand-built Ruleset
// meets it.
var ErrTLS = errors.New("postfix: TLS options Postfix cannot enforce")

// tlsParams maps a route's TLS options to smtp(8) parameters (postconf(5):
// smtp_tls_security_level, smtp_tls_verify_cert_match,
// smtp_tls_wrappermode; TLS_README, "Mandatory server certificate
// verification"). The mapping is exact; combinations Postfix cannot
// express are refused, never weakened and never silently made stricter:
//
//	require_tls  require_ca_signed  validate_hostname   Postfix
//	no           no                 no                  main.cf's level applies (Debian: "may", opportunistic)
//	yes          no                 no                  encrypt: TLS, certificate not checked
//	yes          yes                yes                 verify, match=hostname: CA-signed, names the host
//	yes          yes                no                  refused: "verify" always checks a name too
//	no           yes                any                 refused: a certificate needs TLS
//	any          no                 yes                 refused: Postfix checks names only in CA-verified certificates
//	validate_hostname with an IP address as host         refused: Postfix matches DNS names only
//
// Port 465 (all hosts of a multiple-host route, rules/route.go) is SMTP over
// implicit TLS: smtp_tls_wrappermode = yes, and at least "encrypt", which
// wrapper mode requires (smtp_connect.c skips the host otherwise).
//
// With mx_lookup the host name that "hostname" matches is the MX host's,
// from a lookup that is not DNSSEC-validated: that is Postfix's "verify";
// "secure" would not trust it and would match the next-hop domain only.
// On a multiple-host route each host of the next-hop list is matched
// against its own name.
//
// When a requirement is set, smtp_tls_policy_maps is emptied for the
// transport: an entry there for the same next hop would override the level.
// Verification needs trust anchors (smtp_tls_CAfile or smtp_tls_CApath in
// main.cf; Debian's main.cf sets smtp_tls_CApath=/etc/ssl/certs).
func tlsParams(r *rules.Route) (params []Param, notes []string, err error) {
	switch {
	case r.RequireCASigned && !r.RequireTLS:
		return nil, nil, fmt.Errorf("%w: route %q: require_ca_signed needs require_tls", ErrTLS, r.Name)
	case r.ValidateHostname && !r.RequireCASigned:
		return nil, nil, fmt.Errorf("%w: route %q: validate_hostname needs require_ca_signed", ErrTLS, r.Name)
	case r.RequireCASigned && !r.ValidateHostname:
		return nil, nil, fmt.Errorf("%w: route %q: require_ca_signed without validate_hostname", ErrTLS, r.Name)
	}
	implicit := r.ImplicitTLS()
	switch {
	case r.ValidateHostname:
		for _, h := range r.Order(rules.Choice{}) {
			if _, err := netip.ParseAddr(h.Host); err == nil {
				return nil, nil, fmt.Errorf("%w: route %q: validate_hostname with the IP address %s", ErrTLS, r.Name, h.Host)
			}
		}
		params = []Param{
			{"smtp_tls_security_level", "verify"},
			{"smtp_tls_verify_cert_match", "hostname"},
		}
		notes = append(notes, "TLS: require_tls, require_ca_signed, validate_hostname: verify, the certificate must be CA-signed and name the server's host name")
	case r.RequireTLS:
		params = []Param{{"smtp_tls_security_level", "encrypt"}}
		notes = append(notes, "TLS: require_tls: encrypt, TLS required, certificate not checked")
	case implicit:
		params = []Param{{"smtp_tls_security_level", "encrypt"}}
		notes = append(notes, "TLS: port 465 is implicit TLS, so TLS is always used (encrypt), certificate not checked")
	default:
		notes = append(notes, "TLS: no requirement: main.cf's smtp_tls_security_level applies")
		return nil, notes, nil
	}
	if implicit {
		params = append(params, Param{"smtp_tls_wrappermode", "yes"})
		notes = append(notes, "port 465: SMTP over implicit TLS (smtp_tls_wrappermode)")
	}
	params = append(params, Param{"smtp_tls_policy_maps", ""})
	return params, notes, nil
}

// oneLine joins the lines of s, for use in a comment.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
