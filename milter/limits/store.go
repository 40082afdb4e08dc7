package limits

import (
	"time"

	"github.com/splitrelay/splitrelay/rules"
)

// Store keeps the relay limit counters. Reserve (rules.Limiter) checks and
// reserves atomically; the milter then calls Commit when the message is
// accepted, Release otherwise (abort, RSET, refusal, tempfail, lost
// connection). All methods are safe for concurrent use.
type Store interface {
	rules.Limiter
	Commit(tx string) error
	Release(tx string)
	// Show reads the counters; user "" lists every user.
	Show(user string) (Report, error)
	// Reset clears one user's counters; false when nothing was counted.
	Reset(user string) (bool, error)
	// Stats is what the metrics report, for the limits in force.
	Stats(lim rules.Limits) (Stats, error)
	Close() error
}

// Stats are the gauges of the limits.
type Stats struct {
	// Near counts users above 80 % of a limit, by limit label
	// (user_messages_per_day, user_recipients_per_day).
	Near map[string]int
	// OrgDay and OrgPeak are the organisation's recipients in its
	// windows.
	OrgDay, OrgPeak int
}

// Observer is told about store operations, for metrics. Implementations
// must be cheap and safe for concurrent use.
type Observer interface {
	// StoreOp is one operation (reserve, commit, release, flush; push:
	// the usage counted locally during an outage, to Redis) on a store
	// ("embedded", "redis", "local") and how long it took; err is true
	// when it failed.
	StoreOp(store, op string, d time.Duration, err bool)
	// Fallback is true while a Redis store counts locally because Redis
	// cannot be reached (redis_unavailable = "local").
	Fallback(active bool)
}

type nopObserver struct{}

func (nopObserver) StoreOp(string, string, time.Duration, bool) {}
func (nopObserver) Fallback(bool)                               {}

// NearFraction is the share of a limit above which a user counts as near
// it (the splitrelay_limit_users_near gauge).
const NearFraction = 0.8

// stats computes Stats from the counter.
func (c *counter) stats(lim rules.Limits) Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	s := Stats{
		Near:    map[string]int{rules.UserMessages.String(): 0, rules.UserRecipients.String(): 0},
		OrgDay:  c.org.day.sum(int64(minuteOf(now))),
		OrgPeak: c.org.peak.sum(now.UnixNano() / int64(peakSlot)),
	}
	cut := cutOf(now)
	for _, u := range c.users {
		u.roll(cut)
		if near(u.msgs.total, lim.UserMessagesPerDay) {
			s.Near[rules.UserMessages.String()]++
		}
		if near(u.seen.total, lim.UserRecipientsPerDay) {
			s.Near[rules.UserRecipients.String()]++
		}
	}
	return s
}

func near(n, limit int) bool { return limit > 0 && float64(n) > NearFraction*float64(limit) }

// Memory is a Store that forgets on restart: for tests, and for the
// daemon when its state file cannot be used at all.
type Memory struct{ c *counter }

var _ Store = (*Memory)(nil)

// NewMemory returns an empty in-memory Store with clock now (nil:
// time.Now).
func NewMemory(now func() time.Time) *Memory {
	if now == nil {
		now = time.Now
	}
	return &Memory{c: newCounter(now)}
}

func (m *Memory) Reserve(r rules.Reservation) (rules.Exceeded, error) { return m.c.Reserve(r) }
func (m *Memory) Commit(tx string) error                              { return m.c.Commit(tx) }
func (m *Memory) Release(tx string)                                   { m.c.Release(tx) }
func (m *Memory) Show(user string) (Report, error) {
	r := m.c.report(user)
	r.Store = "memory"
	return r, nil
}
func (m *Memory) Reset(user string) (bool, error)       { return m.c.reset(user), nil }
func (m *Memory) Stats(lim rules.Limits) (Stats, error) { return m.c.stats(lim), nil }
func (m *Memory) Close() error                          { return nil }
