package milter

import (
	"sync"
	"time"

	"github.com/splitrelay/splitrelay/rules"
)

// usage keeps the relay traffic of the last 24 hours in memory for the
// rolling limits (rules.Usage). Windows roll (the last 24 hours, the last
// 10 minutes), they are not calendar days. A restart starts them afresh:
// documented, and the safe direction for a migration gateway is to lose
// counts, not mail.
type usage struct {
	mu    sync.Mutex
	now   func() time.Time
	users map[string]*userUsage
	day   window // 1,440 one-minute buckets
	ten   window // 60 ten-second buckets
}

type userUsage struct {
	messages []time.Time          // oldest first
	rcpts    map[string]time.Time // unique recipient -> last relayed
	pruned   time.Time
}

const day = 24 * time.Hour

func newUsage(now func() time.Time) *usage {
	return &usage{
		now:   now,
		users: map[string]*userUsage{},
		day:   newWindow(time.Minute, 1440),
		ten:   newWindow(10*time.Second, 60),
	}
}

// record counts one accepted relay message.
func (u *usage) record(user string, rcpts []string) {
	if len(rcpts) == 0 {
		return
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	now := u.now()
	u.day.add(now, len(rcpts))
	u.ten.add(now, len(rcpts))
	if user == "" {
		return
	}
	uu := u.user(user, now)
	uu.messages = append(uu.messages, now)
	for _, r := range rcpts {
		uu.rcpts[r] = now
	}
}

// user returns the counters of user with entries older than 24 hours
// dropped (at most once a minute for the recipient map).
func (u *usage) user(user string, now time.Time) *userUsage {
	uu := u.users[user]
	if uu == nil {
		uu = &userUsage{rcpts: map[string]time.Time{}}
		u.users[user] = uu
	}
	cut := now.Add(-day)
	i := 0
	for i < len(uu.messages) && !uu.messages[i].After(cut) {
		i++
	}
	uu.messages = uu.messages[i:]
	if now.Sub(uu.pruned) > time.Minute {
		for r, t := range uu.rcpts {
			if !t.After(cut) {
				delete(uu.rcpts, r)
			}
		}
		uu.pruned = now
	}
	return uu
}

// view is the rules.Usage at one moment.
type view struct{ u *usage }

var _ rules.Usage = view{}

func (v view) UserMessages(user string) int {
	v.u.mu.Lock()
	defer v.u.mu.Unlock()
	return len(v.u.user(user, v.u.now()).messages)
}

// UserRecipients counts the recipients of the last 24 hours to a minute's
// precision (expired entries are dropped once a minute): O(1), because it
// runs for every recipient of every relayed message.
func (v view) UserRecipients(user, rcpt string) (int, bool) {
	v.u.mu.Lock()
	defer v.u.mu.Unlock()
	now := v.u.now()
	uu := v.u.user(user, now)
	t, ok := uu.rcpts[rcpt]
	return len(uu.rcpts), ok && t.After(now.Add(-day))
}

func (v view) OrgRecipients() (int, int) {
	v.u.mu.Lock()
	defer v.u.mu.Unlock()
	now := v.u.now()
	return v.u.day.sum(now), v.u.ten.sum(now)
}

// window counts events in n buckets of a fixed width: the sum is the
// last n*width, to one bucket's precision.
type window struct {
	width  time.Duration
	counts []int
	slots  []int64 // which period each bucket holds
}

func newWindow(width time.Duration, n int) window {
	return window{width: width, counts: make([]int, n), slots: make([]int64, n)}
}

func (w *window) add(now time.Time, n int) {
	slot := now.UnixNano() / int64(w.width)
	i := int(slot % int64(len(w.counts)))
	if w.slots[i] != slot {
		w.slots[i], w.counts[i] = slot, 0
	}
	w.counts[i] += n
}

func (w *window) sum(now time.Time) int {
	slot := now.UnixNano() / int64(w.width)
	oldest := slot - int64(len(w.counts)) + 1
	total := 0
	for i, s := range w.slots {
		if s >= oldest && s <= slot {
			total += w.counts[i]
		}
	}
	return total
}
