package limits

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/splitrelay/splitrelay/rules"
)

// The embedded store keeps the counters in memory (exact, one lock) and
// writes what changed to a bbolt file under [state] dir once a second
// (FlushInterval), and on Close. bbolt is a copy-on-write B+tree with one
// fsync per write transaction: a kill -9 or a power cut leaves the file as
// of the last completed flush, never half-written. So a clean stop
// (systemctl restart) loses nothing and a crash loses at most the last
// FlushInterval of counts.
//
// bbolt holds an exclusive lock on the file while the daemon runs; the
// `limits` command reaches the daemon's counters through its control
// socket (control.go) instead.

// FlushInterval bounds what a crash loses.
const FlushInterval = time.Second

// FileName is the state file in [state] dir.
const FileName = "limits.db"

var (
	bucketUsers = []byte("users")
	bucketMeta  = []byte("meta")
	keyOrg      = []byte("org")
	// bucketOutage holds the outage journal (outage.go) of a Redis
	// store's local fallback, by transaction id.
	bucketOutage = []byte("outage")
)

// Embedded is the durable single-gateway Store.
type Embedded struct {
	c    *counter
	db   *bolt.DB // nil: counting in memory only (the file could not be used)
	path string
	log  *slog.Logger
	obs  Observer

	flushMu sync.Mutex
	stop    chan struct{}
	done    chan struct{}
}

var _ Store = (*Embedded)(nil)

// OpenEmbedded opens (creating dir and the file when missing) the counters
// in dir. It does not fail for a damaged or unreadable file: the daemon
// must not refuse mail because its counters are lost. A damaged file is
// moved aside (limits.db.damaged-TIME) and counting starts afresh; an
// unreadable one (permissions, locked by another process) leaves the
// store counting in memory only; each is logged as an error saying what
// was lost. The error return is for a dir that cannot be created.
func OpenEmbedded(dir string, log *slog.Logger, obs Observer, now func() time.Time) (*Embedded, error) {
	return openEmbedded(dir, log, obs, now, false)
}

// openEmbedded is OpenEmbedded; with journal the store also notes what it
// commits (the local fallback of a Redis store, outage.go) and loads the
// notes of an earlier run. Without it the notes in the file are left
// alone, for a later run with Redis to push.
func openEmbedded(dir string, log *slog.Logger, obs Observer, now func() time.Time, journal bool) (*Embedded, error) {
	if now == nil {
		now = time.Now
	}
	if obs == nil {
		obs = nopObserver{}
	}
	e := &Embedded{c: newCounter(now), path: filepath.Join(dir, FileName), log: log, obs: obs,
		stop: make(chan struct{}), done: make(chan struct{})}
	e.c.persist = true
	if journal {
		e.c.journal, e.c.journalDirty = map[string]*outage{}, map[string]bool{}
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		log.Error("cannot create the state directory; relay counters are kept in memory only and lost on restart",
			KeyStateDir, dir, keyErr, err)
	} else {
		e.open()
	}
	go e.loop()
	return e, nil
}

// open opens and loads the file, moving a damaged one aside.
func (e *Embedded) open() {
	db, err := openBolt(e.path)
	if err == nil {
		err = e.load(db)
		if err != nil {
			db.Close()
		}
	}
	switch {
	case err == nil:
		e.db = db
		return
	case errors.Is(err, bolterrors.ErrTimeout):
		e.log.Error("state file is locked by another process; relay counters are kept in memory only and lost on restart",
			KeyStateFile, e.path)
		return
	case errors.Is(err, os.ErrPermission):
		e.log.Error("cannot open the state file; relay counters are kept in memory only and lost on restart",
			KeyStateFile, e.path, keyErr, err)
		return
	}
	// Damaged: keep it for inspection, start afresh.
	aside := e.path + ".damaged-" + e.c.now().UTC().Format("20060102T150405")
	size := int64(0)
	if fi, err := os.Stat(e.path); err == nil {
		size = fi.Size()
	}
	if rerr := os.Rename(e.path, aside); rerr != nil {
		e.log.Error("state file is damaged and cannot be moved aside; relay counters are kept in memory only",
			KeyStateFile, e.path, keyErr, err, keyRenameErr, rerr)
		return
	}
	e.log.Error("state file is damaged: every relay counter it held is lost; counting starts afresh",
		KeyStateFile, e.path, KeyMovedTo, aside, KeySizeBytes, size, keyErr, err)
	if db, err = openBolt(e.path); err != nil {
		e.log.Error("cannot create a new state file; relay counters are kept in memory only", KeyStateFile, e.path, keyErr, err)
		return
	}
	e.db = db
}

