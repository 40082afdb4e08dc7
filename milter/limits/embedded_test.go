package limits

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/splitrelay/splitrelay/rules"
)

// logBuf is a concurrency-safe log sink.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) { l.mu.Lock(); defer l.mu.Unlock(); return l.b.Write(p) }
func (l *logBuf) String() string              { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

func testLog() (*slog.Logger, *logBuf) {
	b := &logBuf{}
	return slog.New(slog.NewTextHandler(b, nil)), b
}

var msgLim = rules.Limits{UserMessagesPerDay: 5, UserRecipientsPerDay: 5, OrgRecipientsPerDay: 100}

func sendN(t *testing.T, s Store, user string, n int, tag string) {
	t.Helper()
	for i := range n {
		tx := fmt.Sprintf("%s%d", tag, i)
		if ex, err := s.Reserve(res(tx, user, fmt.Sprintf("%s%d@x.test", tag, i), msgLim)); ex != rules.NotExceeded || err != nil {
			t.Fatalf("%s: %v %v", tx, ex, err)
		}
		if err := s.Commit(tx); err != nil {
			t.Fatal(err)
		}
	}
}

func TestEmbeddedSurvivesRestart(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state") // created by OpenEmbedded
	clk := &clock{t: t0}
	log, _ := testLog()
	e, err := OpenEmbedded(dir, log, nil, clk.now)
	if err != nil {
		t.Fatal(err)
	}
	sendN(t, e, "alice@example.com", 3, "a")
	sendN(t, e, "bob@example.com", 1, "b")
	// An open reservation is not persisted: its transaction dies with
	// the daemon.
	e.Reserve(res("open", "alice@example.com", "z@x.test", msgLim))
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	e, _ = OpenEmbedded(dir, log, nil, clk.now)
	defer e.Close()
	r, _ := e.Show("")
	if len(r.Users) != 2 || r.Users[0].Messages != 3 || r.Users[0].Recipients != 3 || r.Users[0].PendingMessages != 0 || r.Org.Day != 4 || r.Org.Pending != 0 {
		t.Fatalf("after restart: %+v", r)
	}
	// Two more for alice is the limit.
	sendN(t, e, "alice@example.com", 2, "c")
	if ex, _ := e.Reserve(res("d", "alice@example.com", "c0@x.test", msgLim)); ex != rules.UserMessages {
		t.Fatalf("6th message: %v", ex)
	}
}

// TestEmbeddedCrash: what a crash loses is what was committed after the
// last flush.
func TestEmbeddedCrash(t *testing.T) {
	dir := t.TempDir()
	clk := &clock{t: t0}
	log, _ := testLog()
	e, _ := OpenEmbedded(dir, log, nil, clk.now)
	sendN(t, e, "alice@example.com", 2, "a")
	e.flush()
	sendN(t, e, "alice@example.com", 1, "b")
	// "kill -9": stop without the final flush.
	close(e.stop)
	<-e.done
	e.db.Close()
	e, _ = OpenEmbedded(dir, log, nil, clk.now)
	defer e.Close()
	if r, _ := e.Show("alice@example.com"); r.Users[0].Messages != 2 {
		t.Fatalf("after crash: %+v", r.Users)
	}
}

func TestEmbeddedDamagedFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, FileName)
	if err := os.WriteFile(path, bytes.Repeat([]byte("not a bbolt file "), 1000), 0o600); err != nil {
		t.Fatal(err)
	}
	log, buf := testLog()
	e, err := OpenEmbedded(dir, log, nil, (&clock{t: t0}).now)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if !strings.Contains(buf.String(), "state file is damaged: every relay counter it held is lost") {
		t.Errorf("log: %s", buf)
	}
	aside, _ := filepath.Glob(path + ".damaged-*")
	if len(aside) != 1 {
		t.Errorf("damaged file not kept aside: %v", aside)
	}
	sendN(t, e, "alice@example.com", 1, "a") // counting works
	if e.db == nil {
		t.Error("no new state file")
	}
}

func TestEmbeddedDamagedRecord(t *testing.T) {
	dir := t.TempDir()
	clk := &clock{t: t0}
	log, buf := testLog()
	e, _ := OpenEmbedded(dir, log, nil, clk.now)
	sendN(t, e, "alice@example.com", 2, "a")
	sendN(t, e, "bob@example.com", 2, "b")
	e.Close()
	db, err := bolt.Open(filepath.Join(dir, FileName), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketUsers).Put([]byte("bob@example.com"), []byte{1, 200, 1})
	})
	db.Close()
	e, _ = OpenEmbedded(dir, log, nil, clk.now)
	defer e.Close()
	r, _ := e.Show("")
	if len(r.Users) != 1 || r.Users[0].User != "alice@example.com" || r.Users[0].Messages != 2 {
		t.Errorf("after a damaged record: %+v", r.Users)
	}
	if !strings.Contains(buf.String(), "damaged records in the state file") || !strings.Contains(buf.String(), "bob@example.com") {
		t.Errorf("log: %s", buf)
	}
}

func TestEmbeddedUnwritableDir(t *testing.T) {
	// Root may write anywhere: a directory under a plain file cannot be
	// created by anyone.
	f := filepath.Join(t.TempDir(), "file")
	os.WriteFile(f, nil, 0o600)
	log, buf := testLog()
	e, err := OpenEmbedded(filepath.Join(f, "state"), log, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if ex, err := e.Reserve(res("a", "alice@example.com", "x@x.test", msgLim)); ex != rules.NotExceeded || err != nil {
		t.Fatal(ex, err)
	}
	if !strings.Contains(buf.String(), "kept in memory only") {
		t.Errorf("log: %s", buf)
	}
}

func TestCodecRoundTrip(t *testing.T) {
	u := newUser()
	u.msgs.add(100, 3)
	u.msgs.add(160, 1)
	u.rcpts[hashKey("a@x")] = 100
	u.rcpts[hashKey("b@x")] = 160
	got, err := decodeUser(encodeUser(u), 0)
	if err != nil || got.msgs.total != 4 || got.seen.total != 2 || len(got.rcpts) != 2 {
		t.Fatalf("%+v %v", got, err)
	}
	// Everything at or before the cut is dropped.
	got, _ = decodeUser(encodeUser(u), 100)
	if got.msgs.total != 1 || got.seen.total != 1 {
		t.Errorf("after cut: %+v", got)
	}
	for i := range encodeUser(u) {
		if _, err := decodeUser(encodeUser(u)[:i], 0); err == nil {
			t.Errorf("truncated at %d: no error", i)
		}
	}
}

func FuzzDecodeUser(f *testing.F) {
	u := newUser()
	u.msgs.add(100, 3)
	u.rcpts[hashKey("a@x")] = 100
	f.Add(encodeUser(u))
	f.Add([]byte{1, 255, 255, 255, 255, 15})
	f.Fuzz(func(t *testing.T, b []byte) {
		decodeUser(b, 0)
		var o org
		o.day, o.peak = newRing(dayMinutes), newRing(peakSlots)
		decodeOrg(b, &o)
	})
}
