package rules_test

import (
	"fmt"
	"net/netip"

	"github.com/splitrelay/splitrelay/rules"
)

// countingLimiter is a Limiter filled with a map, as a test would: each
// user may make max reservations (here, one recipient is one message).
type countingLimiter struct {
	max  int
	sent map[string]int
}

func (l countingLimiter) Reserve(r rules.Reservation) (rules.Exceeded, error) {
	if r.User != "" && l.sent[r.User] >= l.max {
		return rules.UserMessages, nil
	}
	l.sent[r.User]++
	return rules.NotExceeded, nil
}

// The relay limits are reserved through a Limiter at RCPT TO; the rules
// map what it says to Google's replies.
func ExampleRuleset_Begin_limits() {
	rs, err := rules.Load("splitrelay.toml", []byte(`
[organization]
domains = ["example.com"]
[directory]
users = ["alice@example.com"]
[relay]
allowed_senders = "registered_users"
networks = [{ cidr = "192.0.2.0/28", description = "app servers", enabled = true }]
[relay.limits]
user_messages_per_day = 1
`), nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	lim := countingLimiter{max: 1, sent: map[string]int{}}
	// Two transactions of the same user, one recipient each.
	sender := "Alice@Example.com"
	for _, rcpt := range []string{"bob@elsewhere.test", "carol@elsewhere.test"} {
		t := rs.Begin(rules.Client{Addr: netip.MustParseAddr("192.0.2.7")}, sender, 0, lim)
		v := t.Rcpt(rules.RcptIn{Raw: rcpt, Stored: rcpt})
		if v.Action != rules.Keep {
			fmt.Printf("%s: %s (%s)\n", rcpt, v.Reply, v.Reason)
			continue
		}
		fmt.Printf("%s: accepted, reserved for %s\n", rcpt, rules.CountKey(sender))
	}
	// Output:
	// bob@elsewhere.test: accepted, reserved for alice@example.com
	// carol@elsewhere.test: 550 5.4.5 Daily SMTP relay limit exceeded for user (relay.limits.user_messages_per_day reached)
}
