package main

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"golang.org/x/sys/unix"
)

func TestPriority(t *testing.T) {
	tests := []struct {
		level slog.Level
		want  int
	}{
		{slog.LevelDebug - 4, 7},
		{slog.LevelDebug, 7},
		{slog.LevelInfo - 1, 7},
		{slog.LevelInfo, 6},
		{slog.LevelInfo + 2, 6},
		{slog.LevelWarn, 4},
		{slog.LevelError - 1, 4},
		{slog.LevelError, 3},
		{slog.LevelError + 4, 3},
	}
	for _, tc := range tests {
		t.Run(tc.level.String(), func(t *testing.T) {
			if got := priority(tc.level); got != tc.want {
				t.Errorf("priority(%v) = %d, want %d", tc.level, got, tc.want)
			}
		})
	}
}

func TestJournalHandler(t *testing.T) {
	tests := []struct {
		format string
		want   string
	}{
		{"text", "<6>level=INFO msg=\"splitrelay started\" conn_id=1 n=2\n" +
			"<3>level=ERROR msg=\"reload refused; keeping the running rules\" conn_id=1\n" +
			"<7>level=DEBUG msg=\"client connected\" conn_id=1\n" +
			"<4>level=WARN msg=\"recipient rejected\" conn_id=1\n"},
		{"json", "<6>{\"level\":\"INFO\",\"msg\":\"splitrelay started\",\"conn_id\":\"1\",\"n\":2}\n" +
			"<3>{\"level\":\"ERROR\",\"msg\":\"reload refused; keeping the running rules\",\"conn_id\":\"1\"}\n" +
			"<7>{\"level\":\"DEBUG\",\"msg\":\"client connected\",\"conn_id\":\"1\"}\n" +
			"<4>{\"level\":\"WARN\",\"msg\":\"recipient rejected\",\"conn_id\":\"1\"}\n"},
	}
	for _, tc := range tests {
		t.Run(tc.format, func(t *testing.T) {
			var buf bytes.Buffer
			lv := new(slog.LevelVar)
			lv.Set(slog.LevelDebug)
			log := slog.New(newJournalHandler(&buf, tc.format, lv)).With("conn_id", "1")
			log.Info("splitrelay started", "n", 2)
			log.Error("reload refused; keeping the running rules")
			log.Debug("client connected")
			log.Warn("recipient rejected")
			if buf.String() != tc.want {
				t.Errorf("got:\n%s\nwant:\n%s", buf.String(), tc.want)
			}
		})
	}
}

// newLogger picks the journald handler only when $JOURNAL_STREAM names
// the very file it writes to.
func TestIsJournal(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "stream"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	id := strconv.FormatUint(uint64(st.Dev), 10) + ":" + strconv.FormatUint(st.Ino, 10)
	tests := []struct {
		env  string
		want bool
	}{
		{"", false},
		{id, true},
		{strconv.FormatUint(uint64(st.Dev), 10) + ":1", false},
		{"garbage", false},
	}
	for _, tc := range tests {
		t.Setenv("JOURNAL_STREAM", tc.env)
		if got := isJournal(f); got != tc.want {
			t.Errorf("JOURNAL_STREAM=%q: isJournal = %v, want %v", tc.env, got, tc.want)
		}
	}
	t.Setenv("JOURNAL_STREAM", id)
	if isJournal(&bytes.Buffer{}) {
		t.Error("a buffer is not the journal")
	}
	lv := new(slog.LevelVar)
	newLogger(f, "auto", lv).Warn("disk full")
	data, _ := os.ReadFile(f.Name())
	if want := "<4>level=WARN msg=\"disk full\"\n"; string(data) != want {
		t.Errorf("auto on the journal wrote %q, want %q", data, want)
	}
}
