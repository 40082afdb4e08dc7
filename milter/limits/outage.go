package limits

import (
	"encoding/binary"
	"time"
)

// The outage journal. While Redis cannot be reached, a Redis store with
// redis_unavailable = "local" counts in its embedded store, whose counter
// then also notes every transaction it commits: who, when, which unique
// recipients, how many organisation recipients. The counters alone could
// not be pushed to Redis later, since they keep per-minute counts, not
// the transaction ids Redis counts messages by; with the ids a push that
// is repeated (a crash between pushing and forgetting the notes) adds
// nothing twice. The notes are persisted with the counters, in the same
// bbolt transaction, so a gateway that restarts during an outage still
// pushes them; redis_push.go pushes them and then forgets them.
//
// The local counters themselves are left as they are after a push: they
// hold part of what Redis now holds (a lower bound of each user's usage),
// so a later outage starts from them rather than from zero, and they
// leave with their windows like any count.

// outage is one transaction committed in the local store during an
// outage. It is never modified once noted, so a snapshot may be read
// without the counter's lock.
type outage struct {
	user  string   // "" when only the organisation limits applied
	ms    int64    // commit time, Unix milliseconds
	rcpts []uint64 // the user's recipients (hashes, each once)
	org   int      // organisation recipients (every relay recipient)
}

// note records the commit of transaction id (t) at now; the caller holds
// c.mu and has checked that c.journal is not nil.
func (c *counter) note(id string, t *tx, now time.Time) {
	c.journal[id] = &outage{user: t.user, ms: now.UnixMilli(), rcpts: t.rcpts, org: len(t.orgKeys)}
	c.journalDirty[id] = true
	c.journalLen.Store(int64(len(c.journal)))
}

// outages returns the noted transactions, their ids in ids.
func (c *counter) outages() (ids []string, notes []*outage) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ids, notes = make([]string, 0, len(c.journal)), make([]*outage, 0, len(c.journal))
	for id, o := range c.journal {
		ids = append(ids, id)
		notes = append(notes, o)
	}
	return ids, notes
}

// forget drops notes that were pushed (or left every window).
func (c *counter) forget(ids []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, id := range ids {
		if _, ok := c.journal[id]; ok {
			delete(c.journal, id)
			c.journalDirty[id] = true // deleted from the file at the next flush
		}
	}
	c.journalLen.Store(int64(len(c.journal)))
}

// forgetWhere drops the notes drop is true for; the caller holds c.mu. Reset (an admin's "forget this user") and sweep (notes older than
// the day window, when Redis stays away for more than a day) use it.
func (c *counter) forgetWhere(drop func(*outage) bool) {
	for id, o := range c.journal {
		if drop(o) {
			delete(c.journal, id)
			c.journalDirty[id] = true
		}
	}
	c.journalLen.Store(int64(len(c.journal)))
}

// The persisted form of a note (bucket "outage", key the transaction id):
//
//	0x01, len(user), user, commit ms, org recipients, n, n × hash[8 bytes LE]
//
// All numbers except the hashes are unsigned varints.

func encodeOutage(o *outage) []byte {
	b := make([]byte, 0, 24+len(o.user)+8*len(o.rcpts))
	b = append(b, codecVersion)
	b = binary.AppendUvarint(b, uint64(len(o.user)))
	b = append(b, o.user...)
	b = binary.AppendUvarint(b, uint64(o.ms))
	b = binary.AppendUvarint(b, uint64(o.org))
	b = binary.AppendUvarint(b, uint64(len(o.rcpts)))
	for _, h := range o.rcpts {
		b = binary.LittleEndian.AppendUint64(b, h)
	}
	return b
}

func decodeOutage(b []byte) (*outage, error) {
	r := reader{b: b}
	if r.byte() != codecVersion {
		return nil, errCodec
	}
	n := r.count(1)
	if r.err != nil {
		return nil, errCodec
	}
	o := &outage{user: string(r.b[:n])}
	r.b = r.b[n:]
	o.ms = int64(r.uvarint())
	org := r.uvarint()
	m := r.count(8)
	for range m {
		o.rcpts = append(o.rcpts, r.uint64())
	}
	if r.err != nil || len(r.b) != 0 || o.ms <= 0 || org > 1<<31 {
		return nil, errCodec
	}
	o.org = int(org)
	return o, nil
}
