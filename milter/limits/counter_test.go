package limits

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/splitrelay/splitrelay/rules"
)

var t0 = time.Date(2026, 11, 22, 12, 0, 30, 0, time.UTC)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

func res(tx, user, rcpt string, l rules.Limits) rules.Reservation {
	return rules.Reservation{Tx: tx, User: user, Rcpt: rcpt, Limits: l}
}

// TestExactUnderRace: a user at limit-1 gets exactly one more message,
// however many transactions race; a released reservation frees its slot.
func TestExactUnderRace(t *testing.T) {
	clk := &clock{t: t0}
	c := newCounter(clk.now)
	lim := rules.Limits{UserMessagesPerDay: 100}
	for i := range 99 {
		tx := fmt.Sprint("warm", i)
		if ex, _ := c.Reserve(res(tx, "alice@example.com", fmt.Sprintf("r%d@x.test", i), lim)); ex != rules.NotExceeded {
			t.Fatalf("message %d refused: %v", i, ex)
		}
		c.Commit(tx)
	}
	var ok atomic.Int32
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			tx := fmt.Sprint("race", i)
			if ex, _ := c.Reserve(res(tx, "alice@example.com", "z@x.test", lim)); ex == rules.NotExceeded {
				ok.Add(1)
				// A second recipient of the same transaction is the same message.
				if ex, _ := c.Reserve(res(tx, "alice@example.com", "y@x.test", lim)); ex != rules.NotExceeded {
					t.Errorf("second recipient of the winning transaction: %v", ex)
				}
			}
		})
	}
	wg.Wait()
	if ok.Load() != 1 {
		t.Fatalf("%d of 20 racing transactions got through at 99/100, want 1", ok.Load())
	}
	// Release the winner (say, RSET): another may go.
	for i := range 20 {
		c.Release(fmt.Sprint("race", i))
	}
	if ex, _ := c.Reserve(res("again", "alice@example.com", "z@x.test", lim)); ex != rules.NotExceeded {
		t.Fatalf("after release: %v", ex)
	}
	c.Commit("again")
	if ex, _ := c.Reserve(res("over", "alice@example.com", "z@x.test", lim)); ex != rules.UserMessages {
		t.Fatalf("at 100/100: %v, want %v", ex, rules.UserMessages)
	}
	if r := c.report("alice@example.com"); r.Users[0].Messages != 100 || r.Users[0].PendingMessages != 0 {
		t.Errorf("report %+v", r.Users[0])
	}
}

func TestUniqueRecipients(t *testing.T) {
	clk := &clock{t: t0}
	c := newCounter(clk.now)
	lim := rules.Limits{UserRecipientsPerDay: 3}
	send := func(tx string, rcpts ...string) rules.Exceeded {
		for _, r := range rcpts {
			if ex, _ := c.Reserve(res(tx, "alice@example.com", rules.CountKey(r), lim)); ex != rules.NotExceeded {
				c.Release(tx)
				return ex
			}
		}
		c.Commit(tx)
		return rules.NotExceeded
	}
	if ex := send("1", "a@x.test", "B@X.TEST", "a@x.test"); ex != rules.NotExceeded {
		t.Fatal(ex)
	}
	// Case and IDNA fold; the same recipients again cost nothing.
	if ex := send("2", "A@x.test", "b@x.test"); ex != rules.NotExceeded {
		t.Fatal(ex)
	}
	// Two open transactions to the same new recipient count it once.
	if ex, _ := c.Reserve(res("3", "alice@example.com", rules.CountKey("c@bücher.test"), lim)); ex != rules.NotExceeded {
		t.Fatal(ex)
	}
	if ex, _ := c.Reserve(res("4", "alice@example.com", rules.CountKey("c@xn--bcher-kva.test"), lim)); ex != rules.NotExceeded {
		t.Fatal(ex)
	}
	if ex, _ := c.Reserve(res("5", "alice@example.com", "d@x.test", lim)); ex != rules.UserRecipients {
		t.Fatalf("fourth unique recipient: %v", ex)
	}
	c.Commit("3")
	c.Release("4")
	// Subaddresses are distinct recipients.
	if ex := send("6", "a+news@x.test"); ex != rules.UserRecipients {
		t.Fatalf("subaddress: %v", ex)
	}
	if u := c.report("alice@example.com").Users[0]; u.Recipients != 3 || u.PendingRecipients != 0 || u.Messages != 3 {
		t.Errorf("usage %+v", u)
	}
	// 24 hours after the first message, a and b leave the window; c
	// (committed at the same minute) too.
	clk.add(24*time.Hour + time.Minute)
	if ex := send("7", "d@x.test", "e@x.test", "f@x.test"); ex != rules.NotExceeded {
		t.Fatalf("after 24h: %v", ex)
	}
}

