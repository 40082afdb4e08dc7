package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/splitrelay/splitrelay/milter"
	"github.com/splitrelay/splitrelay/milter/metrics"
)

// drainTimeout bounds how long SIGTERM waits for Postfix to finish the SMTP
// sessions in progress; after it the remaining milter connections are
// closed and Postfix applies milter_default_action (tempfail) to them.
const drainTimeout = 30 * time.Second

// cmdRun is `splitrelay run -c FILE`: the daemon, in the foreground,
// logging to stderr. SIGHUP reloads FILE atomically (a file that does not
// validate is refused and the running rules stay); SIGTERM and SIGINT
// drain and exit.
func cmdRun(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var path string
	fs.StringVar(&path, "c", "/etc/splitrelay/splitrelay.toml", "configuration `file`")
	fs.StringVar(&path, "config", "/etc/splitrelay/splitrelay.toml", "configuration `file`")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	// Catch signals before anything else: once the socket exists, a
	// SIGHUP (systemctl reload) must reload, not kill the daemon with the
	// default action.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)
	rs, err := loadConfig(path)
	if err != nil {
		fmt.Fprintf(stderr, "splitrelay: %v\n", err)
		return 1
	}
	level := new(slog.LevelVar)
	level.Set(parseLevel(rs.Log.Level))
	log := newLogger(stderr, rs.Log.Format, level)

	ln, err := milter.Listen(rs.Milter.Listen)
	if err != nil {
		log.Error("cannot listen", "listen", rs.Milter.Listen, "err", err)
		return 1
	}
	srv := milter.New(rs, log)
	var ms *metricsServer
	var m *metrics.Metrics
	if rs.Metrics.Listen != "" {
		m = metrics.New(buildVersion())
		if ms, err = startMetrics(log, rs.Metrics.Listen, m); err != nil {
			ln.Close()
			log.Error("cannot listen for metrics", "listen", rs.Metrics.Listen, "err", err)
			return 1
		}
		srv.SetObserver(m)
	}
	store, ctl, err := startLimits(log, rs, srv, m)
	if err != nil {
		ln.Close()
		ms.shutdown(context.Background())
		log.Error("cannot open the relay counters", "err", err)
		return 1
	}
	defer stopLimits(log, store, ctl)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	sdNotify("READY=1")
	log.Info("splitrelay started", "version", versionString(), "listen", rs.Milter.Listen,
		"config", path, "routes", len(rs.RouteNames), "rules", len(rs.Rules), "dry_run", rs.Milter.DryRun)

	for {
		select {
		case err := <-done:
			if err != nil {
				log.Error("milter server stopped", "err", err)
				return 1
			}
			return 0
		case sig := <-sigs:
			if sig == syscall.SIGHUP {
				sdNotify(sdReloading())
				ms.reload(reload(log, level, srv, path))
				sdNotify("READY=1")
				continue
			}
			sdNotify("STOPPING=1")
			log.Info("shutting down", "signal", sig.String(), "drain_timeout_seconds", drainTimeout.Seconds())
			ctx, cancel := context.WithTimeout(context.Background(), drainTimeout)
			err := srv.Shutdown(ctx)
			ms.shutdown(ctx)
			cancel()
			if err != nil {
				log.Warn("shutdown did not drain", "err", err)
			}
			if network := rs.Milter.Listen; len(network) > 5 && network[:5] == "unix:" {
				os.Remove(network[5:])
			}
			log.Info("stopped")
			return 0
		}
	}
}

// reload validates the file and swaps the rules atomically; on any problem
// the running rules stay and every problem is logged. It reports whether
// the new file was applied.
func reload(log *slog.Logger, level *slog.LevelVar, srv *milter.Server, path string) bool {
	old := srv.Rules()
	rs, err := loadConfig(path)
	if err != nil {
		log.Error("reload refused; keeping the running rules", "config", path, "err", err)
		return false
	}
	if rs.Milter.Listen != old.Milter.Listen {
		log.Warn("milter.listen changed; restart splitrelay to apply it", "listen", old.Milter.Listen, "new_listen", rs.Milter.Listen)
	}
	if !slices.Equal(rs.RouteNames, old.RouteNames) || rs.Milter.RoutingSuffix != old.Milter.RoutingSuffix {
		// Postfix only knows the routes its maps were generated for; mail
		// for another route is deferred by the generated catch-all, not
		// lost, but it waits until the maps are regenerated.
		log.Warn("routes changed: run splitrelay postfix and postfix reload so Postfix knows them", "routes", strings.Join(rs.RouteNames, ","))
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
		log.Warn("metrics.listen changed; restart splitrelay to apply it", "metrics_listen", old.Metrics.Listen, "new_metrics_listen", rs.Metrics.Listen)
	}
	srv.SetRules(rs)
	log.Info("configuration reloaded", "config", path, "routes", len(rs.RouteNames), "rules", len(rs.Rules), "dry_run", rs.Milter.DryRun)
	return true
}
