package rules

import "strings"

// Tx is one SMTP transaction, MAIL FROM to end of message, as the rules
// see it. The milter session, explain and the tests all drive it the same
// way:
//
//	t := rs.Begin(client, sender, sizeParam, limiter)
//	v := t.Rcpt(rcpt)          // at each RCPT TO: the verdict to reply with
//	d := t.End(msg)            // at end of message: what to do with each
//
// Every address is parsed once, at Rcpt, and every later check reads the
// parsed form. The RCPT verdict is the first half of the decision: End
// never re-judges a recipient, so RCPT and end of message cannot disagree.
// Relay limits are checked in O(1) per recipient. A Tx is not safe for
// concurrent use (one SMTP session drives it).
type Tx struct {
	rs     *Ruleset
	client Client
	sender string // raw envelope sender, "" for the null sender
	from   Address
	fromOK bool
	// SizeParam is the MAIL FROM SIZE= parameter, 0 when absent.
	sizeParam int64
	lim       Limiter // nil: no rolling limits (explain)
	trace     bool

	rcpts    []Recipient // every RCPT TO, in SMTP order, refused ones included
	accepted int         // recipients not refused
	relay    int         // relay recipients accepted

}

// RcptIn is one RCPT TO as the MTA reports it.
type RcptIn struct {
	// Raw is the argument as the client wrote it, without angle brackets.
	Raw string
	// Stored is the MTA's stored form of the recipient (Postfix's
	// {rcpt_addr}); "" when the MTA did not say, then Canonical(Raw) is
	// used when it is unambiguous.
	Stored string
	// Args are the ESMTP parameters of RCPT TO (NOTIFY, ORCPT), carried
	// to the decision so that a routed recipient keeps them.
	Args string
}

// Verdict is the reply to one RCPT TO.
type Verdict struct {
	Action Action // Keep, Reject or Defer
	Reply  Reply  // with Reject and Defer
	Reason string
	Relay  bool // judged by the relay policy
}

// Message is what end of message adds to the envelope.
type Message struct {
	// HeaderFrom is the raw value of the From header field(s), joined
	// with ", "; empty when the message has none.
	HeaderFrom string
	// Size is the real message size, 0 when not known.
	Size int64
	// Rand returns a uniform random integer in [0, n); it picks the
	// hosts of multiple-host routes by load, once per message and route.
	// The milter passes math/rand/v2's IntN; nil always picks the first
	// host of each table (deterministic, for tests and explain).
	Rand func(n int) int
}

// Begin starts a transaction for sender (the MAIL FROM address without
// angle brackets, "" for the null sender) from client. lim may be nil: no
// rolling limits (explain); otherwise each accepted relay recipient is
// reserved in it, atomically with the check, and the caller commits or
// releases the transaction's reservations.
func (rs *Ruleset) Begin(c Client, sender string, sizeParam int64, lim Limiter) *Tx {
	t := &Tx{rs: rs, client: c, sender: sender, sizeParam: sizeParam, lim: lim}
	if sender != "" {
		t.from, t.fromOK = canonicalOrParse(sender)
	}
	return t
}

// Trace makes End record, for every recipient, why each rule matched or
// not (explain --trace).
func (t *Tx) Trace() { t.trace = true }

func canonicalOrParse(s string) (Address, bool) {
	if a, ok := Canonical(s); ok {
		return a, true
	}
	a, err := ParseAddress(s)
	return a, err == nil
}

// Rcpt judges one RCPT TO: the routing namespace, the stored form, the
// relay policy and its limits. A refused recipient is remembered (End
// reports it) but does not count as part of the transaction.
func (t *Tx) Rcpt(in RcptIn) Verdict {
	rs := t.rs
	r := Recipient{Address: in.Raw, Args: in.Args, Action: Keep}
	v := t.rcpt(in, &r)
	r.Action, r.Reply, r.Reason, r.Relay = v.Action, v.Reply, v.Reason, v.Relay
	if v.Action == Keep {
		t.accepted++
		if v.Relay {
			t.relay++
		}
	}
	if r.parsed && !r.Relay && v.Action == Keep {
		if rs.ours(r.Addr.ASCII) {
			r.Account, r.Canonical = rs.resolve(r.Addr)
		} else if r.Reason == "" {
			r.Reason = "recipient domain " + r.Addr.ASCII + " is not ours; split delivery does not apply"
		}
	}
	t.rcpts = append(t.rcpts, r)
	return v
}