func TestOrgWindows(t *testing.T) {
	clk := &clock{t: t0}
	c := newCounter(clk.now)
	lim := rules.Limits{OrgRecipientsPerDay: 10, OrgRecipientsPer10Minutes: 4}
	for i := range 4 {
		if ex, _ := c.Reserve(res("a", "", fmt.Sprintf("%d@x.test", i), lim)); ex != rules.NotExceeded {
			t.Fatal(i, ex)
		}
	}
	if ex, _ := c.Reserve(res("b", "", "z@x.test", lim)); ex != rules.OrgPeak {
		t.Fatalf("5th pending recipient: %v", ex)
	}
	c.Commit("a")
	clk.add(10*time.Minute + 10*time.Second)
	for i := range 4 {
		if ex, _ := c.Reserve(res("c", "", fmt.Sprintf("%d@x.test", i), lim)); ex != rules.NotExceeded {
			t.Fatal(i, ex)
		}
	}
	c.Commit("c")
	clk.add(10*time.Minute + 10*time.Second)
	for i := range 2 {
		if ex, _ := c.Reserve(res("d", "", fmt.Sprintf("%d@x.test", i), lim)); ex != rules.NotExceeded {
			t.Fatal(i, ex)
		}
	}
	if ex, _ := c.Reserve(res("d", "", "z@x.test", lim)); ex != rules.OrgDay {
		t.Fatalf("11th recipient of the day: %v", ex)
	}
	c.Release("d")
	if r := c.report(""); r.Org.Day != 8 || r.Org.TenMinutes != 0 || r.Org.Pending != 0 {
		t.Errorf("org %+v", r.Org)
	}
}

func TestSweepAndReset(t *testing.T) {
	clk := &clock{t: t0}
	c := newCounter(clk.now)
	lim := rules.Limits{UserMessagesPerDay: 1}
	c.Reserve(res("lost", "alice@example.com", "a@x.test", lim))
	if ex, _ := c.Reserve(res("b", "alice@example.com", "a@x.test", lim)); ex != rules.UserMessages {
		t.Fatal(ex)
	}
	clk.add(txTimeout + time.Second)
	if n := c.sweep(); n != 1 {
		t.Fatalf("swept %d transactions", n)
	}
	if len(c.users) != 0 {
		t.Errorf("users left after sweep: %d", len(c.users))
	}
	c.Reserve(res("c", "alice@example.com", "a@x.test", lim))
	c.Commit("c")
	if ex, _ := c.Reserve(res("d", "alice@example.com", "a@x.test", lim)); ex != rules.UserMessages {
		t.Fatal(ex)
	}
	if !c.reset("alice@example.com") {
		t.Fatal("reset found nothing")
	}
	if ex, _ := c.Reserve(res("e", "alice@example.com", "a@x.test", lim)); ex != rules.NotExceeded {
		t.Fatalf("after reset: %v", ex)
	}
}

// TestClockStepsBack: a clock stepped back keeps the windows consistent.
func TestClockStepsBack(t *testing.T) {
	clk := &clock{t: t0}
	c := newCounter(clk.now)
	lim := rules.Limits{UserMessagesPerDay: 3, UserRecipientsPerDay: 3, OrgRecipientsPerDay: 10}
	send := func(tx, rcpt string) rules.Exceeded {
		ex, _ := c.Reserve(res(tx, "alice@example.com", rcpt, lim))
		if ex == rules.NotExceeded {
			c.Commit(tx)
		} else {
			c.Release(tx)
		}
		return ex
	}
	send("1", "a@x.test")
	clk.add(-10 * time.Minute)
	send("2", "b@x.test")
	send("3", "a@x.test")
	if ex := send("4", "c@x.test"); ex != rules.UserMessages {
		t.Fatalf("4th message: %v", ex)
	}
	u := c.users["alice@example.com"]
	if u.msgs.total != 3 || u.seen.total != 2 || len(u.msgs.b) != 1 {
		t.Errorf("buckets %+v seen %+v", u.msgs, u.seen)
	}
	clk.add(24*time.Hour + 11*time.Minute)
	if ex := send("5", "c@x.test"); ex != rules.NotExceeded {
		t.Fatalf("a day later: %v", ex)
	}
}
