package main

import (
	"context"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/splitrelay/splitrelay/milter"
	"github.com/splitrelay/splitrelay/milter/ldapsync"
	"github.com/splitrelay/splitrelay/milter/metrics"
	"github.com/splitrelay/splitrelay/rules"
)

// drainTimeout bounds how long SIGTERM waits for Postfix to finish the SMTP
// sessions in progress; after it the remaining milter connections are
// closed and Postfix applies milter_default_action (tempfail) to them.
const drainTimeout = 30 * time.Second

// cmdRun is `splitrelay run -c FILE`: the daemon, in the foreground,
// logging to stderr. SIGHUP, or `splitrelay reload` through the control
// socket, reloads FILE atomically (a file that does not validate is
// refused and the running rules stay); SIGTERM and SIGINT drain and exit.
// Under systemd it notifies READY/RELOADING/STOPPING and STATUS=, and
// feeds the watchdog while a probe transaction succeeds (status.go).
func cmdRun(args []string, stdout, stderr io.Writer) int {
	fs, config := newFlags("run", "-c FILE", "", stdout, stderr)
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	path := *config
	// Catch signals before anything else: once the socket exists, a
	// SIGHUP (systemctl reload) must reload, not kill the daemon with the
	// default action.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)
	rs, err := loadConfig(path)
	if err != nil {
		printProblems(stderr, errPrefix(stderr), err)
		return 1
	}
	level := new(slog.LevelVar)
	level.Set(parseLevel(rs.Log.Level))
	log := newLogger(stderr, rs.Log.Format, level)

	// The control socket exists before the milter socket, so whoever
	// waits for the latter can reload.
	ctl, err := listenControl(log)
	if err != nil {
		// reload by SIGHUP still works; `splitrelay reload` will say it
		// cannot reach the daemon
		log.Warn("no control socket: splitrelay reload cannot reach this daemon", milter.KeyErr, err)
	}
	defer ctl.close()
	var reqs chan chan reloadResult
	if ctl != nil {
		reqs = ctl.reqs
	}
	ln, err := milter.Listen(rs.Milter.Listen)
	if err != nil {
		log.Error("cannot listen", milter.KeyListen, rs.Milter.Listen, milter.KeyErr, err)
		return 1
	}
	srv := milter.New(rs, log)
	var ms *metricsServer
	var m *metrics.Metrics
	var dirObs ldapsync.Observer
	if rs.Metrics.Listen != "" {
		m = metrics.New(buildVersion())
		m.Configure(rs)
		if ms, err = startMetrics(log, rs.Metrics.Listen, m); err != nil {
			ln.Close()
			log.Error("cannot listen for metrics", milter.KeyListen, rs.Metrics.Listen, milter.KeyErr, err)
			return 1
		}
		srv.SetObserver(m)
		dirObs = m
	}
	store, lctl, err := startLimits(log, rs, srv, m)
	if err != nil {
		ln.Close()
		ms.shutdown(context.Background())
		log.Error("cannot open the relay counters", milter.KeyErr, err)
		return 1
	}
	defer stopLimits(log, store, lctl)
	dirs := newDirectorySync(srv, log, dirObs)
	dirs.setRules(rs) // a directory snapshot is restored before the first message
	defer dirs.stop()
	debug.FreeOSMemory() // what loading a large directory used and no longer needs
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	st := newStatus(rs, srv.Stats())
	st.notify("READY=1")
	log.Info("splitrelay started", milter.KeyVersion, versionString(), milter.KeyListen, rs.Milter.Listen,
		milter.KeyConfig, path, milter.KeyConfigID, rs.ID, milter.KeyRoutes, len(rs.RouteNames), milter.KeyRules, len(rs.Rules), milter.KeyDryRun, rs.Milter.DryRun)
	// Keep the socket's name, not the first rules (rs is not used below):
	// a reload must be able to free them (a large directory is tens of MB).
	listen := rs.Milter.Listen

	mctx, stopMonitor := context.WithCancel(context.Background())
	defer stopMonitor()
	wd := watchdogInterval()
	if wd > 0 {
		log.Info("watchdog enabled", milter.KeyWatchdog, wd.Seconds())
	}
	probeNet, probeAddr := milter.ProbeAddr(ln)
	go monitor(mctx, log, st, wd, func(ctx context.Context) error {
		return milter.Probe(ctx, probeNet, probeAddr, srv.Rules().Domains[0])
	})

	// doReload reloads the file and tells systemd, the metrics and the
	// status line how it went.
	doReload := func() reloadResult {
		sdNotify(sdReloading())
		next, errs := reload(log, level, srv, dirs, path)
		// The previous rules (a directory of a million users is tens of
		// MB) are garbage now, or once the transactions that began under
		// them end: return the memory rather than keep the high-water
		// mark of each reload.
		debug.FreeOSMemory()
		time.AfterFunc(2*time.Second, debug.FreeOSMemory)
		ms.reload(next)
		st.reloaded(next)
		st.notify("READY=1")
		return reloadResult{ok: next != nil, id: srv.Rules().ID, path: path, errors: errs}
	}
	for {
		select {
		case err := <-done:
			if err != nil {
				log.Error("milter server stopped", milter.KeyErr, err)
				return 1
			}
			return 0
		case reply := <-reqs:
			reply <- doReload()
		case sig := <-sigs:
			if sig == syscall.SIGHUP {
				doReload()
				continue
			}
			stopMonitor()
			sdNotify("STOPPING=1")
			log.Info("shutting down", milter.KeySignal, sig.String(), milter.KeyDrainTimeout, drainTimeout.Seconds())
			ctx, cancel := context.WithTimeout(context.Background(), drainTimeout)
			err := srv.Shutdown(ctx)
			ms.shutdown(ctx)
			cancel()
			if err != nil {
				log.Warn("shutdown did not drain", milter.KeyErr, err)
			}
			if la, err := rules.ParseListenAddr(listen); err == nil && la.Network == "unix" {
				os.Remove(la.Path)
			}
			log.Info("stopped")
			return 0
		}
	}
}