func openBolt(path string) (*bolt.DB, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		return nil, err
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketUsers, bucketMeta, bucketOutage} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// load reads every record; a damaged record loses that user's counts
// (logged), a damaged file is an error. bbolt panics on some corrupt
// pages: that is a damaged file too.
func (e *Embedded) load(db *bolt.DB) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("limits: reading %s: %v", e.path, p)
		}
	}()
	cut := cutOf(e.c.now())
	var lost []string
	users := 0
	err = db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketMeta).Get(keyOrg); v != nil {
			if err := decodeOrg(v, &e.c.org); err != nil {
				e.c.org = org{day: newRing(dayMinutes), peak: newRing(peakSlots)}
				lost = append(lost, "(organisation)")
			}
		}
		if err := e.loadJournal(tx, &lost); err != nil {
			return err
		}
		return tx.Bucket(bucketUsers).ForEach(func(k, v []byte) error {
			u, err := decodeUser(v, cut)
			if err != nil {
				lost = append(lost, string(k))
				return nil
			}
			if !u.empty() {
				e.c.users[string(k)] = u
				users++
			}
			return nil
		})
	})
	if err != nil {
		return err
	}
	if len(lost) > 0 {
		e.log.Error("damaged records in the state file: these counters are lost", KeyStateFile, e.path, KeyLost, lost)
		for _, k := range lost {
			if tx, ok := strings.CutPrefix(k, "(outage) "); ok {
				e.c.journalDirty[tx] = true // deleted at the next flush
			} else if k != "(organisation)" {
				e.c.dirty[k] = true // rewritten (or deleted) at the next flush
			}
		}
	}
	e.log.Info("relay counters loaded", KeyStateFile, e.path, KeyUsers, users)
	return nil
}

// loadJournal reads the outage notes still inside the day window, when
// the store keeps them; a damaged note is lost (added to lost), one out
// of the window is deleted at the next flush.
func (e *Embedded) loadJournal(tx *bolt.Tx, lost *[]string) error {
	b := tx.Bucket(bucketOutage)
	if e.c.journal == nil || b == nil { // b: a read-only file of an older version
		return nil
	}
	old := e.c.now().Add(-24 * time.Hour).UnixMilli()
	err := b.ForEach(func(k, v []byte) error {
		o, err := decodeOutage(v)
		switch {
		case err != nil:
			*lost = append(*lost, "(outage) "+string(k))
		case o.ms <= old:
			e.c.journalDirty[string(k)] = true
		default:
			e.c.journal[string(k)] = o
		}
		return nil
	})
	e.c.journalLen.Store(int64(len(e.c.journal)))
	return err
}

func (e *Embedded) loop() {
	defer close(e.done)
	tick := time.NewTicker(FlushInterval)
	defer tick.Stop()
	sweep := 0
	for {
		select {
		case <-e.stop:
			return
		case <-tick.C:
			if sweep++; sweep >= 60 {
				sweep = 0
				if n := e.c.sweep(); n > 0 {
					e.log.Warn("released reservations of transactions that never ended", KeyTransactions, n)
				}
			}
			e.flush()
		}
	}
}

