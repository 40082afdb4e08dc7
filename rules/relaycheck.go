package rules

import (
	"strings"
)

// Google's own relay replies (PRODUCT.md), so that clients, runbooks and
// bounce parsers that know smtp-relay.gmail.com behave the same. Details
// go to the log, never more than this to the client.
var (
	ReplyRelayDenied       = Reply{550, "5.7.0", "Mail relay denied"}
	ReplyInvalidCredential = Reply{550, "5.7.1", "Invalid credentials for relay"}
	ReplySendingDenied     = Reply{550, "5.7.0", "Mail Sending denied"}
	ReplyStartTLS          = Reply{530, "5.7.0", "Must issue a STARTTLS command first"}
	ReplyTooManyRcpts      = Reply{452, "4.5.3", "Your message has too many recipients"}
	ReplyUserDaily         = Reply{550, "5.4.5", "Daily SMTP relay limit exceeded for user"}
	ReplyOrgDaily          = Reply{550, "5.7.1", "Daily SMTP relay limit exceeded for customer"}
	ReplyOrgPeak           = Reply{450, "4.2.1", "Peak SMTP relay limit exceeded for customer"}
	ReplyTooBig            = Reply{552, "5.3.4", "Your message exceeded the message size limit"}
	// Google documents the rule (no several RCPT TO with MAIL FROM:<>) but
	// not its reply; this is Postfix's reject_multi_recipient_bounce one.
	ReplyMultiBounce = Reply{550, "5.5.3", "Multi-recipient bounce"}
)

// isRelay reports whether a recipient is outside our domains, or names
// another destination inside its local part ("user%host@ours",
// "host!user@ours", "\"user@host\"@ours"): MTAs have honoured such forms
// (allow_percent_hack, swap_bangpath), so the relay policy must judge them.
// An unqualified local part without such characters is local to the MTA.
func (rs *Ruleset) isRelay(rcpt string) bool {
	a, err := parseAddress(rcpt)
	if err != nil {
		return strings.ContainsAny(rcpt, "%!@")
	}
	return !rs.ours(a.domain) || strings.ContainsAny(a.local, "%!@")
}

// CheckRcpt is the RCPT TO decision: env holds the transaction so far
// (Recipients are those already accepted), rcpt is the new recipient.
// lim may be nil (no rolling limits, as at end of message and in
// explain); otherwise an accepted relay recipient is reserved in it. The result is a Recipient with Action Reject and the reply to
// send, or Keep.
func (rs *Ruleset) CheckRcpt(env Envelope, rcpt string, lim Limiter) Recipient {
	r := Recipient{Address: rcpt}
	if reply, reason, ok := rs.CheckRecipient(rcpt); !ok {
		r.Action, r.Reply, r.Reason = Reject, reply, reason
		return r
	}
	if rs.Relay == nil {
		return r
	}
	relay := rs.isRelay(rcpt)
	if env.Sender == "" && len(env.Recipients) > 0 && (relay || rs.anyRelay(env.Recipients)) {
		r.Action, r.Reply, r.Reason = Reject, ReplyMultiBounce, "null sender with more than one recipient in a relay transaction"
		return r
	}
	if !relay {
		return r
	}
	r.Relay = true
	if reply, reason, ok := rs.relayAllowed(env); !ok {
		r.Action, r.Reply, r.Reason = Reject, reply, reason
		return r
	}
	if lim != nil {
		if reply, reason, ok := rs.reserve(env, rcpt, lim); !ok {
			r.Action, r.Reply, r.Reason = Reject, reply, reason
			return r
		}
	}
	r.Reason = "relay allowed"
	return r
}

func (rs *Ruleset) anyRelay(rcpts []string) bool {
	for _, x := range rcpts {
		if rs.isRelay(x) {
			return true
		}
	}
	return false
}

// authenticated is SMTP AUTH that counts: only over TLS.
func (c Client) authenticated() bool { return c.Auth != "" && c.TLS }