// reload validates the file and swaps the rules atomically; on any problem
// the running rules stay and every problem is logged. It returns the new
// rules, or nil and the problems, one per line.
func reload(log *slog.Logger, level *slog.LevelVar, srv *milter.Server, dirs *directorySync, path string) (*rules.Ruleset, []string) {
	old := srv.Rules()
	rs, err := loadConfig(path)
	if err != nil {
		log.Error("reload refused; keeping the running rules", milter.KeyConfig, path, milter.KeyConfigID, old.ID, milter.KeyErr, err)
		return nil, strings.Split(err.Error(), "\n")
	}
	if rs.Milter.Listen != old.Milter.Listen {
		log.Warn("milter.listen changed; restart splitrelay to apply it", milter.KeyListen, old.Milter.Listen, milter.KeyNewListen, rs.Milter.Listen)
	}
	if !slices.Equal(rs.RouteNames, old.RouteNames) || rs.Milter.RoutingSuffix != old.Milter.RoutingSuffix {
		// Postfix only knows the routes its maps were generated for; mail
		// for another route is deferred by the generated catch-all, not
		// lost, but it waits until the maps are regenerated.
		log.Warn("routes changed: run splitrelay postfix and postfix reload so Postfix knows them", milter.KeyRoutes, strings.Join(rs.RouteNames, ","))
	}
	if (old.Relay == nil) != (rs.Relay == nil) {
		log.Warn("relay section added or removed; restart splitrelay to open or close the relay counters' store")
	}
	if rs.State != old.State {
		log.Warn("state changed; restart splitrelay to apply it", "state_dir", old.State.Dir, "new_state_dir", rs.State.Dir)
	}
	if rs.Log.Format != old.Log.Format {
		log.Warn("log.format changed; restart splitrelay to apply it")
	}
	level.Set(parseLevel(rs.Log.Level))
	if rs.Metrics.Listen != old.Metrics.Listen {
		log.Warn("metrics.listen changed; restart splitrelay to apply it", milter.KeyMetricsListen, old.Metrics.Listen, milter.KeyNewMetricsListen, rs.Metrics.Listen)
	}
	dirs.setRules(rs)
	dirs.syncNow()
	log.Info("configuration reloaded", milter.KeyConfig, path, milter.KeyConfigID, rs.ID, milter.KeyOldConfigID, old.ID,
		milter.KeyRoutes, len(rs.RouteNames), milter.KeyRules, len(rs.Rules), milter.KeyDryRun, rs.Milter.DryRun)
	return rs, nil
}