func (t *Tx) rcpt(in RcptIn, r *Recipient) Verdict {
	rs := t.rs
	if rs.inNamespace(in.Raw) || in.Stored != "" && rs.inNamespace(in.Stored) {
		return Verdict{Action: Reject, Reply: routingReply, Reason: "recipient is in the routing namespace ." + rs.Milter.RoutingSuffix}
	}
	var (
		a     Address
		known bool
		why   string
	)
	if in.Stored != "" {
		var err error
		a, err = ParseAddress(in.Stored)
		if known = err == nil; !known {
			why = "the MTA's stored form " + in.Stored + " is not an address we can read"
		}
		// Postfix's {rcpt_addr} comes out of trivial-rewrite lower-cased,
		// while the queue file keeps the client's case: when the client's
		// own form is the same address, route that one, so the route's
		// server sees it exactly as written.
		//
		// The resolver also applies the percent and bang hacks to a
		// domain in mydestination ({rcpt_addr} a@b for a%b@ours), which
		// the queue file does not: what is delivered is the client's
		// form, so that one is judged (as a relay recipient).
		if in.Raw != in.Stored {
			if c, ok := Canonical(in.Raw); known && ok && (c.Key == a.Key || strings.ContainsAny(c.Local, "%!")) {
				a = c
			}
		}
	} else {
		a, known = Canonical(in.Raw)
		why = "the MTA did not say how it stores this recipient ({rcpt_addr}) and it is not a plain local@domain"
	}
	r.Addr, r.parsed = a, known
	if !known {
		// A % or ! names another destination whatever the stored form
		// is: the relay policy can refuse it without knowing more.
		if rs.Relay != nil && !t.client.Local && strings.ContainsAny(in.Raw, "%!") {
			if reply, reason, ok := t.relayAllowed(); !ok {
				return Verdict{Action: Reject, Reply: reply, Reason: reason, Relay: true}
			}
		}
		if rs.Relay == nil && !rs.couldBeOurs(in.Raw) {
			return Verdict{Reason: "recipient address has no domain of ours we can read; left to the MTA"}
		}
		// Never guess: the MTA may deliver it to one of our domains
		// unrouted, or relay it unjudged. The client keeps it.
		return Verdict{Action: Defer, Reply: ReplyUndecidable, Reason: why}
	}
	if rs.Relay == nil || t.client.Local { // mail submitted on the MTA host is not relay traffic
		return Verdict{}
	}
	relay := !rs.ours(a.ASCII) || strings.ContainsAny(a.Local, "%!@")
	if t.sender == "" && t.accepted > 0 && (relay || t.relay > 0) {
		return Verdict{Action: Reject, Reply: ReplyMultiBounce, Reason: "null sender with more than one recipient in a relay transaction"}
	}
	if !relay {
		return Verdict{}
	}
	if reply, reason, ok := t.relayAllowed(); !ok {
		return Verdict{Action: Reject, Reply: reply, Reason: reason, Relay: true}
	}
	if t.lim != nil {
		if reply, reason, ok := t.reserve(a.Key); !ok {
			return Verdict{Action: Reject, Reply: reply, Reason: reason, Relay: true}
		}
	}
	return Verdict{Reason: "relay allowed", Relay: true}
}

// couldBeOurs reports whether an address we cannot read might still end
// up in one of our domains: it names no domain we can read (the MTA may
// complete it with one of ours), or its last domain is ours.
func (rs *Ruleset) couldBeOurs(raw string) bool {
	at := strings.LastIndexByte(raw, '@')
	if at < 0 {
		return true
	}
	d, err := normalizeDomain(strings.TrimSpace(raw[at+1:]))
	return err != nil || rs.ours(d)
}

// End decides the message: the kind (inbound or internal, from the From
// header), split delivery for every accepted recipient in our domains,
// and the message-level relay policy (the real size, the sender rewriting
// of allowed_senders = "any").
func (t *Tx) End(m Message) Decision {
	rs := t.rs
	d := Decision{Recipients: t.rcpts, Relay: t.relay > 0}
	d.Kind, d.KindReason = rs.kind(m.HeaderFrom)
	for i := range d.Recipients {
		r := &d.Recipients[i]
		if r.Action != Keep || r.Relay || !r.parsed || !rs.ours(r.Addr.ASCII) {
			continue
		}
		rs.split(d.Kind, t, r)
	}
	if d.Relay {
		rs.decideRelayMessage(t, m, &d)
	}
	d.choose(m.Rand)
	return d
}