// relayAllowed applies the policy to the client and sender, in the order
// an administrator debugs it: encryption, authentication, sender, size.
func (rs *Ruleset) relayAllowed(env Envelope) (Reply, string, bool) {
	p, c := rs.Relay, env.Client
	if p.RequireTLS && !c.TLS {
		return ReplyStartTLS, "relay requires TLS and the session is not encrypted", false
	}
	if p.RequireNetwork {
		if !c.Addr.IsValid() {
			return ReplyRelayDenied, "client address unknown; relay requires an allowed network", false
		}
		if _, ok := p.allowed(c.Addr); !ok {
			return ReplyRelayDenied, "client " + c.Addr.Unmap().String() + " is not in an enabled relay network", false
		}
	}
	if p.RequireSMTPAuth && !c.authenticated() {
		if c.Auth != "" {
			return ReplyRelayDenied, "SMTP AUTH without TLS does not count", false
		}
		return ReplyRelayDenied, "relay requires SMTP AUTH", false
	}
	if reply, reason, ok := rs.senderAllowed(env); !ok {
		return reply, reason, false
	}
	if lim := p.Limits.MessageSize; lim > 0 && env.SizeParam > lim {
		return ReplyTooBig, "SIZE parameter is over relay.limits.message_size", false
	}
	if lim := p.Limits.RecipientsPerMessage; lim > 0 && len(env.Recipients) >= lim {
		return ReplyTooManyRcpts, "relay.limits.recipients_per_message reached; start a new transaction", false
	}
	return Reply{}, "", true
}

// senderAllowed applies allowed_senders to the envelope sender.
func (rs *Ruleset) senderAllowed(env Envelope) (Reply, string, bool) {
	c := env.Client
	if env.Sender == "" {
		// Bounces and auto-replies: Google needs SMTP AUTH or a HELO in
		// our domains to know whose they are.
		if c.authenticated() || rs.oursHost(c.Helo) {
			return Reply{}, "", true
		}
		return ReplyInvalidCredential, "null sender needs SMTP AUTH or a HELO naming one of our domains", false
	}
	a, err := parseAddress(env.Sender)
	ours := err == nil && rs.ours(a.domain)
	switch rs.Relay.AllowedSenders {
	case RegisteredUsers:
		if !ours {
			return ReplyInvalidCredential, "sender is not in our domains", false
		}
		if !rs.users[a.key()] {
			return ReplySendingDenied, "sender is not a registered user", false
		}
	case DomainAddresses:
		if !ours {
			return ReplyInvalidCredential, "sender is not in our domains", false
		}
	case AnySender:
		if !ours && rs.postmasterDomain(c) == "" {
			return ReplyInvalidCredential, "sender outside our domains needs SMTP AUTH or a HELO naming one of our domains (to be rewritten to postmaster@)", false
		}
	}
	return Reply{}, "", true
}

// oursHost reports whether a HELO name is one of our domains or under one.
func (rs *Ruleset) oursHost(helo string) bool { return rs.orgDomain(helo) != "" }

// orgDomain returns the organisation domain a host or domain name falls
// under, or "".
func (rs *Ruleset) orgDomain(name string) string {
	d, err := normalizeDomain(name)
	if err != nil {
		return ""
	}
	for _, dom := range rs.Domains {
		if underDomain(d, dom) {
			return dom
		}
	}
	return ""
}

// postmasterDomain is the domain of the postmaster@ address that replaces
// a sender outside our domains with allowed_senders = "any": from the SMTP
// AUTH identity, else from the HELO/EHLO name.
func (rs *Ruleset) postmasterDomain(c Client) string {
	if c.authenticated() {
		if _, dom, ok := strings.Cut(c.Auth, "@"); ok {
			if d := rs.orgDomain(dom); d != "" {
				return d
			}
		}
	}
	return rs.orgDomain(c.Helo)
}

// rcptKey is the form unique-recipient counting uses.
func rcptKey(s string) string {
	if a, err := parseAddress(s); err == nil {
		return a.key()
	}
	return strings.ToLower(s)
}
