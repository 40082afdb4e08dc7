package rules

import (
	"fmt"
	"net/netip"
)

// Ruleset is a loaded, validated configuration. It is immutable after Load
// and safe for concurrent use; a reload builds a new Ruleset and swaps it in.
type Ruleset struct {
	// Name is the file name the rules were loaded from (for messages).
	Name string
	// ID is the configuration id: the first IDLen hex digits of a SHA-256
	// over the file and every file it reads (users_files), so that a
	// logged decision can be tied to the rules in force.
	ID string
	// Milter holds the [milter] section.
	Milter Milter
	// Log holds the [log] section.
	Log Log
	// Domains are the organisation's domains, lower-case IDNA A-labels, in
	// file order.
	Domains []string
	// Routes by name; RouteNames lists them sorted.
	Routes     map[string]*Route
	RouteNames []string
	// Rules are the [[split_delivery]] rules in file order.
	Rules []*Rule
	// Relay is the [relay] section; nil leaves recipients outside our
	// domains to the MTA's own relay restrictions.
	Relay *Relay
	// Metrics is the [metrics] section.
	Metrics Metrics
	// State is the [state] section: where the relay counters live.
	State State

	users  map[string]bool     // normalised address -> registered user
	groups map[string][]string // normalised group address -> flattened normalised members
	suffix string              // "." + Milter.RoutingSuffix, for suffix tests
}

// Milter is the [milter] section.
type Milter struct {
	// Listen is "unix:/path" or "inet:host:port" (also "tcp:" for inet).
	Listen string
	// RoutingSuffix is the reserved domain suffix of the routing namespace,
	// lower case, without leading or trailing dot.
	RoutingSuffix string
	// DryRun makes the milter decide and log only.
	DryRun bool
}

// Log is the [log] section.
type Log struct {
	Level  string // debug | info | warn | error
	Format string // auto | text | json
}

// Route is a named destination ([routes.NAME]).
type Route struct {
	Name        string
	Description string
	// Host and Port are the single-host form ("Un seul hôte").
	Host string // lower-case A-label host name, or an IP address
	Port int
	// Primary and Secondary are the multiple-host form ("Plusieurs
	// hôtes", host.go): mail is balanced over Primary by load; Secondary
	// takes it when no primary host does. Host is empty and Port 0 then.
	Primary   []Host
	Secondary []Host
	// MXLookup delivers to the MX hosts of Host instead of Host itself.
	MXLookup         bool
	RequireTLS       bool
	RequireCASigned  bool
	ValidateHostname bool
}

// Messages selects which messages a rule affects.
type Messages struct {
	Inbound  bool // "inbound": From header outside our domains
	Internal bool // "internal": From header in our domains (internal - receiving)
}

// Accounts selects which recipients a rule affects.
type Accounts struct {
	Users        bool // "users": registered accounts of the primary system
	Groups       bool // "groups": known group addresses
	Unrecognized bool // "unrecognized": any other address in our domains
}

// Rule is one [[split_delivery]] entry.
type Rule struct {
	Name     string
	Messages Messages
	Accounts Accounts
	Route    *Route
	// AlsoDeliver is dual delivery: normal delivery and a copy via Route.
	AlsoDeliver bool
	// Senders and Recipients are envelope filters; an empty list matches
	// everything, otherwise one entry of the list must match.
	Senders    []Matcher
	Recipients []Matcher
}

// Kind is the message kind split delivery looks at.
type Kind int

const (
	Inbound  Kind = iota // "inbound": from an external sender
	Internal             // "internal": internal - receiving
)

func (k Kind) String() string {
	if k == Internal {
		return "internal"
	}
	return "inbound"
}

// Account is what a recipient is to the primary system.
type Account int

const (
	External     Account = iota // not in our domains: relay policy, not split delivery
	User                        // "users"
	Group                       // "groups"
	Unrecognized                // "unrecognized"
)

func (a Account) String() string {
	switch a {
	case User:
		return "user"
	case Group:
		return "group"
	case Unrecognized:
		return "unrecognized"
	}
	return "external"
}

// Action is what happens to one recipient.
type Action int

const (
	Keep    Action = iota // normal delivery, address unchanged
	Reroute               // delivered only via Recipient.Route
	Reject                // refused at RCPT TO with Recipient.Reply (SMFIR_REPLYCODE 5xx/4xx)
	Defer                 // tempfailed at RCPT TO: we cannot know what the MTA stores (SMFIR_REPLYCODE 4xx)
)

func (a Action) String() string {
	switch a {
	case Reroute:
		return "route"
	case Reject:
		return "reject"
	case Defer:
		return "tempfail"
	}
	return "accept"
}

// Reply is an SMTP reply with an RFC 3463 enhanced status code.
type Reply struct {
	Code     int    // 550
	Enhanced string // "5.1.2"
	Text     string // "Bad destination system address"
}

func (r Reply) String() string { return fmt.Sprintf("%d %s %s", r.Code, r.Enhanced, r.Text) }

// Client is what the MTA knows about the SMTP client.
type Client struct {
	Addr netip.Addr // zero when unknown (then no network is allowed)
	Helo string     // the HELO/EHLO argument
	Auth string     // SASL login name ({auth_authen}); "" when not authenticated
	TLS  bool       // the SMTP session is encrypted (STARTTLS)
}

// Decision is the outcome for one message.
type Decision struct {
	// Reject, when set, refuses the whole message (size limit).
	Reject *Reply
	// Relay is true when some recipient is outside our domains and the
	// relay policy allowed it.
	Relay bool
	// Sender is the envelope sender to use when SenderRewritten: with
	// allowed_senders = "any", a sender outside our domains becomes
	// postmaster@<our domain>.
	Sender          string
	SenderRewritten bool
	SenderReason    string
	Kind            Kind
	// KindReason explains Kind ("from header domain example.com is ours",
	// "no from header", ...).
	KindReason string
	// Recipients are every RCPT TO of the transaction in SMTP order,
	// refused ones included (Action Reject or Defer).
	Recipients []Recipient
}

// Recipient is the decision for one envelope recipient.
type Recipient struct {
	Address string // as given in RCPT TO, without angle brackets
	// Addr is the address decided on: the MTA's stored form, parsed.
	Addr    Address
	Args    string // the ESMTP parameters of RCPT TO (NOTIFY, ORCPT)
	Account Account
	Action  Action
	Route   *Route // with Reroute
	Rule    string // the rule that chose Route, or rejected
	Copies  []Copy // dual delivery copies (never via Route)
	Reply   Reply  // with Reject
	Reason  string // why, for the log
	Relay   bool   // outside our domains: judged by the relay policy
	// Choice is the host picked for this message on a multiple-host
	// Route (host.go); zero otherwise.
	Choice Choice
	// Trace is every rule's outcome for this recipient, in file order,
	// when the transaction was traced (explain --trace).
	Trace []RuleTrace

	parsed bool // Addr holds the stored form
}

// RuleTrace is one rule's outcome for one recipient.
type RuleTrace struct {
	Rule    string
	Matched bool
	Why     string // "accounts: user recipients are not selected", "matched: route legacy", ...
}

// Copy is one dual-delivery copy of a recipient.
type Copy struct {
	Route  *Route
	Rule   string
	Choice Choice // as Recipient.Choice, for Route
}

// Files reads the files a configuration refers to (users_files). The
// daemon passes the real file system; tests pass a map.
type Files interface {
	ReadFile(name string) ([]byte, error)
}
