package limits

import (
	"hash/fnv"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/splitrelay/splitrelay/rules"
)

// Windows, in minutes (the user and organisation day) and in 10-second
// slots (the organisation's peak window).
const (
	dayMinutes = 24 * 60
	peakSlots  = 60 // 10 minutes of 10 seconds
	peakSlot   = 10 * time.Second
	// txTimeout releases a reservation whose transaction never ended (a
	// lost milter connection without Abort): far above Postfix's milter
	// timeouts.
	txTimeout = time.Hour
)

// counter is the exact in-memory state of the limits: committed usage in
// rolling windows and the reservations of open transactions, under one
// lock. The embedded store persists it; the Redis store uses one as its
// "local" fallback.
type counter struct {
	mu    sync.Mutex
	now   func() time.Time
	users map[string]*user
	org   org
	txs   map[string]*tx
	// persist: the embedded store flushes dirty users and orgDirty.
	persist  bool
	dirty    map[string]bool // users changed since the last flush
	orgDirty bool
	// journal notes the transactions committed here while Redis is down
	// (outage.go); nil: not noting (the embedded store alone, Memory).
	journal      map[string]*outage
	journalDirty map[string]bool // notes added or forgotten since the last flush
	journalLen   atomic.Int64    // len(journal), read without the lock
}

// bucket counts events in one minute.
type bucket struct {
	min uint32 // Unix minute
	n   uint32
}

// buckets is a rolling per-minute count, oldest first, with its total.
type buckets struct {
	b     []bucket
	total int
}

func (bs *buckets) add(min uint32, n int) {
	// A clock that stepped back counts in the newest minute: the list
	// stays sorted.
	if k := len(bs.b); k > 0 && bs.b[k-1].min >= min {
		bs.b[k-1].n += uint32(n)
	} else {
		bs.b = append(bs.b, bucket{min, uint32(n)})
	}
	bs.total += n
}

// sub removes one event counted at min, if min is still held.
func (bs *buckets) sub(min uint32) {
	i := sort.Search(len(bs.b), func(i int) bool { return bs.b[i].min >= min })
	if i < len(bs.b) && bs.b[i].min == min && bs.b[i].n > 0 {
		bs.b[i].n--
		bs.total--
	}
}

// prune drops the minutes at or before cut and returns how many events
// they held.
func (bs *buckets) prune(cut uint32) int {
	i, dropped := 0, 0
	for i < len(bs.b) && bs.b[i].min <= cut {
		dropped += int(bs.b[i].n)
		i++
	}
	if i > 0 {
		bs.b = slices.Delete(bs.b, 0, i)
		bs.total -= dropped
	}
	return dropped
}

// oldest is the first minute still counted, 0 when empty.
func (bs *buckets) oldest() uint32 {
	for _, b := range bs.b {
		if b.n > 0 {
			return b.min
		}
	}
	return 0
}

// user is one registered user's usage.
type user struct {
	msgs   buckets           // committed messages per minute
	rcpts  map[uint64]uint32 // unique recipient hash -> minute last committed
	seen   buckets           // how many recipients have their last commit in each minute
	stale  int               // entries of rcpts whose minute has left the window
	pMsgs  int               // messages reserved, not committed
	pRcpts map[uint64]*pend  // recipients reserved, not committed (nil when none)
	pNew   int               // of pRcpts, those not already counted in the window
}

type pend struct {
	refs  int32 // transactions holding it
	isNew bool  // counted in pNew
}

func newUser() *user {
	return &user{rcpts: map[uint64]uint32{}}
}

// roll drops what left the user's window (cut is the last minute out).
func (u *user) roll(cut uint32) {
	u.msgs.prune(cut)
	u.stale += u.seen.prune(cut)
	if u.stale > 64 && u.stale > len(u.rcpts)/2 {
		for h, m := range u.rcpts {
			if m <= cut {
				delete(u.rcpts, h)
			}
		}
		u.stale = 0
	}
}

// counted reports whether recipient h is counted in the window.
func (u *user) counted(h uint64, cut uint32) bool {
	m, ok := u.rcpts[h]
	return ok && m > cut
}

func (u *user) empty() bool {
	return u.msgs.total == 0 && u.seen.total == 0 && u.pMsgs == 0 && len(u.pRcpts) == 0
}

// org is the organisation's usage: every relayed recipient, not unique.
type org struct {
	day     ring // 1,440 one-minute slots
	peak    ring // 60 ten-second slots
	pending int  // reserved, not committed
}

