package rules

import "strings"

// The rolling relay limits (per registered user: messages and unique
// recipients in the last 24 hours; per organisation: recipients in the
// last 24 hours and the last 10 minutes) are counted by a store the
// milter owns (embedded or Redis, milter/limits). The rules only say what
// to reserve and which reply a refusal gets: a Limiter checks and
// reserves in one atomic step, so that N sessions of a user at 9,999
// messages racing at RCPT TO get one more message between them, not N.
// What was reserved is committed when the message is accepted and released
// otherwise, by the milter; only accepted mail counts.

// Limiter atomically checks the rolling relay limits and reserves usage for
// one transaction: the reservation of Rcpt (and, on the transaction's first
// reservation for User, of one message) is made only when no limit is
// exceeded. An error means the counters cannot be reached: the recipient
// is deferred (ReplyTryLater).
type Limiter interface {
	Reserve(r Reservation) (Exceeded, error)
}

// Reservation is one relay recipient of a transaction.
type Reservation struct {
	// Tx identifies the transaction; the caller that owns the transaction
	// fills it (the rules leave it empty).
	Tx string
	// User is the normalised envelope sender when it is a registered
	// user, else "" (only the organisation limits apply).
	User string
	// Rcpt is the normalised relay recipient (CountKey): unique
	// recipients are counted in this form.
	Rcpt string
	// Limits are the limits in force for this transaction.
	Limits Limits
}

// Exceeded names the limit a reservation would exceed.
type Exceeded int

const (
	NotExceeded    Exceeded = iota // within every limit: reserved
	UserMessages                   // relay.limits.user_messages_per_day
	UserRecipients                 // relay.limits.user_recipients_per_day (unique)
	OrgDay                         // relay.limits.org_recipients_per_day
	OrgPeak                        // relay.limits.org_recipients_per_10_minutes
)

// String is the limit's stable label (metrics, logs, `limits show`).
func (e Exceeded) String() string {
	switch e {
	case UserMessages:
		return "user_messages_per_day"
	case UserRecipients:
		return "user_recipients_per_day"
	case OrgDay:
		return "org_recipients_per_day"
	case OrgPeak:
		return "org_recipients_per_10_minutes"
	}
	return "none"
}

// Reply is Google's reply for the exceeded limit.
func (e Exceeded) Reply() Reply {
	switch e {
	case UserMessages, UserRecipients:
		return ReplyUserDaily
	case OrgDay:
		return ReplyOrgDaily
	case OrgPeak:
		return ReplyOrgPeak
	}
	return Reply{}
}

// ReplyTryLater defers a relay recipient whose limits cannot be checked
// (the counter store is unreachable): the client keeps the message and
// retries. 4.3.0 is "other or undefined mail system status" (RFC 3463).
var ReplyTryLater = Reply{451, "4.3.0", "Temporary local problem, try again later"}

// CountKey is the form users and recipients are counted in: the local part
// lower-cased and the domain in its lower-case IDNA A-label form, so
// Bob@Bücher.example and bob@xn--bcher-kva.example are one recipient
// (Address.Key). Subaddresses are kept: bob+a@x and bob+b@x are two
// recipients (only the receiving system knows what its delimiter means).
// Something that is not an address is counted lower-cased as it is.
func CountKey(addr string) string {
	if a, err := ParseAddress(addr); err == nil {
		return a.Key
	}
	return strings.ToLower(addr)
}

// reserve applies the rolling limits to relay recipient key through the
// transaction's Limiter: check and reserve in one atomic step.
func (t *Tx) reserve(key string) (Reply, string, bool) {
	r := Reservation{Rcpt: key, Limits: t.rs.Relay.Limits}
	if t.fromOK && t.rs.users[t.from.Key] {
		r.User = t.from.Key
	}
	ex, err := t.lim.Reserve(r)
	if err != nil {
		return ReplyTryLater, "relay limit counters unavailable: " + err.Error(), false
	}
	if ex != NotExceeded {
		return ex.Reply(), "relay.limits." + ex.String() + " reached", false
	}
	return Reply{}, "", true
}
