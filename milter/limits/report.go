package limits

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"time"
)

// Report is what `splitrelay limits show` prints: the counters in the
// rolling windows at one moment.
type Report struct {
	Store string    `json:"store"` // "embedded DIR" or "redis HOST"
	At    time.Time `json:"at"`
	Org   OrgUsage  `json:"org"`
	Users []Usage   `json:"users"`
}

// OrgUsage is the organisation's relayed recipients (not unique).
type OrgUsage struct {
	Day        int `json:"recipients_24h"`
	TenMinutes int `json:"recipients_10min"`
	Pending    int `json:"pending"`
}

// Usage is one registered user's counters.
type Usage struct {
	User       string `json:"user"`
	Messages   int    `json:"messages_24h"`
	Recipients int    `json:"unique_recipients_24h"`
	// Pending is reserved by transactions in progress (not counted yet).
	PendingMessages   int `json:"pending_messages"`
	PendingRecipients int `json:"pending_recipients"`
	// NextExpiry is when the oldest counted entry leaves the window
	// (zero when nothing is counted).
	NextExpiry time.Time `json:"next_expiry,omitzero"`
}

// report reads the counters; user "" lists every user.
func (c *counter) report(name string) Report {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	r := Report{At: now, Users: []Usage{}}
	r.Org = OrgUsage{
		Day:        c.org.day.sum(int64(minuteOf(now))),
		TenMinutes: c.org.peak.sum(now.UnixNano() / int64(peakSlot)),
		Pending:    c.org.pending,
	}
	cut := cutOf(now)
	one := func(n string, u *user) Usage {
		u.roll(cut)
		x := Usage{User: n, Messages: u.msgs.total, Recipients: u.seen.total, PendingMessages: u.pMsgs, PendingRecipients: u.pNew}
		oldest := u.msgs.oldest()
		if o := u.seen.oldest(); o != 0 && (oldest == 0 || o < oldest) {
			oldest = o
		}
		if oldest != 0 {
			x.NextExpiry = time.Unix(int64(oldest+dayMinutes)*60, 0)
		}
		return x
	}
	for n, u := range c.users {
		if name == "" || n == name {
			r.Users = append(r.Users, one(n, u))
		}
	}
	sortUsers(r.Users)
	return r
}

func sortUsers(us []Usage) {
	slices.SortFunc(us, func(a, b Usage) int {
		return cmp.Or(cmp.Compare(b.Messages, a.Messages), cmp.Compare(a.User, b.User))
	})
}

// Print writes the report as a table.
func (r Report) Print(w io.Writer, user string) {
	fmt.Fprintf(w, "store: %s\nat: %s\n", r.Store, r.At.Format(time.RFC3339))
	fmt.Fprintf(w, "organisation: %d recipients in the last 24 hours, %d in the last 10 minutes, %d reserved\n",
		r.Org.Day, r.Org.TenMinutes, r.Org.Pending)
	if len(r.Users) == 0 {
		if user != "" {
			fmt.Fprintf(w, "%s: nothing counted in the last 24 hours\n", user)
		}
		return
	}
	// Counts are of the last 24 hours; RESERVED is messages/recipients
	// held by transactions in progress.
	fmt.Fprintf(w, "%-32s %9s %11s %9s %s\n", "USER", "MESSAGES", "RECIPIENTS", "RESERVED", "OLDEST EXPIRES")
	for _, u := range r.Users {
		exp := "-"
		if !u.NextExpiry.IsZero() {
			exp = fmt.Sprintf("%s (in %s)", u.NextExpiry.Format(time.RFC3339), u.NextExpiry.Sub(r.At).Round(time.Minute))
		}
		fmt.Fprintf(w, "%-32s %9d %11d %4d/%-4d %s\n", u.User, u.Messages, u.Recipients, u.PendingMessages, u.PendingRecipients, exp)
	}
}