// ring counts events in n slots of a fixed width, with a running total:
// the sum of the window is O(1) (the slots that leave it are subtracted
// as time advances).
type ring struct {
	counts []uint32
	slots  []int64 // which slot each index holds
	last   int64   // the newest slot seen
	total  int
}

func newRing(n int) ring { return ring{counts: make([]uint32, n), slots: make([]int64, n)} }

// advance moves the window to end at slot, dropping what left it.
func (r *ring) advance(slot int64) {
	if slot <= r.last {
		return
	}
	n := int64(len(r.counts))
	from := r.last + 1
	if slot-r.last >= n {
		from = slot - n + 1
	}
	for s := from; s <= slot; s++ {
		i := s % n
		if r.slots[i] != s {
			r.total -= int(r.counts[i])
			r.counts[i], r.slots[i] = 0, s
		}
	}
	if slot-r.last >= n {
		r.total = 0
	}
	r.last = slot
}

func (r *ring) add(slot int64, k int) {
	r.advance(slot)
	i := slot % int64(len(r.counts))
	if r.slots[i] != slot { // older than the window
		return
	}
	r.counts[i] += uint32(k)
	r.total += k
}

func (r *ring) sum(slot int64) int {
	r.advance(slot)
	return r.total
}

// tx is one transaction's reservations.
type tx struct {
	user    string
	msg     bool     // one message reserved for user
	rcpts   []uint64 // user's recipients reserved (hashes, each once)
	orgKeys []uint64 // every relay recipient reserved for the organisation
	started time.Time
}

func newCounter(now func() time.Time) *counter {
	return &counter{
		now:   now,
		users: map[string]*user{},
		org:   org{day: newRing(dayMinutes), peak: newRing(peakSlots)},
		txs:   map[string]*tx{},
		dirty: map[string]bool{},
	}
}

// hashKey is the 64-bit FNV-1a hash a recipient is counted by; stable
// across restarts and versions (it is persisted).
func hashKey(s string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(s))
	return h.Sum64()
}

func minuteOf(t time.Time) uint32 { return uint32(t.Unix() / 60) }

// cutOf is the last minute outside the 24-hour window at t.
func cutOf(t time.Time) uint32 { return minuteOf(t) - dayMinutes }

// Reserve implements rules.Limiter, exactly: the check and the
// reservation happen under one lock.
func (c *counter) Reserve(r rules.Reservation) (rules.Exceeded, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.reserve(r), nil
}

func (c *counter) reserve(r rules.Reservation) rules.Exceeded {
	now := c.now()
	t := c.txs[r.Tx]
	if t == nil {
		t = &tx{user: r.User, started: now}
	}
	key := hashKey(r.Rcpt)
	if slices.Contains(t.orgKeys, key) { // the same recipient twice in one transaction
		return rules.NotExceeded
	}
	lim := r.Limits
	peak := now.UnixNano() / int64(peakSlot)
	if lim.OrgRecipientsPer10Minutes > 0 && c.org.peak.sum(peak)+c.org.pending+1 > lim.OrgRecipientsPer10Minutes {
		return rules.OrgPeak
	}
	min := minuteOf(now)
	if lim.OrgRecipientsPerDay > 0 && c.org.day.sum(int64(min))+c.org.pending+1 > lim.OrgRecipientsPerDay {
		return rules.OrgDay
	}
	var u *user
	newMsg, newRcpt := false, false
	if r.User != "" {
		u = c.users[r.User]
		if u == nil {
			u = newUser()
		}
		cut := cutOf(now)
		u.roll(cut)
		newMsg = !t.msg
		if newMsg && lim.UserMessagesPerDay > 0 && u.msgs.total+u.pMsgs+1 > lim.UserMessagesPerDay {
			c.keep(r.User, u)
			return rules.UserMessages
		}
		p := u.pRcpts[key]
		newRcpt = !u.counted(key, cut) && (p == nil || !p.isNew)
		if newRcpt && lim.UserRecipientsPerDay > 0 && u.seen.total+u.pNew+1 > lim.UserRecipientsPerDay {
			c.keep(r.User, u)
			return rules.UserRecipients
		}
		// Within every limit: reserve.
		if newMsg {
			t.msg = true
			u.pMsgs++
		}
		if p == nil {
			if u.pRcpts == nil {
				u.pRcpts = map[uint64]*pend{}
			}
			p = &pend{}
			u.pRcpts[key] = p
		}
		p.refs++
		if newRcpt {
			p.isNew = true
			u.pNew++
		}
		t.rcpts = append(t.rcpts, key)
		c.users[r.User] = u
	}
	t.orgKeys = append(t.orgKeys, key)
	c.org.pending++
	c.txs[r.Tx] = t
	return rules.NotExceeded
}

