package main

import (
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/lmittmann/tint"
)

// newLogger builds the daemon's logger: tint (colour) on a terminal,
// key=value without colour codes otherwise, or JSON. On journald (see
// journal.go) text and JSON lines carry their syslog priority and no
// time. The level is a LevelVar so a reload can change it.
func newLogger(w io.Writer, format string, level *slog.LevelVar) *slog.Logger {
	if format != "tint" && isJournal(w) {
		if format == "auto" {
			format = "text"
		}
		return slog.New(newJournalHandler(w, format, level))
	}
	if format == "auto" {
		format = "text"
		if isTerminal(w) {
			format = "tint"
		}
	}
	switch format {
	case "json":
		return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level}))
	case "tint":
		return slog.New(tint.NewTextHandler(w, &tint.Options{Level: level, TimeFormat: time.DateTime}))
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

func parseLevel(s string) slog.Level {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return slog.LevelInfo
	}
	return l
}
