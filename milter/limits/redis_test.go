package limits

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/splitrelay/splitrelay/milter/postfixtest"
	"github.com/splitrelay/splitrelay/rules"
)

type fakeObs struct {
	mu       sync.Mutex
	fallback bool
	errs     int
}

func (o *fakeObs) StoreOp(_, _ string, _ time.Duration, err bool) {
	if err {
		o.mu.Lock()
		o.errs++
		o.mu.Unlock()
	}
}
func (o *fakeObs) Fallback(a bool) { o.mu.Lock(); o.fallback = a; o.mu.Unlock() }

// active reports the fallback gauge (set by the store's watcher too, in
// a goroutine of its own).
func (o *fakeObs) active() bool { o.mu.Lock(); defer o.mu.Unlock(); return o.fallback }

func openRedis(t *testing.T, url, policy string, clk *clock) (*Redis, *logBuf, *fakeObs) {
	t.Helper()
	return openRedisIn(t, t.TempDir(), url, policy, clk)
}

// openRedisIn opens a Redis store whose local fallback is in dir.
func openRedisIn(t *testing.T, dir, url, policy string, clk *clock) (*Redis, *logBuf, *fakeObs) {
	t.Helper()
	log, buf := testLog()
	obs := &fakeObs{}
	r, err := OpenRedis(rules.State{Dir: dir, Redis: url, RedisUnavailable: policy}, log, obs, clk.now)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r, buf, obs
}

// TestRedisTwoGateways: two stores ("gateways") on one Redis enforce one
// limit, exactly, with 20 transactions racing across them.
func TestRedisTwoGateways(t *testing.T) {
	srv := postfixtest.StartRedis(t)
	clk := &clock{t: time.Now()}
	a, _, _ := openRedis(t, srv.URL(), "tempfail", clk)
	b, _, _ := openRedis(t, srv.URL(), "tempfail", clk)
	lim := rules.Limits{UserMessagesPerDay: 10, UserRecipientsPerDay: 100, OrgRecipientsPerDay: 1000, OrgRecipientsPer10Minutes: 1000}
	for i := range 9 {
		g := []*Redis{a, b}[i%2]
		tx := fmt.Sprint("warm", i)
		if ex, err := g.Reserve(res(tx, "alice@example.com", fmt.Sprintf("r%d@x.test", i), lim)); ex != rules.NotExceeded || err != nil {
			t.Fatal(i, ex, err)
		}
		if err := g.Commit(tx); err != nil {
			t.Fatal(err)
		}
	}
	var won atomic.Int32
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			g := []*Redis{a, b}[i%2]
			tx := fmt.Sprint("race", i)
			ex, err := g.Reserve(res(tx, "alice@example.com", "z@x.test", lim))
			if err != nil {
				t.Error(err)
			}
			if ex == rules.NotExceeded {
				won.Add(1)
				g.Commit(tx)
			} else {
				g.Release(tx)
			}
		})
	}
	wg.Wait()
	if won.Load() != 1 {
		t.Fatalf("%d of 20 racing transactions got through at 9/10, want 1", won.Load())
	}
	rep, err := b.Show("alice@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Users) != 1 || rep.Users[0].Messages != 10 || rep.Users[0].Recipients != 10 || rep.Users[0].PendingMessages != 0 || rep.Org.Day != 10 || rep.Org.Pending != 0 {
		t.Fatalf("show: %+v", rep)
	}
	// Reset on one gateway unblocks the user on both.
	if ex, _ := a.Reserve(res("x", "alice@example.com", "z@x.test", lim)); ex != rules.UserMessages {
		t.Fatalf("at 10/10: %v", ex)
	}
	if had, err := b.Reset("alice@example.com"); !had || err != nil {
		t.Fatal(had, err)
	}
	if ex, _ := a.Reserve(res("y", "alice@example.com", "z@x.test", lim)); ex != rules.NotExceeded {
		t.Fatalf("after reset: %v", ex)
	}
	a.Release("y")
}

