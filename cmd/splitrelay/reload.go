package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"github.com/splitrelay/splitrelay/rules"
)

const reloadFlags = `  --pid PID             the running daemon (default: $MAINPID, which systemd sets for ExecReload=)
  --timeout DURATION    how long to wait for the daemon's answer (default 30s)
`

// cmdReload is `splitrelay reload -c FILE [--pid PID]`: systemd's
// ExecReload=. It validates FILE, asks the running daemon to reload over
// its control socket (control.go) and reports the daemon's own result:
// exit 0 when the new configuration is in force, 1 when it was refused
// (every problem printed, at priority err on journald) or the daemon
// could not be reached. Unlike `kill -HUP` it needs no other program and
// never reports success for a file the daemon refused.
func cmdReload(args []string, stdout, stderr io.Writer) int {
	fs, config := newFlags("reload", "-c FILE [--pid PID] [--timeout DURATION]", reloadFlags, stdout, stderr)
	pid := fs.Int("pid", 0, "")
	timeout := fs.Duration("timeout", 30*time.Second, "")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	errp := errPrefix(stderr)
	if *pid == 0 {
		if p, err := strconv.Atoi(os.Getenv("MAINPID")); err == nil {
			*pid = p
		}
	}
	if *pid <= 0 {
		return usageError(fs, "no daemon to reload: give --pid PID (systemd sets $MAINPID for ExecReload=)")
	}
	// Validate first, so that the problems are shown even when the
	// daemon cannot be reached; the daemon's answer decides the exit code.
	local, lerr := loadConfig(*config)
	r, err := requestReload(*pid, *timeout)
	if err != nil {
		if lerr != nil {
			printProblems(stderr, errp, lerr)
		}
		fmt.Fprintf(stderr, "%ssplitrelay reload: cannot reach the daemon (pid %d): %v\n", errp, *pid, err)
		return 1
	}
	if !r.ok {
		for _, e := range r.errors {
			fmt.Fprintf(stderr, "%s%s\n", errp, e)
		}
		fmt.Fprintf(stderr, "%ssplitrelay reload: %s refused; the daemon keeps configuration %s\n", errp, r.path, r.id)
		return 1
	}
	if local == nil || local.ID != r.id {
		fmt.Fprintf(stderr, "%ssplitrelay reload: the daemon loaded %s (configuration %s), which is not what %s holds now; check both\n",
			errPrefixLevel(stderr, prioWarning), r.path, r.id, *config)
	}
	fmt.Fprintf(stdout, "%s reloaded: configuration %s in force\n", r.path, r.id)
	return 0
}

// errPrefix is "<3>" (LOG_ERR) when w is the journal, "" otherwise.
func errPrefix(w io.Writer) string { return errPrefixLevel(w, prioErr) }

func errPrefixLevel(w io.Writer, prio int) string {
	if isJournal(w) {
		return "<" + strconv.Itoa(prio) + ">"
	}
	return ""
}

// printProblems prints a configuration's problems, one per line, each
// with prefix.
func printProblems(w io.Writer, prefix string, err error) {
	var es rules.Errors
	if errors.As(err, &es) {
		for _, e := range es {
			fmt.Fprintf(w, "%s%s\n", prefix, e.Error())
		}
		return
	}
	fmt.Fprintf(w, "%ssplitrelay: %v\n", prefix, err)
}
