package limits

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/splitrelay/splitrelay/milter/postfixtest"
	"github.com/splitrelay/splitrelay/rules"
)

const alice = "alice@example.com"

var fleetLim = rules.Limits{UserMessagesPerDay: 3, UserRecipientsPerDay: 10, OrgRecipientsPerDay: 100, OrgRecipientsPer10Minutes: 100}

// relay reserves rcpts for user in transaction tx and commits it.
func relay(t *testing.T, s Store, tx, user string, rcpts ...string) {
	t.Helper()
	for _, rc := range rcpts {
		if ex, err := s.Reserve(res(tx, user, rc, fleetLim)); ex != rules.NotExceeded || err != nil {
			t.Fatalf("%s %s: %v %v", tx, rc, ex, err)
		}
	}
	if err := s.Commit(tx); err != nil {
		t.Fatalf("commit %s: %v", tx, err)
	}
}

// waitPushed waits until r has pushed every note of the outage (Redis
// being back, its watcher notices within retryAfter).
func waitPushed(t *testing.T, r *Redis) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for r.local.c.journalLen.Load() > 0 || r.pushing.Load() {
		if time.Now().After(deadline) {
			t.Fatalf("outage notes not pushed after 10s: %d left", r.local.c.journalLen.Load())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// notesInFile counts the outage notes in a closed state file.
func notesInFile(t *testing.T, dir string) int {
	t.Helper()
	db, err := bolt.Open(filepath.Join(dir, FileName), 0o600, &bolt.Options{Timeout: time.Second, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	n := 0
	db.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucketOutage); b != nil {
			n = b.Stats().KeyN
		}
		return nil
	})
	return n
}

// TestRedisOutagePushed: two gateways share Redis; while it is down A
// relays alone; when it is back, A pushes that usage by itself (no mail
// through A needed) and B refuses the user A took to the limit.
func TestRedisOutagePushed(t *testing.T) {
	srv := postfixtest.StartRedis(t, "--appendonly", "yes") // keeps what B counted across the outage
	clk := &clock{t: time.Now()}
	a, aLog, _ := openRedis(t, srv.URL(), "local", clk)
	b, _, _ := openRedis(t, srv.URL(), "tempfail", clk)
	relay(t, b, "b0", alice, "a@x.test")

	srv.Stop(t)
	// A alone: alice's local count starts at 0 and allows her 2 more
	// messages (3 would be allowed); a@x.test is already counted in
	// Redis, b@ and c@ are new; one transaction of no registered user.
	relay(t, a, "a0", alice, "a@x.test", "b@x.test")
	relay(t, a, "a1", alice, "c@x.test")
	relay(t, a, "a2", "", "o1@x.test", "o2@x.test")
	if _, err := b.Reserve(res("b1", alice, "d@x.test", fleetLim)); err == nil {
		t.Fatal("B reserved with Redis down")
	}

	srv.Start(t)
	waitPushed(t, a)
	rep, err := b.Show(alice)
	if err != nil {
		t.Fatal(err)
	}
	if u := rep.Users[0]; len(rep.Users) != 1 || u.Messages != 3 || u.Recipients != 3 {
		t.Errorf("alice in Redis: %+v, want 3 messages, 3 recipients", rep.Users)
	}
	if rep.Org.Day != 6 || rep.Org.TenMinutes != 6 {
		t.Errorf("organisation in Redis: %+v, want 6 in both windows (1 before, 5 during the outage)", rep.Org)
	}
	time.Sleep(retryAfter + 100*time.Millisecond) // B tries Redis again
	if ex, err := b.Reserve(res("b2", alice, "d@x.test", fleetLim)); ex != rules.UserMessages || err != nil {
		t.Errorf("B after the outage, alice at 3 of 3: %v %v, want %v", ex, err, rules.UserMessages)
	}
	b.Release("b2")
	if ex, _ := a.Reserve(res("a3", alice, "d@x.test", fleetLim)); ex != rules.UserMessages {
		t.Errorf("A after the outage: %v", ex)
	}
	a.Release("a3")
	log := aLog.String()
	if n := strings.Count(log, "pushed the relay usage counted locally during the outage to redis"); n != 1 {
		t.Errorf("push logged %d times, want once:\n%s", n, log)
	}
	for _, kv := range []string{"transactions=3", "messages=2", "recipients=2", "org_recipients=5", "already_pushed=0"} {
		if !strings.Contains(log, kv) {
			t.Errorf("push log lacks %s:\n%s", kv, log)
		}
	}
}

// TestRedisOutagePushTwice: a gateway that restarts with notes it had
// already pushed (a crash before it forgot them) pushes them again
// without counting anything twice; the notes survive a restart during
// the outage.
func TestRedisOutagePushTwice(t *testing.T) {
	srv := postfixtest.StartRedis(t)
	clk := &clock{t: time.Now()}
	dir := t.TempDir()
	a, _, _ := openRedisIn(t, dir, srv.URL(), "local", clk)
	srv.Stop(t)
	relay(t, a, "a0", alice, "a@x.test", "b@x.test")
	relay(t, a, "a1", alice, "a@x.test")
	relay(t, a, "a2", "", "o@x.test")
	a.Close() // a restart during the outage
	if n := notesInFile(t, dir); n != 3 {
		t.Fatalf("%d notes in the state file, want 3", n)
	}
	saved, err := os.ReadFile(filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}

	srv.Start(t)
	check := func(when string) {
		t.Helper()
		rep, err := a.Show(alice)
		if err != nil {
			t.Fatal(err)
		}
		if len(rep.Users) != 1 || rep.Users[0].Messages != 2 || rep.Users[0].Recipients != 2 || rep.Org.Day != 4 || rep.Org.TenMinutes != 4 {
			t.Errorf("%s: %+v, want alice at 2 messages, 2 recipients, organisation 4", when, rep)
		}
	}
	for i, want := range []string{"transactions=3", "already_pushed=3"} {
		if i == 1 {
			// The crash: the file as it was before the push.
			if err := os.WriteFile(filepath.Join(dir, FileName), saved, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		var log *logBuf
		a, log, _ = openRedisIn(t, dir, srv.URL(), "local", clk) // pushes at start
		waitPushed(t, a)
		if !strings.Contains(log.String(), want) {
			t.Errorf("push %d: log lacks %s:\n%s", i+1, want, log)
		}
		check(fmt.Sprintf("after push %d", i+1))
		a.Close()
		if n := notesInFile(t, dir); n != 0 {
			t.Errorf("push %d: %d notes left in the state file", i+1, n)
		}
	}
}

// TestRedisOutageWindows: the outage's usage counts at the time it was
// counted, so what left a window by the time Redis is back is not added
// to it.
func TestRedisOutageWindows(t *testing.T) {
	srv := postfixtest.StartRedis(t)
	for _, tt := range []struct {
		name            string
		later           time.Duration // from the outage's mail to Redis being back
		msgs, day, peak int
	}{
		{"at once", 0, 2, 3, 3},
		{"after 11 minutes", 11 * time.Minute, 2, 3, 0},
		{"after 23 hours", 23 * time.Hour, 2, 3, 0},
		{"after 25 hours", 25 * time.Hour, 0, 0, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv.Start(t)
			clk := &clock{t: time.Now()}
			a, _, _ := openRedis(t, srv.URL(), "local", clk)
			srv.Stop(t) // empties it too (no persistence): each subtest starts from zero
			relay(t, a, "a0", alice, "a@x.test", "b@x.test")
			relay(t, a, "a1", alice, "c@x.test")
			clk.add(tt.later)
			srv.Start(t)
			waitPushed(t, a)
			rep, err := a.Show(alice)
			if err != nil {
				t.Fatal(err)
			}
			msgs := 0
			if len(rep.Users) == 1 {
				msgs = rep.Users[0].Messages
			}
			if msgs != tt.msgs || rep.Org.Day != tt.day || rep.Org.TenMinutes != tt.peak {
				t.Errorf("messages %d, organisation %d / %d; want %d, %d / %d", msgs, rep.Org.Day, rep.Org.TenMinutes, tt.msgs, tt.day, tt.peak)
			}
		})
	}
}

// TestOutageCodec: a note survives its encoding; damaged ones are errors.
func TestOutageCodec(t *testing.T) {
	for _, o := range []*outage{
		{user: alice, ms: 1700000000123, rcpts: []uint64{1, 1 << 63}, org: 2},
		{ms: 1, org: 5},
	} {
		b := encodeOutage(o)
		got, err := decodeOutage(b)
		if err != nil || got.user != o.user || got.ms != o.ms || got.org != o.org || fmt.Sprint(got.rcpts) != fmt.Sprint(o.rcpts) {
			t.Errorf("%+v: %+v %v", o, got, err)
		}
		for i := range len(b) - 1 {
			if _, err := decodeOutage(b[:i]); err == nil {
				t.Errorf("%+v cut at %d: no error", o, i)
			}
		}
	}
}

// TestOutageJournal: the local fallback notes what it commits, keeps the
// notes across a restart, forgets a reset user's and, after a day, every
// note; a store without Redis leaves the notes in the file alone.
func TestOutageJournal(t *testing.T) {
	dir := t.TempDir()
	clk := &clock{t: t0}
	log, _ := testLog()
	open := func(journal bool) *Embedded {
		t.Helper()
		e, err := openEmbedded(dir, log, nil, clk.now, journal)
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	e := open(true)
	sendN(t, e, alice, 2, "a")
	sendN(t, e, "bob@example.com", 1, "b")
	e.Close()
	plain := open(false) // the embedded store alone: no notes
	if n := plain.c.journalLen.Load(); n != 0 || plain.c.journal != nil {
		t.Errorf("plain store loaded %d notes", n)
	}
	sendN(t, plain, alice, 1, "p")
	plain.Close()
	if n := notesInFile(t, dir); n != 3 {
		t.Fatalf("%d notes in the file after the plain store, want 3 left alone", n)
	}
	e = open(true)
	defer e.Close()
	for _, step := range []struct {
		name string
		do   func()
		want int
	}{
		{"reopened", func() {}, 3},
		{"alice reset", func() { e.Reset(alice) }, 1},
		{"a day later", func() { clk.add(24*time.Hour + time.Minute); e.c.sweep() }, 0},
	} {
		step.do()
		if n := e.c.journalLen.Load(); n != int64(step.want) || len(e.c.journal) != step.want {
			t.Errorf("%s: %d notes, want %d", step.name, n, step.want)
		}
	}
	e.Close()
	if n := notesInFile(t, dir); n != 0 {
		t.Errorf("%d notes left in the file", n)
	}
}
