package postfix

import (
	"net/netip"
	"strings"

	"github.com/splitrelay/splitrelay/rules"
)

// service is route r's master.cf transport: a clone of the smtp(8) client
// ("smtp unix - - n - - smtp") with its own syslog name, the generic map
// that restores the original recipient, and the route's TLS requirements.
//
// Chroot is "n": the transport then needs nothing copied into the queue
// directory (resolv.conf, CA certificates) whatever the distribution's
// default is.
func service(r *rules.Route, genericRef string) Service {
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
	params, notes := tlsParams(r)
	s.Params = append(s.Params, params...)
	s.Comments = append(s.Comments, notes...)
	return s
}

// tlsParams maps a route's TLS options to smtp(8) parameters (postconf(5):
// smtp_tls_security_level, smtp_tls_verify_cert_match; TLS_README,
// "Mandatory server certificate verification"):
//
//	route options                          Postfix
//	(none)                                 main.cf's level applies (usually "may")
//	require_tls                            encrypt: TLS, certificate not checked
//	require_ca_signed                      verify, match=hostname,nexthop,dot-nexthop
//	validate_hostname (with or without CA) verify, match=hostname
//
// Postfix cannot express two of these faithfully, and the mapping then
// errs on the strict side, never the weak one:
//   - require_ca_signed alone: Postfix has no level that checks the CA chain
//     but no name. "verify" with the widest match (the server's host name,
//     the next-hop domain or a subdomain of it) is the closest.
//   - validate_hostname without require_ca_signed: Postfix checks a name
//     only in a certificate whose chain it verified, so the certificate
//     must be CA-signed too.
//
// With mx_lookup the host name that "hostname" matches comes from an MX
// lookup that is not DNSSEC-validated: that is Postfix's "verify"; "secure"
// would not trust it and would match the next-hop domain only.
//
// When a requirement is set, smtp_tls_policy_maps is emptied for the
// transport: an entry there for the same next hop would override the level.
// Verification needs trust anchors (smtp_tls_CAfile or smtp_tls_CApath in
// main.cf; Debian's main.cf sets smtp_tls_CApath=/etc/ssl/certs).
func tlsParams(r *rules.Route) (params []Param, notes []string) {
	switch {
	case r.ValidateHostname:
		params = []Param{
			{"smtp_tls_security_level", "verify"},
			{"smtp_tls_verify_cert_match", "hostname"},
		}
		note := "TLS: validate_hostname: verify, the certificate must be CA-signed and name the server's host name"
		if !r.RequireCASigned {
			note += " (Postfix checks names only in CA-signed certificates: stricter than validate_hostname alone)"
		}
		notes = append(notes, note)
	case r.RequireCASigned:
		params = []Param{
			{"smtp_tls_security_level", "verify"},
			{"smtp_tls_verify_cert_match", "hostname,nexthop,dot-nexthop"},
		}
		notes = append(notes, "TLS: require_ca_signed: verify; Postfix always matches a name too, so the certificate "+
			"must name the host or the next-hop domain (stricter than require_ca_signed alone)")
	case r.RequireTLS:
		params = []Param{{"smtp_tls_security_level", "encrypt"}}
		notes = append(notes, "TLS: require_tls: encrypt, TLS required, certificate not checked")
	default:
		notes = append(notes, "TLS: no requirement: main.cf's smtp_tls_security_level applies")
		return nil, notes
	}
	if r.RequireCASigned || r.ValidateHostname {
		host := strings.TrimSuffix(strings.TrimPrefix(r.Host, "["), "]")
		if _, err := netip.ParseAddr(host); err == nil {
			notes = append(notes, "WARNING: Postfix matches certificate names against DNS names; with the IP address "+host+
				" as next hop, verification fails unless the certificate names that address as a DNS name")
		}
	}
	params = append(params, Param{"smtp_tls_policy_maps", ""})
	return params, notes
}

// oneLine joins the lines of s, for use in a comment.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