// keep stores u when it holds anything (a refused first reservation must
// not leave an empty user behind).
func (c *counter) keep(name string, u *user) {
	if !u.empty() {
		c.users[name] = u
	}
}

// Commit counts what transaction id reserved: its message was accepted.
func (c *counter) Commit(id string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.commit(id)
	return nil
}

func (c *counter) commit(id string) {
	t := c.txs[id]
	if t == nil {
		return
	}
	delete(c.txs, id)
	now := c.now()
	min := minuteOf(now)
	n := len(t.orgKeys)
	c.org.pending -= n
	c.org.day.add(int64(min), n)
	c.org.peak.add(now.UnixNano()/int64(peakSlot), n)
	c.orgDirty = true
	if c.journal != nil {
		c.note(id, t, now)
	}
	u := c.users[t.user]
	if u == nil {
		return
	}
	cut := cutOf(now)
	u.roll(cut)
	if k := len(u.seen.b); k > 0 && u.seen.b[k-1].min > min {
		min = u.seen.b[k-1].min // the clock stepped back: see buckets.add
	}
	if t.msg {
		u.pMsgs--
		u.msgs.add(min, 1)
	}
	for _, h := range t.rcpts {
		c.unpend(u, h)
		if old, ok := u.rcpts[h]; ok && old > cut {
			u.seen.sub(old)
		}
		u.rcpts[h] = min
		u.seen.add(min, 1)
	}
	c.markDirty(t.user)
}

// markDirty notes a user for the next flush of the embedded store.
func (c *counter) markDirty(name string) {
	if c.persist {
		c.dirty[name] = true
	}
}

// unpend drops one transaction's hold on recipient h.
func (c *counter) unpend(u *user, h uint64) {
	p := u.pRcpts[h]
	if p == nil {
		return
	}
	if p.isNew {
		// Counted once in pNew for every holder; the first to end (by a
		// commit, or the last by a release) takes it out.
		p.isNew = false
		u.pNew--
	}
	if p.refs--; p.refs <= 0 {
		delete(u.pRcpts, h)
		if len(u.pRcpts) == 0 {
			u.pRcpts = nil
		}
	}
}

// Release drops what transaction id reserved: the message was not accepted
// (abort, RSET, reject, tempfail, lost connection).
func (c *counter) Release(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.release(id)
}

func (c *counter) release(id string) {
	t := c.txs[id]
	if t == nil {
		return
	}
	delete(c.txs, id)
	c.org.pending -= len(t.orgKeys)
	u := c.users[t.user]
	if u == nil {
		return
	}
	if t.msg {
		u.pMsgs--
	}
	for _, h := range t.rcpts {
		p := u.pRcpts[h]
		if p == nil {
			continue
		}
		if p.refs--; p.refs <= 0 {
			if p.isNew {
				u.pNew--
			}
			delete(u.pRcpts, h)
		}
		if len(u.pRcpts) == 0 {
			u.pRcpts = nil
		}
	}
	if u.empty() {
		delete(c.users, t.user)
	}
}

// sweep releases transactions older than txTimeout and forgets users whose
// windows are empty; the store calls it about once a minute.
func (c *counter) sweep() (released int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	for id, t := range c.txs {
		if now.Sub(t.started) > txTimeout {
			c.release(id)
			released++
		}
	}
	cut := cutOf(now)
	for name, u := range c.users {
		u.roll(cut)
		if u.empty() {
			delete(c.users, name)
			c.markDirty(name) // deleted from the file too
		}
	}
	if len(c.journal) > 0 {
		old := now.Add(-24 * time.Hour).UnixMilli()
		c.forgetWhere(func(o *outage) bool { return o.ms <= old })
	}
	return released
}

// reset forgets a user's usage (committed; open reservations stay, so the
// transactions in progress can still end cleanly).
func (c *counter) reset(name string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	// Notes of an outage are the user's usage too: not pushed after a
	// reset.
	c.forgetWhere(func(o *outage) bool { return o.user == name })
	u := c.users[name]
	if u == nil {
		return false
	}
	had := u.msgs.total > 0 || u.seen.total > 0
	u.msgs, u.seen, u.rcpts, u.stale = buckets{}, buckets{}, map[uint64]uint32{}, 0
	// Pending recipients are new again.
	u.pNew = 0
	for _, p := range u.pRcpts {
		p.isNew = true
		u.pNew++
	}
	if u.empty() {
		delete(c.users, name)
	}
	c.markDirty(name)
	return had
}
