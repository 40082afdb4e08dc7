package e2e

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/splitrelay/splitrelay/milter/postfixtest"
)

// The relay limits end to end: the per-user message limit is exact under
// racing sessions, survives a restart and a kill -9, is shared by two
// gateways through one Redis, behaves as configured when Redis is down,
// and `splitrelay limits reset` unblocks a user.

const limitsBase = relayBase + `
[relay]
allowed_senders = "registered_users"
require_network = true
networks = [{ cidr = "127.0.0.2", description = "app server", enabled = true }]
[relay.limits]
user_messages_per_day = %d
`

// relayOne sends one message from the allowed network and returns the
// reply to its RCPT TO.
func (s *site) relayOne(from, to string) string {
	s.t.Helper()
	tr, _ := s.pf.Send(s.t, postfixtest.Mail{Source: "127.0.0.2", Helo: "app.example.com", From: from, To: []string{to}})
	return rcptReply(tr, to)
}

// mustRelay requires a message to be accepted.
func (s *site) mustRelay(from, to string) {
	s.t.Helper()
	if r := s.relayOne(from, to); !strings.HasPrefix(r, "250") {
		s.t.Fatalf("RCPT TO:<%s> from %s: %q, want 250", to, from, r)
	}
}

// mustRefuse requires the recipient to get a reply starting with want.
func (s *site) mustRefuse(from, to, want string) {
	s.t.Helper()
	if r := s.relayOne(from, to); !strings.HasPrefix(r, want) {
		s.t.Fatalf("RCPT TO:<%s> from %s: %q, want %q", to, from, r, want)
	}
}

// limits runs `splitrelay limits -c CONFIG ARGS...`.
func (s *site) limits(args ...string) string {
	s.t.Helper()
	out, err := exec.Command(s.bin, append([]string{"limits", "-c", s.cfgPath}, args...)...).CombinedOutput()
	if err != nil {
		s.t.Fatalf("splitrelay limits %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// session is an SMTP session from the allowed network held open between
// RCPT TO and DATA.
func openSession(t *testing.T, addr, from, to string) (*smtp.Client, error) {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}, Timeout: 10 * time.Second}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	conn.SetDeadline(time.Now().Add(60 * time.Second))
	c := smtp.NewClient(conn)
	if err := c.Hello("app.example.com"); err != nil {
		c.Close()
		return nil, err
	}
	if err := c.Mail(from, nil); err != nil {
		c.Close()
		return nil, err
	}
	if err := c.Rcpt(to, nil); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

func sendData(c *smtp.Client, subject string) error {
	w, err := c.Data()
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "From: alice@example.com\r\nSubject: %s\r\n\r\nrace\r\n", subject)
	if err := w.Close(); err != nil {
		return err
	}
	return c.Quit()
}

// TestE2ELimitsExactUnderRace: alice at 4 of 5 messages; a transaction
// that reserves and then resets gives its slot back; then 20 sessions race
// to RCPT TO, all held open until every one has its reply, and exactly one
// gets through.
func TestE2ELimitsExactUnderRace(t *testing.T) {
	s := newSite(t, nil, fmt.Sprintf(limitsBase, 5))
	for i := range 4 {
		s.mustRelay("alice@example.com", fmt.Sprintf("warm%d@elsewhere.test", i))
	}
	// Reserved, then RSET: released.
	c, err := openSession(t, s.pf.Addr(), "alice@example.com", "rset@elsewhere.test")
	if err != nil {
		t.Fatalf("the 5th message is refused at RCPT: %v", err)
	}
	if err := c.Reset(); err != nil {
		t.Fatal(err)
	}
	c.Quit()

	open, refused := race(t, []string{s.pf.Addr()}, 20)
	if len(open) != 1 || refused != 19 {
		t.Fatalf("%d of 20 sessions passed RCPT TO, %d were refused; want exactly 1 and 19", len(open), refused)
	}
	if err := sendData(open[0].c, "the one"); err != nil {
		t.Fatal(err)
	}
	s.landed(map[string][]string{"internet": {
		"warm0@elsewhere.test", "warm1@elsewhere.test", "warm2@elsewhere.test", "warm3@elsewhere.test", open[0].rcpt,
	}})
	s.mustRefuse("alice@example.com", "after@elsewhere.test", "550 5.4.5 Daily SMTP relay limit exceeded for user")
	out := s.limits("show", "alice@example.com")
	if !strings.Contains(out, "alice@example.com") || !regexpFields(out, "alice@example.com", "5") {
		t.Errorf("limits show:\n%s", out)
	}
}

// raced is a session that passed RCPT TO in a race, held before DATA.
type raced struct {
	c    *smtp.Client
	addr string // the Postfix it talks to
	rcpt string
}

// race opens n sessions from alice, spread over the Postfix instances at
// addrs, each with its own relay recipient race<i>@elsewhere.test, all at
// once and held open after RCPT TO until every one has its reply. It
// returns the sessions that passed and how many were refused with the
// per-user limit; any other outcome fails the test.
func race(t *testing.T, addrs []string, n int) (open []raced, refused int) {
	t.Helper()
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		other []error
	)
	for i := range n {
		wg.Go(func() {
			addr, rcpt := addrs[i%len(addrs)], fmt.Sprintf("race%d@elsewhere.test", i)
			c, err := openSession(t, addr, "alice@example.com", rcpt)
			mu.Lock()
			defer mu.Unlock()
			var se *smtp.SMTPError
			switch {
			case err == nil:
				open = append(open, raced{c, addr, rcpt})
			case errors.As(err, &se) && se.Code == 550 && strings.Contains(se.Message, "Daily SMTP relay limit exceeded for user"):
				refused++
			default:
				other = append(other, err)
			}
		})
	}
	wg.Wait()
	if len(other) > 0 {
		t.Fatalf("racing sessions failed otherwise: %v", other)
	}
	return open, refused
}

