package limits

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/splitrelay/splitrelay/milter/postfixtest"
	"github.com/splitrelay/splitrelay/rules"
)

// Google's default limits.
// Google's per-user limits; organisation limits that 100k users' history
// does not reach (they are checked all the same).
var defaultLimits = rules.Limits{
	RecipientsPerMessage: 100, UserMessagesPerDay: 10000, UserRecipientsPerDay: 10000,
	OrgRecipientsPerDay: 1e9, OrgRecipientsPer10Minutes: 1e9,
}

const activeUsers = 100_000

// populate gives each of n users one committed message to rcpts unique
// recipients.
func populate(s Store, n, rcpts int) {
	for u := range n {
		user := fmt.Sprintf("user%d@example.com", u)
		tx := fmt.Sprint("p", u)
		for r := range rcpts {
			s.Reserve(res(tx, user, fmt.Sprintf("r%d.%d@x.test", u, r), rules.Limits{}))
		}
		s.Commit(tx)
	}
}

// BenchmarkReserveEmbedded is the RCPT TO time cost of the limit check with
// the embedded store: one reservation (check and reserve) for one of 100k
// active users, and its release.
func BenchmarkReserveEmbedded(b *testing.B) {
	log, _ := testLog()
	e, err := OpenEmbedded(b.TempDir(), log, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	populate(e, activeUsers, 5)
	e.flush()
	rcpts := make([]string, 1024)
	for i := range rcpts {
		rcpts[i] = rules.CountKey(fmt.Sprintf("new%d@x.test", i))
	}
	b.ResetTimer()
	for i := range b.N {
		tx := fmt.Sprint("b", i)
		if ex, err := e.Reserve(res(tx, fmt.Sprintf("user%d@example.com", i%activeUsers), rcpts[i%len(rcpts)], defaultLimits)); ex != rules.NotExceeded || err != nil {
			b.Fatal(ex, err)
		}
		e.Release(tx)
	}
}

// BenchmarkReserveRedis is the same against a redis-server on loopback
// (one Lua script per recipient; the release is another round trip).
func BenchmarkReserveRedis(b *testing.B) {
	srv := postfixtest.StartRedis(b)
	log, _ := testLog()
	r, err := OpenRedis(rules.State{Dir: b.TempDir(), Redis: srv.URL(), RedisUnavailable: "tempfail"}, log, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	populate(r, 10_000, 5) // 100k users take minutes to load over the loopback
	b.ResetTimer()
	for i := range b.N {
		tx := fmt.Sprint("b", i)
		if ex, err := r.Reserve(res(tx, fmt.Sprintf("user%d@example.com", i%10_000), fmt.Sprintf("new%d@x.test", i%1024), defaultLimits)); ex != rules.NotExceeded || err != nil {
			b.Fatal(ex, err)
		}
		b.StopTimer()
		r.Release(tx)
		b.StartTimer()
	}
}

// BenchmarkCommitEmbedded is the end-of-message cost: a message of 5
// recipients reserved and committed.
func BenchmarkCommitEmbedded(b *testing.B) {
	c := newCounter(time.Now)
	populate(&Memory{c: c}, activeUsers, 5)
	b.ResetTimer()
	for i := range b.N {
		tx := fmt.Sprint("b", i)
		user := fmt.Sprintf("user%d@example.com", i%activeUsers)
		for r := range 5 {
			c.Reserve(res(tx, user, fmt.Sprintf("c%d@x.test", r), defaultLimits))
		}
		c.Commit(tx)
	}
}

// BenchmarkMemory measures the heap of the embedded counters at 100k
// active users: bytes per tracked user (with one message) and per unique
// recipient, reported as metrics.
func BenchmarkMemory(b *testing.B) {
	heap := func(rcpts int) (uint64, *counter) {
		runtime.GC()
		var m0, m1 runtime.MemStats
		runtime.ReadMemStats(&m0)
		c := newCounter(time.Now)
		populate(&Memory{c: c}, activeUsers, rcpts)
		c.txs = map[string]*tx{} // the committed transactions' map shrinks over time
		runtime.GC()
		runtime.ReadMemStats(&m1)
		return m1.HeapAlloc - m0.HeapAlloc, c
	}
	for range b.N {
		one, c1 := heap(1)
		many, c2 := heap(21)
		perRcpt := float64(many-one) / float64(activeUsers*20)
		perUser := float64(one)/activeUsers - perRcpt
		b.ReportMetric(perUser, "bytes/user")
		b.ReportMetric(perRcpt, "bytes/rcpt")
		b.ReportMetric(float64(many)/(1<<20), "MiB/100k-users-21-rcpts")
		runtime.KeepAlive(c1)
		runtime.KeepAlive(c2)
	}
}

// BenchmarkRedisPing is the loopback round trip alone, to read
// BenchmarkReserveRedis against.
func BenchmarkRedisPing(b *testing.B) {
	srv := postfixtest.StartRedis(b)
	c, _, err := NewRedisClient(srv.URL())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	ctx := b.Context()
	for range b.N {
		if err := c.Ping(ctx).Err(); err != nil {
			b.Fatal(err)
		}
	}
}
