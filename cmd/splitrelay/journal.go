package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"sync"

	"golang.org/x/sys/unix"
)

// Under systemd, stderr is a stream to journald, which stamps every line
// with its own time and reads a "<N>" prefix as the line's syslog priority
// (sd-daemon(3), SyslogLevelPrefix= in systemd.exec(5)). Without the prefix
// every line is PRIORITY=6 and `journalctl -p err` shows no error.

// Syslog priorities (RFC 5424 severities) that journald understands.
const (
	prioErr     = 3 // LOG_ERR
	prioWarning = 4 // LOG_WARNING
	prioInfo    = 6 // LOG_INFO
	prioDebug   = 7 // LOG_DEBUG
)

// priority maps a slog level to a syslog priority: levels between the
// named ones take the priority of the one below (INFO+2 is still info).
func priority(l slog.Level) int {
	switch {
	case l >= slog.LevelError:
		return prioErr
	case l >= slog.LevelWarn:
		return prioWarning
	case l >= slog.LevelInfo:
		return prioInfo
	}
	return prioDebug
}

// isJournal reports whether w is the stream systemd connected to journald:
// $JOURNAL_STREAM is "DEVICE:INODE" of that stream, and it only counts if
// w is still that file (a child whose stderr was redirected inherits the
// variable but not the stream).
func isJournal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	js := os.Getenv("JOURNAL_STREAM")
	if js == "" {
		return false
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return false
	}
	return js == strconv.FormatUint(uint64(st.Dev), 10)+":"+strconv.FormatUint(st.Ino, 10)
}

// journalHandler writes each record as one line with its "<N>" priority
// prefix, formatted by the wrapped handler (built without the time).
type journalHandler struct {
	inner slog.Handler
	out   *prefixWriter
}

// prefixWriter puts the priority of the record being written in front of
// the line. The lock spans formatting and writing, so the prefix always
// belongs to its own line.
type prefixWriter struct {
	mu   sync.Mutex
	w    io.Writer
	prio int
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	if _, err := fmt.Fprintf(p.w, "<%d>%s", p.prio, b); err != nil {
		return 0, err
	}
	return len(b), nil
}

// newJournalHandler returns a handler for journald: format is "text"
// (key=value) or "json", without time=.
func newJournalHandler(w io.Writer, format string, level slog.Leveler) slog.Handler {
	pw := &prefixWriter{w: w}
	opts := &slog.HandlerOptions{Level: level, ReplaceAttr: dropTime}
	var inner slog.Handler = slog.NewTextHandler(pw, opts)
	if format == "json" {
		inner = slog.NewJSONHandler(pw, opts)
	}
	return &journalHandler{inner: inner, out: pw}
}

// dropTime removes the record's time: journald has its own.
func dropTime(groups []string, a slog.Attr) slog.Attr {
	if len(groups) == 0 && a.Key == slog.TimeKey {
		return slog.Attr{}
	}
	return a
}

func (h *journalHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.inner.Enabled(ctx, l)
}

func (h *journalHandler) Handle(ctx context.Context, r slog.Record) error {
	h.out.mu.Lock()
	defer h.out.mu.Unlock()
	h.out.prio = priority(r.Level)
	return h.inner.Handle(ctx, r)
}

func (h *journalHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &journalHandler{inner: h.inner.WithAttrs(as), out: h.out}
}

func (h *journalHandler) WithGroup(name string) slog.Handler {
	return &journalHandler{inner: h.inner.WithGroup(name), out: h.out}
}