// regexpFields reports whether a line of out starts with user followed by
// the message count.
func regexpFields(out, user, msgs string) bool {
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == user && f[1] == msgs {
			return true
		}
	}
	return false
}

// TestE2ELimitsDurable: the count survives a clean restart and a kill -9
// (after the one-second flush), and `limits reset` unblocks the user on
// the next message.
func TestE2ELimitsDurable(t *testing.T) {
	addr := fmt.Sprintf("127.0.0.1:%d", postfixtest.FreePort(t))
	s := newSite(t, nil, fmt.Sprintf(limitsBase, 4)+"\n[metrics]\nlisten = \""+addr+"\"\n")
	s.mustRelay("alice@example.com", "a1@elsewhere.test")
	s.mustRelay("alice@example.com", "a2@elsewhere.test")
	// systemctl restart: SIGTERM, start.
	s.d.stop()
	s.d = s.start()
	s.mustRelay("alice@example.com", "a3@elsewhere.test")
	// kill -9 once the flush interval has passed: nothing lost.
	time.Sleep(1500 * time.Millisecond)
	s.d.cmd.Process.Kill()
	<-s.d.done
	s.d = s.start()
	if out := s.limits("show"); !regexpFields(out, "alice@example.com", "3") {
		t.Fatalf("after kill -9, limits show:\n%s", out)
	}
	s.mustRelay("alice@example.com", "a4@elsewhere.test")
	s.mustRefuse("alice@example.com", "a5@elsewhere.test", "550 5.4.5 Daily SMTP relay limit exceeded for user")
	// Another registered user has a count of their own.
	s.mustRelay("app@example.com", "b1@elsewhere.test")
	m := scrape(t, addr)
	want(t, m, `splitrelay_limit_exceeded_total{limit="user_messages_per_day"}`, 1)
	want(t, m, `splitrelay_limit_users_near{limit="user_messages_per_day"}`, 1) // alice at 4/4, app at 1/4
	want(t, m, `splitrelay_limit_org_recipients{window="24h"}`, 5)
	if m.count("splitrelay_limits_store_duration_seconds_bucket{") == 0 {
		t.Error("no store latency series")
	}

	if out := s.limits("reset", "Alice@Example.COM"); !strings.Contains(out, "alice@example.com: counters cleared") {
		t.Errorf("limits reset: %s", out)
	}
	s.mustRelay("alice@example.com", "a6@elsewhere.test")

	// A damaged state file: reported, moved aside, and mail flows.
	s.d.stop()
	db := filepath.Join(s.pf.Dir, "state", "limits.db")
	if err := os.WriteFile(db, bytes.Repeat([]byte("damaged "), 4096), 0o600); err != nil {
		t.Fatal(err)
	}
	s.d = s.start()
	s.d.waitLog(t, 5*time.Second, `msg="state file is damaged: every relay counter it held is lost; counting starts afresh"`, "moved_to="+db+".damaged-")
	s.mustRelay("alice@example.com", "a7@elsewhere.test")
	s.landed(map[string][]string{"internet": {"a1@elsewhere.test", "a2@elsewhere.test", "a3@elsewhere.test",
		"a4@elsewhere.test", "b1@elsewhere.test", "a6@elsewhere.test", "a7@elsewhere.test"}})
}

