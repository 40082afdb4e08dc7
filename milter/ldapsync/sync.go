// Package ldapsync keeps the directory in step with an LDAP server or
// Active Directory ([directory.ldap]): every refresh interval it reads the
// users and groups in paged searches, builds an immutable rules.Directory
// and hands it to the daemon, which swaps it in atomically like a reload.
//
// Active Directory answers with at most MaxValRange values of an
// attribute (1500; 5000 on newer domain controllers): a bigger group
// carries "member;range=0-1499" instead of "member", and the sync asks
// for the next ranges with base searches on the group until the one
// ending in "*" (the same for every configured member and address
// attribute). A group it cannot read whole (a search fails; ranges
// overlap, leave a gap, are malformed or never end) fails the sync with
// the group's DN and the attribute: half a group would route mail by the
// wrong membership without a word.
//
// The last good result is written to the state directory, so a restart
// while the server is down still routes with it. A failed sync changes
// nothing: the directory in use stays, the failure is logged and counted.
package ldapsync

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"time"

	"github.com/splitrelay/splitrelay/milter"
	"github.com/splitrelay/splitrelay/rules"
)

// SnapshotFile is the name of the last good sync in the state directory.
const SnapshotFile = "directory-ldap.json"

// Snapshot is one sync's result as persisted.
type Snapshot struct {
	// Time is when it was read from the server.
	Time time.Time `json:"time"`
	// URL and BaseDN say where from.
	URL     string        `json:"url"`
	BaseDN  string        `json:"base_dn"`
	Entries rules.Entries `json:"entries"`
}

// Observer is told about every sync (Success or Failure) and about a
// snapshot Restored at start: the time of the data in use and what it
// holds (zero after a failure). The metrics package implements it.
type Observer interface {
	DirectorySync(result string, dataTime time.Time, st rules.DirectoryStats)
}

// Results given to an Observer.
const (
	Success  = "success"
	Failure  = "failure"
	Restored = "restored"
)

// Syncer runs the syncs of one [directory.ldap] configuration.
type Syncer struct {
	cfg      rules.LDAP
	stateDir string
	log      *slog.Logger
	obs      Observer
	apply    func(*rules.Directory)
	fetch    func(context.Context, *rules.LDAP) (*rules.Entries, error) // Fetch; a fake server in tests
	now      func() time.Time
	trigger  chan struct{}
}

// New returns a syncer; apply receives each new directory (the daemon
// overlays it on the configuration file's and swaps the rules). obs may
// be nil.
func New(cfg rules.LDAP, stateDir string, log *slog.Logger, obs Observer, apply func(*rules.Directory)) *Syncer {
	return &Syncer{cfg: cfg, stateDir: stateDir, log: log, obs: obs, apply: apply, fetch: Fetch, now: time.Now, trigger: make(chan struct{}, 1)}
}

// Config is the configuration the syncer runs with.
func (s *Syncer) Config() rules.LDAP { return s.cfg }

// StateDir is where its snapshot is kept.
func (s *Syncer) StateDir() string { return s.stateDir }

// SyncNow asks for a sync without waiting for the refresh interval.
func (s *Syncer) SyncNow() {
	select {
	case s.trigger <- struct{}{}:
	default:
	}
}

// Restore applies the snapshot of the state directory, if there is one:
// the directory to route with until the first sync succeeds.
func (s *Syncer) Restore() error {
	snap, err := s.load()
	if err != nil {
		return err
	}
	d := s.build(&snap.Entries)
	s.apply(d)
	s.observe(Restored, snap.Time, d)
	s.log.Info("directory restored from snapshot", milter.KeyFile, s.path(), milter.KeySyncedAt, snap.Time.Format(time.RFC3339),
		milter.KeyUsers, d.Stats().Users, milter.KeyGroups, d.Stats().Groups, milter.KeyAliases, d.Stats().Aliases)
	return nil
}

// Run syncs now and then every refresh interval until ctx ends.
func (s *Syncer) Run(ctx context.Context) {
	for {
		s.Sync(ctx)
		t := time.NewTimer(s.cfg.Refresh)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-s.trigger:
			t.Stop()
		case <-t.C:
		}
	}
}

