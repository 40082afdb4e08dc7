package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/splitrelay/splitrelay/milter"
	"github.com/splitrelay/splitrelay/rules"
)

// status is what the daemon tells systemd in STATUS= (systemctl status
// shows it): the configuration in force, a refused reload, a failing
// watchdog probe, and the traffic so far.
type status struct {
	stats *milter.Stats

	mu       sync.Mutex
	id       string
	loaded   time.Time
	refused  time.Time // last refused reload, if after loaded
	probeErr error
}

func newStatus(rs *rules.Ruleset, stats *milter.Stats) *status {
	return &status{stats: stats, id: rs.ID, loaded: time.Now()}
}

// reloaded records a reload's result: rs on success, nil when refused.
func (s *status) reloaded(rs *rules.Ruleset) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if rs == nil {
		s.refused = time.Now()
		return
	}
	s.id, s.loaded, s.refused = rs.ID, time.Now(), time.Time{}
}

func (s *status) probed(err error) {
	s.mu.Lock()
	s.probeErr = err
	s.mu.Unlock()
}

// line is the STATUS= text.
func (s *status) line() string {
	const stamp = "2006-01-02 15:04:05 MST"
	s.mu.Lock()
	defer s.mu.Unlock()
	l := fmt.Sprintf("config %s loaded %s", s.id, s.loaded.Format(stamp))
	if !s.refused.IsZero() {
		l += fmt.Sprintf("; RELOAD REFUSED %s (journalctl -u splitrelay -p err)", s.refused.Format(stamp))
	}
	if s.probeErr != nil {
		l += fmt.Sprintf("; WATCHDOG PROBE FAILING: %v", s.probeErr)
	}
	return l + "; " + s.stats.String()
}

// notifyStatus sends the status line, with other states if given.
func (s *status) notify(states ...string) {
	msg := ""
	for _, st := range states {
		msg += st + "\n"
	}
	sdNotify(msg + "STATUS=" + s.line())
}

// watchdogInterval is systemd's WatchdogSec= for this process
// ($WATCHDOG_USEC, when $WATCHDOG_PID is unset or ours), 0 when none.
func watchdogInterval() time.Duration {
	if p := os.Getenv("WATCHDOG_PID"); p != "" && p != strconv.Itoa(os.Getpid()) {
		return 0
	}
	usec, err := strconv.ParseInt(os.Getenv("WATCHDOG_USEC"), 10, 64)
	if err != nil || usec <= 0 {
		return 0
	}
	return time.Duration(usec) * time.Microsecond
}

// statusInterval is how often STATUS= is refreshed without a watchdog.
const statusInterval = 10 * time.Second

// monitor refreshes STATUS= and, with a watchdog, feeds it: WATCHDOG=1 is
// sent only after a probe transaction (a milter round trip through the
// accept loop and the callbacks) succeeded, every half watchdog period,
// as sd_watchdog_enabled(3) advises. A hung accept loop or callback
// starves the watchdog and systemd restarts the daemon. It returns when
// ctx is done.
func monitor(ctx context.Context, log *slog.Logger, st *status, wd time.Duration, probe func(context.Context) error) {
	period := statusInterval
	if wd > 0 {
		period = min(period, wd/2)
	}
	t := time.NewTicker(period)
	defer t.Stop()
	failing := false
	for {
		if wd > 0 {
			pctx, cancel := context.WithTimeout(ctx, period)
			err := probe(pctx)
			cancel()
			if ctx.Err() != nil {
				return
			}
			st.probed(err)
			switch {
			case err != nil && !failing:
				log.Error("watchdog probe failed; not feeding the watchdog", milter.KeyErr, err)
			case err == nil && failing:
				log.Info("watchdog probe recovered")
			}
			failing = err != nil
			if err == nil {
				st.notify("WATCHDOG=1")
			} else {
				st.notify()
			}
		} else {
			st.notify()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
