package sendmail

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/splitrelay/splitrelay/rules"
)

// FilterName is the name of our INPUT_MAIL_FILTER (Sendmail's X line).
const FilterName = "splitrelay"

// MailerPrefix starts the name of every mailer we generate: route "legacy"
// is delivered by mailer "splitrelay-legacy".
const MailerPrefix = "splitrelay-"

// DeferMailer takes routed addresses whose route Sendmail does not know.
const DeferMailer = MailerPrefix + "defer"

// FilterTimeouts are the INPUT_MAIL_FILTER timeouts (cf/README, "Adding
// Mail Filters"): connect, sending a command, reading a reply, and the
// whole end-of-message exchange. Sendmail's defaults are C:5m;S:10s;R:10s;
// E:5m: a milter host that does not answer the connection would hold each
// SMTP session for 5 minutes before F=T tempfails it, so the connect is
// 10 seconds; a reply may take 30 (a directory or Redis lookup on a bad
// day) within the same 5 minutes overall.
const FilterTimeouts = "C:10s;S:30s;R:30s;E:5m"

// NamespaceReply is what Local_check_rcpt answers a client that names an
// address in the routing namespace, as the milter and Postfix do.
var NamespaceReply = rules.Reply{Code: 550, Enhanced: "5.1.2", Text: "Bad destination system address"}

// Config is the Sendmail side of a ruleset.
type Config struct {
	Source string // the ruleset's file name, for comments
	Suffix string // the routing suffix, lower case, no dots around
	Milter string // the S= of INPUT_MAIL_FILTER: "local:/path" or "inet:PORT@HOST"

	Macros  []Macro  // added to confMILTER_MACROS_* unless there
	Relay   []string // relay lines of sendmail.mc (m4, complete)
	Mailers []Mailer
	Rules   []Rule // LOCAL_RULE_0, in order
	// Access holds access database entries (TLS_Srv) that the routes'
	// TLS options need; they cannot be part of sendmail.mc.
	Access []string
	// Unsupported says, one paragraph each, what this configuration needs
	// that Sendmail cannot express; the block is still generated.
	Unsupported []string
	Notes       []string // other advice, one paragraph each
}

// Macro is one macro the milter reads and the Milter.macros list
// (confMILTER_MACROS_*) that must carry it.
type Macro struct{ List, Name string }

// Mailer is one M line: a clone of the esmtp mailer with the route's port.
type Mailer struct {
	Name    string // splitrelay-<route>[-<port>]
	Port    int
	Comment string
}

// Line is the mailer's definition (M line with its continuation).
func (m Mailer) Line() string {
	return "M" + m.Name + ",\tP=[IPC], F=mDFMuXa, S=EnvFromSMTP/HdrFromSMTP, R=EnvToSMTP, E=\\r\\n, L=990,\n" +
		"\t\tT=DNS/RFC822/SMTP, A=TCP $h " + strconv.Itoa(m.Port)
}

// Rule is one rewriting rule (R line): LHS and RHS are separated by a tab
// in the configuration file.
type Rule struct {
	LHS, RHS string
	Comment  string // a "#" line before the rule, if not empty
}

// Line is the R line.
func (r Rule) Line() string { return "R" + r.LHS + "\t" + r.RHS }

// Generate returns the Sendmail configuration for rs.
func Generate(rs *rules.Ruleset) (*Config, error) {
	suffix := strings.ToLower(strings.Trim(rs.Milter.RoutingSuffix, "."))
	if !isDomain(suffix) {
		return nil, fmt.Errorf("sendmail: milter.routing_suffix %q is not a domain name", rs.Milter.RoutingSuffix)
	}
	spec, err := milterSpec(rs.Milter.Listen)
	if err != nil {
		return nil, err
	}
	routes, err := checkedRoutes(rs)
	if err != nil {
		return nil, err
	}
	c := &Config{Source: rs.Name, Suffix: suffix, Milter: spec}
	c.Macros = []Macro{
		{"confMILTER_MACROS_HELO", "{tls_version}"},
		{"confMILTER_MACROS_ENVFROM", "{auth_authen}"},
		{"confMILTER_MACROS_ENVFROM", "i"},
		{"confMILTER_MACROS_ENVRCPT", "i"},
		{"confMILTER_MACROS_EOM", "i"},
	}
	if err := c.routing(routes); err != nil {
		return nil, err
	}
	c.relay(rs.Relay)
	if strings.HasPrefix(spec, "local:") {
		c.Notes = append(c.Notes, "Sendmail must be able to open the milter socket "+strings.TrimPrefix(spec, "local:")+
			" (Debian's sendmail daemon runs as root): on a Sendmail host the package's socket directory is /run/splitrelay; "+
			"or listen on inet:127.0.0.1:10028.")
	}
	c.Notes = append(c.Notes,
		"If your sendmail.mc already defines a Local_check_rcpt ruleset, move the rules of ours to the start of yours.",
		"Run splitrelay sendmail again and rebuild sendmail.cf after adding or changing routes: "+
			"until then mail for a new route is deferred (kept in the queue), not lost.",
	)
	return c, nil
}

// milterSpec is the [milter] listen address as INPUT_MAIL_FILTER's S=
// names it (cf/README, "Adding Mail Filters"): "local:/path" for a unix
// socket, "inet:PORT@HOST" or "inet6:PORT@HOST" for TCP; a wildcard listen
// host is reached on the loopback address.
func milterSpec(listen string) (string, error) {
	la, err := rules.ParseListenAddr(listen)
	if err != nil {
		return "", fmt.Errorf("sendmail: milter.listen %w", err)
	}
	if la.Network == "unix" {
		if strings.ContainsAny(la.Path, ", \t`'") {
			return "", fmt.Errorf("sendmail: milter.listen %q: Sendmail cannot name a socket path with commas, quotes or blanks", listen)
		}
		return "local:" + la.Path, nil
	}
	if host := la.DialHost(); strings.Contains(host, ":") {
		return "inet6:" + la.Port + "@" + host, nil
	}
	return "inet:" + la.Port + "@" + la.DialHost(), nil
}

// tokens writes a domain as Sendmail's tokenizer splits it: "a . b . c".
func tokens(domain string) string { return strings.ReplaceAll(domain, ".", " . ") }

// oneLine joins the lines of s and drops m4's quote characters, for
// comments.
func oneLine(s string) string {
	s = strings.NewReplacer("`", "", "'", "").Replace(s)
	return strings.Join(strings.Fields(s), " ")
}

// checkedRoutes is rs.SortedRoutes, each name checked once more before it
// becomes part of an address and a mailer name.
func checkedRoutes(rs *rules.Ruleset) ([]*rules.Route, error) {
	routes := rs.SortedRoutes()
	for _, r := range routes {
		if !rules.ValidLabel(r.Name) {
			return nil, fmt.Errorf("sendmail: route %q: name must be a DNS label (letters, digits, hyphens) to be part of an address", r.Name)
		}
	}
	return routes, nil
}

// isDomain is the rules' own host name check.
func isDomain(s string) bool { return rules.ValidHostname(s) }
