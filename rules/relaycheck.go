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
	// ReplyUndecidable tempfails a recipient whose stored form we cannot
	// know: never guessed, the client keeps the message (RFC 5321's 451
	// text).
	ReplyUndecidable = Reply{451, "4.3.0", "Requested action aborted: local error in processing"}
)

// authenticated is SMTP AUTH that counts: only over TLS.
func (c Client) authenticated() bool { return c.Auth != "" && c.TLS }

// relayAllowed applies the policy to the client and sender, in the order
// an administrator debugs it: encryption, authentication, sender, size.
func (t *Tx) relayAllowed() (Reply, string, bool) {
	p, c := t.rs.Relay, t.client
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
	if reply, reason, ok := t.senderAllowed(); !ok {
		return reply, reason, false
	}
	if lim := p.Limits.MessageSize; lim > 0 && t.sizeParam > lim {
		return ReplyTooBig, "SIZE parameter is over relay.limits.message_size", false
	}
	if lim := p.Limits.RecipientsPerMessage; lim > 0 && t.accepted >= lim {
		return ReplyTooManyRcpts, "relay.limits.recipients_per_message reached; start a new transaction", false
	}
	return Reply{}, "", true
}

// senderAllowed applies allowed_senders to the envelope sender.
func (t *Tx) senderAllowed() (Reply, string, bool) {
	rs, c := t.rs, t.client
	if t.sender == "" {
		// Bounces and auto-replies: Google needs SMTP AUTH or a HELO in
		// our domains to know whose they are.
		if c.authenticated() || rs.oursHost(c.Helo) {
			return Reply{}, "", true
		}
		return ReplyInvalidCredential, "null sender needs SMTP AUTH or a HELO naming one of our domains", false
	}
	a := t.from
	ours := t.fromOK && rs.ours(a.ASCII)
	switch rs.Relay.AllowedSenders {
	case RegisteredUsers:
		if !ours {
			return ReplyInvalidCredential, "sender is not in our domains", false
		}
		if !rs.users[a.Key] {
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
