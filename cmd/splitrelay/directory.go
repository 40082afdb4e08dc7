package main

import (
	"context"
	"log/slog"
	"reflect"
	"sync"

	"github.com/splitrelay/splitrelay/milter"
	"github.com/splitrelay/splitrelay/milter/ldapsync"
	"github.com/splitrelay/splitrelay/rules"
)

// directorySync puts the rules of the configuration file and the directory
// of the LDAP sync together: the server decides with
// base.WithDirectory(base.Directory().Overlay(synced)). A reload replaces
// base; a sync replaces synced; either swaps the server's rules
// atomically, and neither rebuilds the other.
type directorySync struct {
	srv *milter.Server
	log *slog.Logger
	obs ldapsync.Observer // nil without [metrics]

	mu     sync.Mutex
	base   *rules.Ruleset
	synced *rules.Directory

	syncer *ldapsync.Syncer
	cancel context.CancelFunc
	done   chan struct{}
}

func newDirectorySync(srv *milter.Server, log *slog.Logger, obs ldapsync.Observer) *directorySync {
	return &directorySync{srv: srv, log: log, obs: obs}
}

// setRules installs rules loaded from the file (at start and on reload)
// and starts, restarts or stops the sync to match its [directory.ldap]
// and [state] dir. A restored snapshot is in place before it returns.
func (d *directorySync) setRules(rs *rules.Ruleset) {
	d.mu.Lock()
	d.base = rs
	same := d.syncer != nil && rs.LDAP != nil && reflect.DeepEqual(d.syncer.Config(), *rs.LDAP) && d.syncer.StateDir() == rs.State.Dir
	if rs.LDAP == nil {
		d.synced = nil
	}
	// With a changed [directory.ldap], the directory in use stays until the
	// new sync restores its snapshot or syncs: never route for a moment
	// as if the LDAP users did not exist.
	d.srv.SetRules(d.compose())
	d.mu.Unlock()
	if same {
		return
	}
	d.stop()
	if rs.LDAP == nil {
		return
	}
	s := ldapsync.New(*rs.LDAP, rs.State.Dir, d.log, d.obs, d.apply)
	if err := s.Restore(); err != nil && !ldapsync.NoSnapshot(err) {
		d.log.Error("cannot restore the directory snapshot; routing with the file's directory until a sync succeeds", milter.KeyErr, err)
	} else if err != nil {
		d.log.Warn("no directory snapshot yet; routing with the file's directory until the first sync", milter.KeyLDAPURL, rs.LDAP.URL)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	d.mu.Lock()
	d.syncer, d.cancel, d.done = s, cancel, done
	d.mu.Unlock()
	go func() {
		defer close(done)
		s.Run(ctx)
	}()
}

// apply is the syncer's hook: a new directory to overlay.
func (d *directorySync) apply(dir *rules.Directory) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.synced = dir
	d.srv.SetRules(d.compose())
}

func (d *directorySync) compose() *rules.Ruleset {
	if d.synced == nil {
		return d.base
	}
	return d.base.WithDirectory(d.base.Directory().Overlay(d.synced))
}

// syncNow asks for a sync now (SIGHUP), if there is a syncer.
func (d *directorySync) syncNow() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.syncer != nil {
		d.syncer.SyncNow()
	}
}

// stop ends the running sync and waits for it.
func (d *directorySync) stop() {
	d.mu.Lock()
	cancel, done := d.cancel, d.done
	d.syncer, d.cancel, d.done = nil, nil, nil
	d.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
}