// TestE2ELimitsFleet: two gateways (two Postfix instances, two daemons)
// share one Redis and enforce ONE per-user limit. Then Redis goes down:
// gateway A (redis_unavailable = tempfail) defers relay recipients with
// 451 4.3.0, gateway B (local) counts alone; Redis comes back (empty: the
// test's server keeps nothing), B pushes what it relayed meanwhile, and
// both share it again without a restart.
func TestE2ELimitsFleet(t *testing.T) {
	postfixtest.Require(t)
	rd := postfixtest.StartRedis(t)
	cfg := fmt.Sprintf(limitsBase, 3) + `
[state]
dir = "{{STATE_DIR}}"
redis = "` + rd.URL() + `"
redis_unavailable = "%s"
`
	a := newSite(t, nil, fmt.Sprintf(cfg, "tempfail"))
	b := newSite(t, nil, fmt.Sprintf(cfg, "local"))
	a.mustRelay("alice@example.com", "f1@elsewhere.test")
	b.mustRelay("alice@example.com", "f2@elsewhere.test")
	a.mustRelay("alice@example.com", "f3@elsewhere.test")
	b.mustRefuse("alice@example.com", "f4@elsewhere.test", "550 5.4.5 Daily SMTP relay limit exceeded for user")
	a.mustRefuse("alice@example.com", "f5@elsewhere.test", "550 5.4.5 Daily SMTP relay limit exceeded for user")
	if out := b.limits("show", "alice@example.com"); !regexpFields(out, "alice@example.com", "3") || !strings.Contains(out, "store: redis 127.0.0.1:") {
		t.Errorf("limits show on b:\n%s", out)
	}
	// A reset through gateway A unblocks alice on gateway B.
	a.limits("reset", "alice@example.com")
	b.mustRelay("alice@example.com", "f6@elsewhere.test")
	// At 2 of 3, 20 sessions race over both gateways: one gets through.
	a.mustRelay("alice@example.com", "f7@elsewhere.test")
	open, refused := race(t, []string{a.pf.Addr(), b.pf.Addr()}, 20)
	if len(open) != 1 || refused != 19 {
		t.Fatalf("%d of 20 sessions over two gateways passed RCPT TO, %d were refused; want exactly 1 and 19", len(open), refused)
	}
	if err := sendData(open[0].c, "the one"); err != nil {
		t.Fatal(err)
	}
	won := map[string][]string{a.pf.Addr(): nil, b.pf.Addr(): nil}
	won[open[0].addr] = []string{open[0].rcpt}

	rd.Stop(t)
	a.mustRefuse("alice@example.com", "down-a@elsewhere.test", "451 4.3.0")
	b.mustRelay("alice@example.com", "down-b@elsewhere.test")
	// Mail to our own domains is never affected.
	a.send(postfixtest.Mail{Source: "127.0.0.9", From: "x@elsewhere.test", To: []string{"alice@example.com"}})
	a.d.waitLog(t, 5*time.Second, `msg="redis unavailable: relay recipients are deferred (451 4.3.0) until it is back"`)
	b.d.waitLog(t, 5*time.Second, `msg="redis unavailable: counting relay limits locally, this gateway alone, until it is back"`)
	if strings.Contains(b.d.logs(), "not counted") {
		t.Errorf("gateway b lost a count while counting locally:\n%s", b.d.logs())
	}

	rd.Start(t)
	// B pushes what it relayed alone (down-b) to Redis by itself: alice
	// is at 1 of 3 in the (emptied) Redis.
	b.d.waitLog(t, 5*time.Second, `msg="pushed the relay usage counted locally during the outage to redis"`, "messages=1")
	time.Sleep(1500 * time.Millisecond) // the store retries Redis after a second
	a.mustRelay("alice@example.com", "back-a@elsewhere.test")
	b.mustRelay("alice@example.com", "back-b@elsewhere.test")
	a.d.waitLog(t, 5*time.Second, `msg="redis is back: relay limits are shared again"`)
	a.mustRefuse("alice@example.com", "back-c@elsewhere.test", "550 5.4.5")
	b.mustRefuse("alice@example.com", "back-d@elsewhere.test", "550 5.4.5")
	a.landed(map[string][]string{"internet": append([]string{"f1@elsewhere.test", "f3@elsewhere.test", "f7@elsewhere.test",
		"back-a@elsewhere.test"}, won[a.pf.Addr()]...), "gmail": {"alice@example.com"}})
	b.landed(map[string][]string{"internet": append([]string{"f2@elsewhere.test", "f6@elsewhere.test", "down-b@elsewhere.test",
		"back-b@elsewhere.test"}, won[b.pf.Addr()]...)})
}
