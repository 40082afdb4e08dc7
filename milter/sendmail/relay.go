package sendmail

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/splitrelay/splitrelay/rules"
)

// relay adds the sendmail.mc lines that make Sendmail itself enforce the
// [relay] policy as far as it can express it (defence in depth: the milter
// enforces all of it, with Google's replies), and says what it cannot.
//
//	networks (IPv4, /8 /16 /24 /32)    RELAY_DOMAIN(`192.0.2'): class R, which Relay_ok matches against the client address
//	other networks, IPv6               not expressed: class R matches whole octets of an IPv4 address
//	::1/128                            nothing to do: Sendmail lets its own host relay (measured)
//	require_smtp_auth alone            TRUST_AUTH_MECH(`PLAIN LOGIN'): authenticated clients may relay
//	network AND SMTP AUTH              networks only: Sendmail's relay checks are "either", never "both"
//	recipients_per_message             confMAX_RCPTS_PER_MESSAGE (452 4.5.3, all mail)
//	message_size                       confMAX_MESSAGE_SIZE (552 5.3.4, all mail)
//	require_tls, null sender limits    not expressed
func (c *Config) relay(p *rules.Relay) {
	if p == nil {
		c.Notes = append(c.Notes, "No [relay] section: splitrelay leaves recipients outside organization.domains to Sendmail's own relay rules.")
		return
	}
	if p.RequireNetwork {
		for _, n := range p.Networks {
			if !n.Enabled {
				continue
			}
			if n.Prefix.Addr().Is6() && !n.Prefix.Addr().Is4In6() {
				c.ipv6Network(n)
				continue
			}
			prefix, ok := octets(n.Prefix.String())
			if !ok {
				c.Unsupported = append(c.Unsupported, fmt.Sprintf("relay network %s (%s): Sendmail's relay class matches whole octets of an IPv4 address "+
					"(/8, /16, /24, /32); this network is not expressed, so Sendmail refuses to relay for it (550 5.7.1 Relaying denied) "+
					"before splitrelay decides. Add an access entry (Connect:ADDRESS RELAY) that covers it, or list it by octets.", n.Prefix, oneLine(n.Description)))
				continue
			}
			c.Relay = append(c.Relay, "RELAY_DOMAIN(`"+prefix+"')dnl")
		}
	}
	if p.RequireSMTPAuth {
		if p.RequireNetwork {
			c.Unsupported = append(c.Unsupported, "relay: require_network AND require_smtp_auth: Sendmail lets a client relay when it is "+
				"in a relay network OR authenticated, never only when both hold; the generated lines list the networks only, "+
				"so authenticated clients elsewhere get Sendmail's 550 5.7.1 Relaying denied, and splitrelay checks the AUTH.")
		} else {
			c.Relay = append(c.Relay, "TRUST_AUTH_MECH(`PLAIN LOGIN')dnl")
		}
		c.Notes = append(c.Notes, "SMTP AUTH only counts over TLS: give Sendmail a certificate (confSERVER_CERT, confSERVER_KEY) "+
			"and add p to confAUTH_OPTIONS so that it offers AUTH only after STARTTLS.")
	}
	if n := p.Limits.RecipientsPerMessage; n > 0 {
		c.Relay = append(c.Relay, "define(`confMAX_RCPTS_PER_MESSAGE', `"+strconv.Itoa(n)+"')dnl")
	}
	if n := p.Limits.MessageSize; n > 0 {
		c.Relay = append(c.Relay, "define(`confMAX_MESSAGE_SIZE', `"+strconv.FormatInt(n, 10)+"')dnl")
	}
	c.Notes = append(c.Notes, "The relay limits above (confMAX_RCPTS_PER_MESSAGE, confMAX_MESSAGE_SIZE) apply to all mail Sendmail receives; "+
		"splitrelay enforces the relay policy itself too, with Google's replies (after Sendmail's \"<address>... \" prefix).")
	if p.RequireTLS {
		c.Unsupported = append(c.Unsupported, "relay: require_tls is enforced by splitrelay only (Sendmail's relay rules do not look at TLS).")
	}
	c.Unsupported = append(c.Unsupported, "relay: a null sender with several recipients is refused by splitrelay only (Sendmail has no such restriction).")
}

// ipv6Network says what Sendmail makes of an IPv6 relay network. Its relay
// class holds IPv4 octets only. The loopback address needs nothing:
// Sendmail 8.17 lets its own host relay ("originates locally", measured by
// e2e TestSendmailRelayIPv6). Any other network is refused by Sendmail
// before splitrelay decides, unless an access entry lets it in. Sendmail
// names an IPv6 client with an IPv6: tag, uncompressed (measured: ::1 is
// IPv6:0:0:0:0:0:0:0:1), and its access database matches a client by its
// leftmost groups ("Connect:IPv6:2001:db8 RELAY"), so the entry for a
// network that ends on a group boundary is its leading groups written
// that way. Only loopback can be tested here, which Sendmail lets relay
// anyway: the entry is advice to check with sendmail -bt, not a
// generated line.
func (c *Config) ipv6Network(n rules.Network) {
	if n.Prefix.Bits() == 128 && n.Prefix.Addr() == netip.IPv6Loopback() {
		c.Notes = append(c.Notes, fmt.Sprintf("relay network %s (%s): nothing to add, Sendmail lets its own host relay.", n.Prefix, oneLine(n.Description)))
		return
	}
	msg := fmt.Sprintf("relay network %s (%s): Sendmail's relay class holds IPv4 octets only, so this IPv6 network is not expressed, "+
		"and Sendmail refuses to relay for it (550 5.7.1 Relaying denied) before splitrelay decides. An access entry lets it in: "+
		"Sendmail matches an IPv6 client by its leftmost groups, written with an IPv6: tag and uncompressed (::1 is IPv6:0:0:0:0:0:0:0:1)",
		n.Prefix, oneLine(n.Description))
	groups := strings.Split(uncompressed(n.Prefix.Masked().Addr()), ":")
	if bits := n.Prefix.Bits(); bits%16 == 0 {
		msg += fmt.Sprintf(", here Connect:IPv6:%s RELAY; check it with sendmail -bt.", strings.Join(groups[:bits/16], ":"))
	} else {
		msg += fmt.Sprintf("; /%d does not end on a group (a multiple of 16 bits): write one entry per /%d it holds, "+
			"or a shorter prefix if splitrelay's own check is enough; check them with sendmail -bt.", bits, (bits/16+1)*16)
	}
	c.Unsupported = append(c.Unsupported, msg)
}

// uncompressed writes an IPv6 address as Sendmail names a client: eight
// groups in hexadecimal, none left out.
func uncompressed(a netip.Addr) string {
	b := a.As16()
	groups := make([]string, 8)
	for i := range groups {
		groups[i] = strconv.FormatUint(uint64(b[2*i])<<8|uint64(b[2*i+1]), 16)
	}
	return strings.Join(groups, ":")
}

// octets returns an IPv4 prefix of 8, 16, 24 or 32 bits as the dotted
// octets it covers ("192.0.2"); ok is false for anything else.
func octets(prefix string) (string, bool) {
	addr, bits, ok := strings.Cut(prefix, "/")
	if !ok || strings.Contains(addr, ":") {
		return "", false
	}
	n, err := strconv.Atoi(bits)
	if err != nil || n%8 != 0 || n == 0 {
		return "", false
	}
	parts := strings.Split(addr, ".")
	if len(parts) != 4 {
		return "", false
	}
	return strings.Join(parts[:n/8], "."), true
}