// flush writes the users and organisation counters changed since the last
// flush in one bbolt transaction (one fsync).
func (e *Embedded) flush() {
	e.flushMu.Lock()
	defer e.flushMu.Unlock()
	if e.db == nil {
		return
	}
	c := e.c
	c.mu.Lock()
	if len(c.dirty) == 0 && !c.orgDirty && len(c.journalDirty) == 0 {
		c.mu.Unlock()
		return
	}
	recs := make(map[string][]byte, len(c.dirty))
	for name := range c.dirty {
		if u := c.users[name]; u != nil && (u.msgs.total > 0 || u.seen.total > 0) {
			recs[name] = encodeUser(u)
		} else {
			recs[name] = nil
		}
	}
	var orgRec []byte
	if c.orgDirty {
		orgRec = encodeOrg(&c.org)
	}
	notes := make(map[string][]byte, len(c.journalDirty))
	for id := range c.journalDirty {
		if o := c.journal[id]; o != nil {
			notes[id] = encodeOutage(o)
		} else {
			notes[id] = nil
		}
	}
	c.dirty, c.orgDirty = map[string]bool{}, false
	if c.journalDirty != nil {
		c.journalDirty = map[string]bool{}
	}
	c.mu.Unlock()

	start := time.Now()
	err := e.write(recs, orgRec, notes)
	e.obs.StoreOp("embedded", "flush", time.Since(start), err != nil)
	if err != nil {
		e.log.Error("cannot write relay counters to the state file; will retry", KeyStateFile, e.path, keyErr, err)
		// Mark them again so the next flush retries.
		c.mu.Lock()
		for name := range recs {
			c.dirty[name] = true
		}
		if orgRec != nil {
			c.orgDirty = true
		}
		for id := range notes {
			c.journalDirty[id] = true
		}
		c.mu.Unlock()
	}
}

func (e *Embedded) write(recs map[string][]byte, orgRec []byte, notes map[string][]byte) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("limits: writing %s: %v", e.path, p)
		}
	}()
	return e.db.Update(func(tx *bolt.Tx) error {
		if err := putAll(tx.Bucket(bucketUsers), recs); err != nil {
			return err
		}
		if err := putAll(tx.Bucket(bucketOutage), notes); err != nil {
			return err
		}
		if orgRec != nil {
			return tx.Bucket(bucketMeta).Put(keyOrg, orgRec)
		}
		return nil
	})
}

// putAll writes recs to b, deleting the keys whose value is nil. In key
// order: bbolt inserts into a node by moving what follows, so random
// order is quadratic in a large flush.
func putAll(b *bolt.Bucket, recs map[string][]byte) error {
	for _, k := range slices.Sorted(maps.Keys(recs)) {
		var err error
		if v := recs[k]; v == nil {
			err = b.Delete([]byte(k))
		} else {
			err = b.Put([]byte(k), v)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// Reserve implements rules.Limiter.
func (e *Embedded) Reserve(r rules.Reservation) (rules.Exceeded, error) {
	start := time.Now()
	ex, err := e.c.Reserve(r)
	e.obs.StoreOp("embedded", "reserve", time.Since(start), false)
	return ex, err
}

func (e *Embedded) Commit(tx string) error { return e.c.Commit(tx) }
func (e *Embedded) Release(tx string)      { e.c.Release(tx) }

func (e *Embedded) Show(user string) (Report, error) {
	r := e.c.report(user)
	r.Store = "embedded " + e.path
	if e.db == nil {
		r.Store += " (not durable: see the log)"
	}
	return r, nil
}

// Reset clears a user and writes it at once.
func (e *Embedded) Reset(user string) (bool, error) {
	had := e.c.reset(user)
	e.flush()
	return had, nil
}

func (e *Embedded) Stats(lim rules.Limits) (Stats, error) { return e.c.stats(lim), nil }

// Close writes what is left and closes the file.
func (e *Embedded) Close() error {
	select {
	case <-e.stop:
		return nil
	default:
	}
	close(e.stop)
	<-e.done
	e.flush()
	if e.db != nil {
		return e.db.Close()
	}
	return nil
}

// ReadFile reads the counters of a state file that no daemon holds (the
// `limits` command with the daemon stopped).
func ReadFile(dir string, log *slog.Logger, now func() time.Time) (*Memory, error) {
	path := filepath.Join(dir, FileName)
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second, ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	defer db.Close()
	if now == nil {
		now = time.Now
	}
	e := &Embedded{c: newCounter(now), path: path, log: log}
	if err := e.load(db); err != nil {
		return nil, err
	}
	return &Memory{c: e.c}, nil
}
