package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/splitrelay/splitrelay/milter"
	"github.com/splitrelay/splitrelay/milter/limits"
	"github.com/splitrelay/splitrelay/milter/metrics"
	"github.com/splitrelay/splitrelay/rules"
)

// openStore opens the relay counters that [state] names: Redis when set,
// else the embedded file in dir. It fails only for a Redis URL that go-redis
// cannot use; an unreachable Redis or a damaged file is handled (and
// logged) by the store itself.
func openStore(st rules.State, log *slog.Logger, obs limits.Observer) (limits.Store, error) {
	if st.Redis != "" {
		return limits.OpenRedis(st, log, obs, nil)
	}
	return limits.OpenEmbedded(st.Dir, log, obs, nil)
}

// cmdLimits is `splitrelay limits -c FILE show [USER]` and `reset USER`:
// the running daemon's counters through its control socket in [state] dir;
// with no daemon running, the state file or Redis directly.
func cmdLimits(args []string, stdout, stderr io.Writer) int {
	fs, path := newFlags("limits", "[-c FILE] [--format text|json] show [USER] | reset USER", "  --format text|json    output (default text)\n", stdout, stderr)
	format := fs.String("format", "text", "")
	rest, code, ok := fs.parseArgs(args)
	if !ok {
		return code
	}
	if len(rest) == 0 {
		return usageError(fs, "say show [USER] or reset USER")
	}
	op, user := rest[0], ""
	if len(rest) > 1 {
		user = rules.CountKey(rest[1])
	}
	switch {
	case op == "show" && len(rest) <= 2:
	case op == "reset" && len(rest) == 2:
	default:
		return usageError(fs, "say show [USER] or reset USER")
	}
	if *format != "text" && *format != "json" {
		return usageError(fs, "--format %q: want text or json", *format)
	}
	rs, err := loadConfig(*path)
	if err != nil {
		printLoadError(stderr, err)
		return 1
	}
	st, closeFn, err := limitsStore(rs.State, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "splitrelay limits: %v\n", err)
		return 1
	}
	defer closeFn()
	if op == "reset" {
		had, err := st.Reset(user)
		if err != nil {
			fmt.Fprintf(stderr, "splitrelay limits: reset %s: %v\n", user, err)
			return 1
		}
		if had {
			fmt.Fprintf(stdout, "%s: counters cleared\n", user)
		} else {
			fmt.Fprintf(stdout, "%s: nothing was counted\n", user)
		}
		return 0
	}
	r, err := st.Show(user)
	if err != nil {
		fmt.Fprintf(stderr, "splitrelay limits: %v\n", err)
		return 1
	}
	if *format == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(r)
		return 0
	}
	if rs.Relay != nil {
		l := rs.Relay.Limits
		fmt.Fprintf(stdout, "limits: per user %s messages and %s unique recipients in 24 hours; organisation %s recipients in 24 hours, %s in 10 minutes\n",
			limitText(l.UserMessagesPerDay), limitText(l.UserRecipientsPerDay), limitText(l.OrgRecipientsPerDay), limitText(l.OrgRecipientsPer10Minutes))
	}
	r.Print(stdout, user)
	return 0
}

// showResetter is what the limits command needs of a store.
type showResetter interface {
	Show(user string) (limits.Report, error)
	Reset(user string) (bool, error)
}

// limitsStore finds the counters: the daemon's control socket, else Redis,
// else the state file.
func limitsStore(st rules.State, stderr io.Writer) (showResetter, func(), error) {
	c, err := limits.Dial(st.Dir)
	if err == nil {
		return c, func() {}, nil
	}
	if !errors.Is(err, limits.ErrNoDaemon) {
		return nil, nil, err
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	s, err := openStore(st, log, nil)
	if err != nil {
		return nil, nil, err
	}
	return s, func() { s.Close() }, nil
}

// startLimits opens the relay counters for the daemon, hands them to the
// milter and the metrics (m may be nil) and serves the control socket.
func startLimits(log *slog.Logger, rs *rules.Ruleset, srv *milter.Server, m *metrics.Metrics) (limits.Store, *limits.Control, error) {
	var obs limits.Observer
	if m != nil {
		obs = m
	}
	if rs.Relay == nil {
		// No relay policy, no limits: nothing to keep.
		srv.SetLimits(limits.NewMemory(nil))
		return srv.Limits(), nil, nil
	}
	store, err := openStore(rs.State, log, obs)
	if err != nil {
		return nil, nil, err
	}
	srv.SetLimits(store)
	if m != nil {
		m.SetLimits(func() (limits.Stats, error) {
			lim := rules.Limits{}
			if r := srv.Rules().Relay; r != nil {
				lim = r.Limits
			}
			return store.Stats(lim)
		})
	}
	ctl, err := limits.ServeControl(rs.State.Dir, store)
	if err != nil {
		// The limits command will not reach this daemon; mail flows.
		log.Error("cannot serve the control socket; splitrelay limits will not reach this daemon", "err", err)
	}
	return store, ctl, nil
}

// stopLimits closes the control socket and writes the counters out.
func stopLimits(log *slog.Logger, store limits.Store, ctl *limits.Control) {
	ctl.Close()
	if err := store.Close(); err != nil {
		log.Error("cannot close the relay counters", "err", err)
	}
}

func limitText(n int) string {
	if n == 0 {
		return "unlimited"
	}
	return fmt.Sprint(n)
}