func TestRedisUniqueAndOrg(t *testing.T) {
	srv := postfixtest.StartRedis(t)
	clk := &clock{t: time.Now()}
	r, _, _ := openRedis(t, srv.URL(), "tempfail", clk)
	lim := rules.Limits{UserRecipientsPerDay: 3, OrgRecipientsPer10Minutes: 6}
	must := func(tx, rcpt string, want rules.Exceeded) {
		t.Helper()
		if ex, err := r.Reserve(res(tx, "alice@example.com", rcpt, lim)); ex != want || err != nil {
			t.Fatalf("%s %s: %v %v, want %v", tx, rcpt, ex, err, want)
		}
	}
	must("1", "a@x.test", rules.NotExceeded)
	must("1", "b@x.test", rules.NotExceeded)
	must("1", "a@x.test", rules.NotExceeded) // twice in one transaction: once
	r.Commit("1")
	must("2", "c@x.test", rules.NotExceeded)
	must("3", "c@x.test", rules.NotExceeded) // pending in two transactions: one unique
	must("4", "d@x.test", rules.UserRecipients)
	r.Release("4")
	r.Commit("2")
	r.Release("3")
	must("5", "a@x.test", rules.NotExceeded) // already counted
	r.Commit("5")
	rep, _ := r.Show("alice@example.com")
	if u := rep.Users[0]; u.Recipients != 3 || u.Messages != 3 || u.PendingRecipients != 0 {
		t.Errorf("usage %+v", u)
	}
	// Organisation: 4 committed (1: a, b; 2: c; 5: a); peak 6.
	must("6", "e@x.test", rules.UserRecipients)
	r.Release("6")
	for i := range 2 {
		if ex, _ := r.Reserve(res("7", "", fmt.Sprintf("o%d@x.test", i), lim)); ex != rules.NotExceeded {
			t.Fatal(i, ex)
		}
	}
	if ex, _ := r.Reserve(res("7", "", "o9@x.test", lim)); ex != rules.OrgPeak {
		t.Fatalf("7th recipient in 10 minutes: %v", ex)
	}
	r.Commit("7")
	// Eleven minutes later the peak window is empty again; 25 hours
	// later the user's window too.
	clk.add(11 * time.Minute)
	if ex, _ := r.Reserve(res("8", "", "o9@x.test", lim)); ex != rules.NotExceeded {
		t.Fatalf("after 11 minutes: %v", ex)
	}
	r.Release("8")
	clk.add(25 * time.Hour)
	must("9", "f@x.test", rules.NotExceeded)
	must("9", "g@x.test", rules.NotExceeded)
	must("9", "h@x.test", rules.NotExceeded)
	r.Release("9")
	if rep, _ := r.Show(""); rep.Org.Day != 0 || len(rep.Users) != 0 {
		t.Errorf("after 25 hours: %+v", rep)
	}
	// Every key expires by itself, within a day and 10 minutes.
	ctx := t.Context()
	keys, err := r.rdb.Keys(ctx, "*").Result()
	if err != nil || len(keys) == 0 {
		t.Fatalf("keys: %v %v", keys, err)
	}
	for _, k := range keys {
		if !strings.HasPrefix(k, KeyPrefix+":") {
			t.Errorf("key %q outside %s", k, KeyPrefix)
		}
		ttl, err := r.rdb.PTTL(ctx, k).Result()
		if err != nil || ttl <= 0 || ttl > 24*time.Hour+10*time.Minute {
			t.Errorf("key %q: TTL %v %v", k, ttl, err)
		}
	}
}

// TestRedisDeadGateway: reservations of a gateway that died are released
// after the transaction deadline.
func TestRedisDeadGateway(t *testing.T) {
	srv := postfixtest.StartRedis(t)
	clk := &clock{t: time.Now()}
	r, _, _ := openRedis(t, srv.URL(), "tempfail", clk)
	lim := rules.Limits{UserMessagesPerDay: 1}
	r.Reserve(res("dead", "alice@example.com", "a@x.test", lim))
	if ex, _ := r.Reserve(res("b", "alice@example.com", "a@x.test", lim)); ex != rules.UserMessages {
		t.Fatal(ex)
	}
	clk.add(txTimeout + time.Minute)
	if ex, _ := r.Reserve(res("c", "alice@example.com", "a@x.test", lim)); ex != rules.NotExceeded {
		t.Fatalf("after the deadline: %v", ex)
	}
}