// Sync reads the server once; on success the new directory is applied and
// persisted, on failure the one in use stays. It reports whether the sync
// succeeded.
func (s *Syncer) Sync(parent context.Context) bool {
	start := s.now()
	// The directory in use stays while the new one is read and built:
	// collect more often meanwhile so that the peak stays near the two of
	// them (the built directory is pointer-free, collecting is cheap).
	defer debug.SetGCPercent(debug.SetGCPercent(25))
	ctx, cancel := context.WithTimeout(parent, 10*s.cfg.Timeout)
	defer cancel()
	e, err := s.fetch(ctx, &s.cfg)
	if err != nil && parent.Err() != nil {
		return false // shutting down or replaced by a reload: not a failure
	}
	if err != nil {
		if ctx.Err() != nil && err != ctx.Err() {
			err = fmt.Errorf("%w (%v)", err, ctx.Err())
		}
		s.log.Error("directory sync failed; keeping the directory in use", milter.KeyLDAPURL, s.cfg.URL, milter.KeyErr, err)
		s.observe(Failure, time.Time{}, nil)
		return false
	}
	snap := &Snapshot{Time: start, URL: s.cfg.URL, BaseDN: s.cfg.BaseDN, Entries: *e}
	if err := s.save(snap); err != nil {
		s.log.Warn("cannot save the directory snapshot; a restart while LDAP is down would route without it", milter.KeyFile, s.path(), milter.KeyErr, err)
	}
	d := s.build(e)
	s.apply(d)
	// The previous directory is garbage now, or once the transactions
	// that began with it end: give its memory back rather than letting
	// the heap grow by a directory per sync.
	debug.FreeOSMemory()
	time.AfterFunc(2*time.Second, debug.FreeOSMemory)
	st := d.Stats()
	s.observe(Success, start, d)
	s.log.Info("directory synced", milter.KeyLDAPURL, s.cfg.URL, milter.KeyUsers, st.Users, milter.KeyGroups, st.Groups, milter.KeyAliases, st.Aliases,
		milter.KeyDuration, s.now().Sub(start).Seconds())
	return true
}

func (s *Syncer) build(e *rules.Entries) *rules.Directory {
	d, problems := rules.BuildDirectory(e)
	for _, p := range problems {
		s.log.Warn("directory entry skipped", milter.KeyLDAPURL, s.cfg.URL, milter.KeyReason, p)
	}
	return d
}

func (s *Syncer) observe(result string, t time.Time, d *rules.Directory) {
	if s.obs == nil {
		return
	}
	var st rules.DirectoryStats
	if d != nil {
		st = d.Stats()
	}
	s.obs.DirectorySync(result, t, st)
}

func (s *Syncer) path() string { return filepath.Join(s.stateDir, SnapshotFile) }

// save writes the snapshot atomically: a crash leaves the old one or the
// new one, never half of one.
func (s *Syncer) save(snap *Snapshot) error {
	if err := os.MkdirAll(s.stateDir, 0o750); err != nil {
		return err
	}
	f, err := os.CreateTemp(s.stateDir, SnapshotFile+".*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	w := bufio.NewWriterSize(f, 1<<16)
	if err := writeSnapshot(w, snap); err != nil {
		f.Close()
		return err
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), s.path()); err != nil {
		return err
	}
	if d, err := os.Open(s.stateDir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// writeSnapshot writes snap as the JSON that load reads, an entry at a
// time: json.Encoder would first build the whole document in memory
// (tens of MB for a million users).
func writeSnapshot(w *bufio.Writer, snap *Snapshot) error {
	str := func(v string) {
		b, _ := json.Marshal(v)
		w.Write(b)
	}
	head, err := json.Marshal(struct {
		Time   time.Time `json:"time"`
		URL    string    `json:"url"`
		BaseDN string    `json:"base_dn"`
	}{snap.Time, snap.URL, snap.BaseDN})
	if err != nil {
		return err
	}
	w.Write(head[:len(head)-1])
	w.WriteString(`,"entries":{"users":[`)
	for i, u := range snap.Entries.Users {
		if i > 0 {
			w.WriteByte(',')
		}
		str(u)
	}
	w.WriteString(`],"aliases":{`)
	for i, a := range sortedKeys(snap.Entries.Aliases) {
		if i > 0 {
			w.WriteByte(',')
		}
		str(a)
		w.WriteByte(':')
		str(snap.Entries.Aliases[a])
	}
	w.WriteString(`},"groups":{`)
	for i, g := range sortedKeys(snap.Entries.Groups) {
		if i > 0 {
			w.WriteByte(',')
		}
		str(g)
		w.WriteString(":[")
		for j, m := range snap.Entries.Groups[g] {
			if j > 0 {
				w.WriteByte(',')
			}
			str(m)
		}
		w.WriteByte(']')
	}
	_, err = w.WriteString("}}}\n")
	return err
}

func (s *Syncer) load() (*Snapshot, error) {
	f, err := os.Open(s.path())
	if os.IsNotExist(err) {
		return nil, errNoSnapshot
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var snap Snapshot
	if err := json.NewDecoder(f).Decode(&snap); err != nil {
		return nil, fmt.Errorf("read %s: %w", s.path(), err)
	}
	if snap.URL != s.cfg.URL || snap.BaseDN != s.cfg.BaseDN {
		s.log.Warn("directory snapshot is from another server or base; using it until a sync succeeds",
			milter.KeyFile, s.path(), milter.KeySnapshotURL, snap.URL, milter.KeySnapshotBaseDN, snap.BaseDN)
	}
	return &snap, nil
}

// NoSnapshot reports whether Restore found no snapshot to restore.
func NoSnapshot(err error) bool { return err == errNoSnapshot }
