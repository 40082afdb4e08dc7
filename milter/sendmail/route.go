package sendmail

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/splitrelay/splitrelay/rules"
)

// caNote is the advice for routes that need a CA-signed certificate.
const caNote = "TLS_Srv VERIFY checks the server's certificate against Sendmail's trust anchors: set confCACERT_PATH " +
	"(Debian: /etc/ssl/certs) and confCACERT in sendmail.mc."

// LabelMap is the regex map (LOCAL_CONFIG) that recognises a host label
// (rules/host.go: p<N>, p<N>s<M>); a match returns "@LABEL".
const LabelMap = "splitrelay_label"

// routing fills the mailers and the LOCAL_RULE_0 rules of the routes, and
// says what their options need that Sendmail cannot express.
//
// Order matters, first match wins within ruleset 0: the host labels of
// every route; then any other label, deferred (mail queued under host
// tables that changed: only the table that chose the label knew its
// hosts); then the plain form of every route; then the catch-all that
// defers a route Sendmail does not know.
func (c *Config) routing(routes []*rules.Route) error {
	ns := tokens(c.Suffix) + " ."
	var labelRules, plainRules []Rule
	for _, r := range routes {
		mailers, unsupported := routeMailers(r)
		c.Mailers = append(c.Mailers, mailers...)
		c.Unsupported = append(c.Unsupported, unsupported...)
		for _, ch := range r.Labels() {
			rhs, err := target(r, ch)
			if err != nil {
				return err
			}
			labelRules = append(labelRules, Rule{
				LHS: "$* < @ $+ . " + r.Label(ch) + " . " + r.Name + " . " + ns + " > $*",
				RHS: rhs + " $: $1 < @ $2 . > $3",
			})
		}
		rhs, err := target(r, rules.Choice{})
		if err != nil {
			return err
		}
		comment := "route " + r.Name
		if d := oneLine(r.Description); d != "" {
			comment += ": " + d
		}
		plainRules = append(plainRules, Rule{
			LHS:     "$* < @ $+ . " + r.Name + " . " + ns + " > $*",
			RHS:     rhs + " $: $1 < @ $2 . > $3",
			Comment: comment,
		})
		c.tls(r)
	}
	if len(labelRules) > 0 {
		labelRules[0].Comment = "host labels of balanced routes: the chosen host first, then the others in order"
	}
	c.Rules = append(c.Rules, labelRules...)
	c.Rules = append(c.Rules,
		Rule{
			LHS:     "$* < @ $+ . $- . $- . " + ns + " > $*",
			RHS:     "$: $(" + LabelMap + " $3 $) $| $1 < @ $2 . $3 . $4 . " + ns + " > $5",
			Comment: "any other host label: deferred (queued under host tables that changed)",
		},
		Rule{LHS: "@ LABEL $| $*", RHS: "$#" + DeferMailer + " $@ splitrelay $: $1"},
		Rule{LHS: "$* $| $*", RHS: "$: $2"},
	)
	c.Rules = append(c.Rules, plainRules...)
	c.Rules = append(c.Rules, Rule{
		LHS:     "$* < @ $+ . " + ns + " > $*",
		RHS:     "$#" + DeferMailer + " $@ splitrelay $: $1 < @ $2 . " + ns + " > $3",
		Comment: "a route Sendmail does not know (sendmail.cf not rebuilt): deferred, not lost",
	})
	return nil
}

// routeMailers returns the mailers of r: one, or one per port when its
// hosts use different ports (a mailer's A= holds one port).
func routeMailers(r *rules.Route) ([]Mailer, []string) {
	ports := routePorts(r)
	desc := "route " + r.Name
	if d := oneLine(r.Description); d != "" {
		desc += ": " + d
	}
	if len(ports) == 1 {
		return []Mailer{{Name: MailerPrefix + r.Name, Port: ports[0], Comment: desc}}, nil
	}
	var ms []Mailer
	var ps []string
	for _, p := range ports {
		ms = append(ms, Mailer{Name: mailerName(r, p), Port: p, Comment: desc + ", hosts on port " + strconv.Itoa(p)})
		ps = append(ps, strconv.Itoa(p))
	}
	return ms, []string{fmt.Sprintf("route %s: its hosts use ports %s, and a Sendmail mailer connects to one port: "+
		"there is one mailer per port, and a message falls back only to the hosts on the port of the host chosen for it "+
		"(Postfix falls back to all of them).", r.Name, strings.Join(ps, " and "))}
}

// routePorts lists the distinct ports of r's hosts, in delivery order.
func routePorts(r *rules.Route) []int {
	var ports []int
	for _, h := range r.Order(rules.Choice{}) {
		p := h.Port
		if p == 0 {
			p = 25
		}
		if !slices.Contains(ports, p) {
			ports = append(ports, p)
		}
	}
	return ports
}

