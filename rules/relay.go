package rules

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// The SMTP relay service (seed 003): who may send mail through the gateway
// to recipients outside our domains, with Google's allowed-sender modes,
// IP allowlist, SMTP AUTH, TLS requirement and limits.

// Senders is the allowed_senders mode.
type Senders int

const (
	RegisteredUsers Senders = iota // "registered_users": a known account in our domains
	DomainAddresses                // "domain_addresses": any address in our domains, subdomains allowed
	AnySender                      // "any": any sender; outside ours rewritten to postmaster@<our domain>
)

func (s Senders) String() string {
	return [...]string{"registered_users", "domain_addresses", "any"}[s]
}

// Relay is the [relay] section. A Ruleset without one leaves recipients
// outside our domains to the MTA's own relay restrictions.
type Relay struct {
	AllowedSenders  Senders
	RequireNetwork  bool // only clients in an enabled entry of Networks
	RequireSMTPAuth bool // SMTP AUTH, which only counts over TLS
	RequireTLS      bool
	Networks        []Network
	Limits          Limits

	// LogBadHelo logs and counts relay clients whose HELO/EHLO name is
	// generic (localhost) or the gateway's own (BadHelo): the seed asks
	// for a real name; nothing is refused for it.
	LogBadHelo bool
}

// Network is one entry of the IP allowlist.
type Network struct {
	Prefix      netip.Prefix
	Description string
	Enabled     bool
}

// Limits are the relay limits; 0 means no limit.
type Limits struct {
	RecipientsPerMessage      int
	UserMessagesPerDay        int
	UserRecipientsPerDay      int // unique recipients
	OrgRecipientsPerDay       int
	OrgRecipientsPer10Minutes int
	MessageSize               int64 // bytes
}

// maxRangeBits: a range may hold at most 65,536 addresses, as in Google's
// dialog.
const maxRangeBits = 16

func (l *loader) relay(f *file, rs *Ruleset) {
	if !l.md.IsDefined("relay") {
		return
	}
	fr := f.Relay
	r := &Relay{RequireNetwork: fr.RequireNetwork, RequireSMTPAuth: fr.RequireSMTPAuth, RequireTLS: fr.RequireTLS, LogBadHelo: fr.LogBadHelo}
	switch fr.AllowedSenders {
	case "registered_users":
		r.AllowedSenders = RegisteredUsers
	case "domain_addresses":
		r.AllowedSenders = DomainAddresses
	case "any":
		r.AllowedSenders = AnySender
	default:
		l.errorf(nil, "relay.allowed_senders", "%q: want registered_users, domain_addresses or any", fr.AllowedSenders)
	}
	if !r.RequireNetwork && !r.RequireSMTPAuth {
		l.errorf(nil, "relay", "choose at least one authentication: require_network = true (IP allowlist) and/or require_smtp_auth = true")
	}
	for i, n := range fr.Networks {
		path := fmt.Sprintf("relay.networks[%d]", i)
		p, err := parsePrefix(n.CIDR)
		if err != nil {
			l.errorf(nil, path+".cidr", "%v", err)
			continue
		}
		if n.Enabled == nil {
			l.errorf(nil, path, "say enabled = true or enabled = false")
			continue
		}
		r.Networks = append(r.Networks, Network{Prefix: p, Description: n.Description, Enabled: *n.Enabled})
	}
	lim := fr.Limits
	r.Limits = Limits{
		RecipientsPerMessage:      lim.RecipientsPerMessage,
		UserMessagesPerDay:        lim.UserMessagesPerDay,
		UserRecipientsPerDay:      lim.UserRecipientsPerDay,
		OrgRecipientsPerDay:       lim.OrgRecipientsPerDay,
		OrgRecipientsPer10Minutes: lim.OrgRecipientsPer10Minutes,
	}
	for key, v := range map[string]int{
		"recipients_per_message": lim.RecipientsPerMessage, "user_messages_per_day": lim.UserMessagesPerDay,
		"user_recipients_per_day": lim.UserRecipientsPerDay, "org_recipients_per_day": lim.OrgRecipientsPerDay,
		"org_recipients_per_10_minutes": lim.OrgRecipientsPer10Minutes,
	} {
		if v < 0 {
			l.errorf(nil, "relay.limits."+key, "%d: want a positive number, or 0 for no limit", v)
		}
	}
	size, err := ParseSize(lim.MessageSize)
	if err != nil {
		l.errorf(nil, "relay.limits.message_size", "%v", err)
	}
	r.Limits.MessageSize = size
	rs.Relay = r
}

// parsePrefix accepts an address or a CIDR range of at most 65,536
// addresses, without host bits.
func parsePrefix(s string) (netip.Prefix, error) {
	if !strings.Contains(s, "/") {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%q is not an IP address or CIDR range", s)
		}
		a = a.Unmap()
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not an IP address or CIDR range", s)
	}
	if p.Addr().Is4In6() {
		if p.Bits() < 96 {
			return netip.Prefix{}, fmt.Errorf("%q: an IPv4-mapped range needs a /96 or longer prefix", s)
		}
		p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
	}
	if p.Masked() != p {
		return netip.Prefix{}, fmt.Errorf("%q has host bits set: did you mean %s?", s, p.Masked())
	}
	if p.Addr().BitLen()-p.Bits() > maxRangeBits {
		return netip.Prefix{}, fmt.Errorf("%q holds more than 65,536 addresses: use /%d or longer", s, p.Addr().BitLen()-maxRangeBits)
	}
	return p, nil
}

// ParseSize reads a size such as "25MB": a number with an optional unit B,
// KB, MB, GB (powers of 1000) or KiB, MiB, GiB (powers of 1024); "0" is no
// limit.
func ParseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	i := 0
	for i < len(t) && t[i] >= '0' && t[i] <= '9' {
		i++
	}
	n, err := strconv.ParseInt(t[:i], 10, 64)
	if err != nil || i == 0 {
		return 0, fmt.Errorf("%q: want a size such as \"25MB\"", s)
	}
	mult := map[string]int64{"": 1, "B": 1, "KB": 1e3, "MB": 1e6, "GB": 1e9, "KIB": 1 << 10, "MIB": 1 << 20, "GIB": 1 << 30}[strings.ToUpper(strings.TrimSpace(t[i:]))]
	if mult == 0 {
		return 0, fmt.Errorf("%q: unknown unit (use B, KB, MB, GB, KiB, MiB or GiB)", s)
	}
	if n > (1<<62)/mult {
		return 0, fmt.Errorf("%q is too large", s)
	}
	return n * mult, nil
}

// allowed reports whether addr is in an enabled network.
func (r *Relay) allowed(addr netip.Addr) (Network, bool) {
	addr = addr.Unmap()
	for _, n := range r.Networks {
		if n.Enabled && n.Prefix.Contains(addr) {
			return n, true
		}
	}
	return Network{}, false
}