// TestRedisDown: tempfail gives an error (the rules defer the recipient);
// local counts alone; both come back by themselves when Redis does, and
// what local counted meanwhile is pushed to Redis.
func TestRedisDown(t *testing.T) {
	srv := postfixtest.StartRedis(t)
	clk := &clock{t: time.Now()}
	tf, tfLog, _ := openRedis(t, srv.URL(), "tempfail", clk)
	lo, loLog, obs := openRedis(t, srv.URL(), "local", clk)
	lim := rules.Limits{UserMessagesPerDay: 2}
	for _, s := range []*Redis{tf, lo} {
		if ex, err := s.Reserve(res("up", "alice@example.com", "a@x.test", lim)); ex != rules.NotExceeded || err != nil {
			t.Fatal(ex, err)
		}
		s.Commit("up")
	}
	srv.Stop(t)
	if _, err := tf.Reserve(res("t1", "alice@example.com", "a@x.test", lim)); err == nil {
		t.Fatal("tempfail: no error with Redis down")
	}
	if !strings.Contains(tfLog.String(), "redis unavailable: relay recipients are deferred") {
		t.Errorf("tempfail log: %s", tfLog)
	}
	// Local: this gateway alone, from zero: 2 messages, not 1 more.
	for i := range 2 {
		tx := fmt.Sprint("l", i)
		if ex, err := lo.Reserve(res(tx, "alice@example.com", "a@x.test", lim)); ex != rules.NotExceeded || err != nil {
			t.Fatal(i, ex, err)
		}
		lo.Commit(tx)
	}
	if ex, _ := lo.Reserve(res("l2", "alice@example.com", "a@x.test", lim)); ex != rules.UserMessages {
		t.Fatalf("local limit: %v", ex)
	}
	lo.Release("l2")
	if !strings.Contains(loLog.String(), "redis unavailable: counting relay limits locally") || !obs.active() {
		t.Errorf("local: fallback %v, log: %s", obs.active(), loLog)
	}
	// Redis comes back (empty: this server keeps nothing across
	// restarts); local pushes its 2 messages (l0, l1) by itself.
	srv.Start(t)
	waitPushed(t, lo)
	if obs.active() {
		t.Error("fallback still active")
	}
	time.Sleep(retryAfter + 100*time.Millisecond) // tf tries Redis again
	lim.UserMessagesPerDay = 3
	want := []rules.Exceeded{rules.NotExceeded, rules.UserMessages}
	for i, s := range []*Redis{tf, lo} {
		tx := fmt.Sprint("back", i)
		if ex, err := s.Reserve(res(tx, "alice@example.com", "a@x.test", lim)); ex != want[i] || err != nil {
			t.Fatalf("after Redis is back, message %d of 3: %v %v, want %v", 3+i, ex, err, want[i])
		}
		s.Commit(tx)
	}
	rep, _ := lo.Show("alice@example.com")
	if rep.Users[0].Messages != 3 {
		t.Errorf("shared count after restart: %+v", rep.Users)
	}
}

func TestRedisURLs(t *testing.T) {
	for _, tt := range []struct{ url, want string }{
		{"redis://127.0.0.1:6379/0", "redis 127.0.0.1:6379"},
		{"rediss://:pw@gw-redis.example:6380/2", "redis gw-redis.example:6380"},
		{"redis://s1.example:26379?master_name=relay&addr=s2.example:26379", "sentinel s1.example:26379 master relay"},
		{"redis://n1.example:6379?addr=n2.example:6379&addr=n3.example:6379", "cluster [n1.example:6379 n2.example:6379 n3.example:6379]"},
	} {
		c, where, err := NewRedisClient(tt.url)
		if err != nil || where != tt.want {
			t.Errorf("%s: %q %v, want %q", tt.url, where, err, tt.want)
			continue
		}
		c.Close()
	}
	if _, _, err := NewRedisClient("redis://h:6379/0?bogus=1"); err == nil {
		t.Error("unknown parameter accepted")
	}
}
