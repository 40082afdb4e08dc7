package sendmail

import (
	"fmt"
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