func mailerName(r *rules.Route, port int) string {
	if len(routePorts(r)) == 1 {
		return MailerPrefix + r.Name
	}
	return MailerPrefix + r.Name + "-" + strconv.Itoa(port)
}

// target is the "$#mailer $@ hosts" of route r for host choice c: the
// mailer of the chosen host's port and the colon-separated host list in
// delivery order, restricted to that port.
func target(r *rules.Route, c rules.Choice) (string, error) {
	order := r.Order(c)
	port := order[0].Port
	if port == 0 {
		port = 25
	}
	var hosts []string
	for _, h := range order {
		p := h.Port
		if p == 0 {
			p = 25
		}
		if p != port {
			continue
		}
		hh, err := hostForm(r, h.Host)
		if err != nil {
			return "", err
		}
		hosts = append(hosts, hh)
	}
	return "$#" + mailerName(r, port) + " $@ " + strings.Join(hosts, ":"), nil
}

// hostForm is how a mailer's $@ names a host: "[name]" or "[IPv6:addr]"
// without MX lookups, "name" with them ("$@ host" in a mailer triple, Sendmail
// Installation and Operation Guide, "Address Resolution").
func hostForm(r *rules.Route, host string) (string, error) {
	h := strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if ip, err := netip.ParseAddr(h); err == nil {
		if r.MXLookup {
			return "", fmt.Errorf("sendmail: route %q: mx_lookup needs a domain name, not the address %s", r.Name, h)
		}
		if ip.Is6() && !ip.Is4In6() {
			return "[IPv6:" + ip.WithZone("").String() + "]", nil
		}
		return "[" + ip.Unmap().String() + "]", nil
	}
	h = strings.ToLower(strings.TrimSuffix(h, "."))
	if !isDomain(h) {
		return "", fmt.Errorf("sendmail: route %q: host %q is neither a host name nor an IP address", r.Name, host)
	}
	if r.MXLookup {
		return h, nil
	}
	return "[" + h + "]", nil
}

// tls records what r's TLS options need: access database entries where
// Sendmail can express them (TLS_Srv, cf/README "Requiring TLS"), and
// what it cannot.
//
//	require_tls                       TLS_Srv:host ENCR:112 (TLS with at least 112 bits)
//	+ require_ca_signed               TLS_Srv:host VERIFY:112 (certificate checked against confCACERT_PATH)
//	+ validate_hostname               not expressed: TLS_Srv does not match the certificate to the host name
//	mx_lookup with any requirement     not expressed: the MX hosts' names are not known in advance
//	port 465 (implicit TLS)            not expressed
//
// TLS_Srv entries are per host: they apply to all mail Sendmail sends to
// that host, whichever route or mailer.
func (c *Config) tls(r *rules.Route) {
	if r.ImplicitTLS() {
		c.Unsupported = append(c.Unsupported, fmt.Sprintf("route %s: its hosts use port 465 (SMTP over implicit TLS); "+
			"the generated mailer speaks plain SMTP with STARTTLS and cannot deliver there.", r.Name))
	}
	if !r.RequireTLS {
		return
	}
	level := "ENCR:112"
	if r.RequireCASigned {
		level = "VERIFY:112"
	}
	if r.MXLookup {
		c.Unsupported = append(c.Unsupported, fmt.Sprintf("route %s: require_tls with mx_lookup: Sendmail's TLS requirements "+
			"(TLS_Srv entries in the access database) name the server's host, and the MX hosts of %s are not known in advance: "+
			"add TLS_Srv:<MX host> %s entries yourself.", r.Name, r.Host, level))
	} else {
		for _, h := range r.Order(rules.Choice{}) {
			c.Access = append(c.Access, fmt.Sprintf("TLS_Srv:%s\t%s", strings.Trim(h.Host, "[]"), level))
		}
		c.Unsupported = append(c.Unsupported, fmt.Sprintf("route %s: TLS levels are per route in splitrelay, per host in Sendmail: "+
			"the TLS_Srv entries for its hosts go into the access database (FEATURE(access_db)) and apply to every message "+
			"Sendmail sends to those hosts.", r.Name))
	}
	if r.RequireCASigned && !slices.Contains(c.Notes, caNote) {
		c.Notes = append(c.Notes, caNote)
	}
	if r.ValidateHostname {
		c.Unsupported = append(c.Unsupported, fmt.Sprintf("route %s: validate_hostname is not enforced: Sendmail's VERIFY "+
			"checks that the certificate is CA-signed, not that it names the host.", r.Name))
	}
}
