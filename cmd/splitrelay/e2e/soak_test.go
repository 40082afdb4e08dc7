package e2e

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/splitrelay/splitrelay/milter/postfixtest"
)

// The soak test (`make soak`, issue 9 scope 5): SOAK_MESSAGES messages
// (default 10,000) over SOAK_SESSIONS concurrent SMTP sessions (default
// 50) through the private Postfix and the real daemon, a mix of directory
// users, a group (archived), unrecognized addresses (legacy), relay from
// the allowed network and relay from an outsider. During the run the
// daemon is killed with SIGKILL and restarted, its configuration is
// reloaded 20 times (some with broken files) and the legacy server is down
// for a while. The client retries what was tempfailed, as an MTA would,
// so a message that never arrives is lost, not merely refused.
//
// It is not part of `make test`: it runs only with SPLITRELAY_SOAK=1.

const soakConfig = `
[milter]
listen = "{{LISTEN}}"
routing_suffix = "splitrelay.invalid"

[log]
level = "info"

[organization]
domains = ["example.com"]

[directory]
users = [{{USERS}}]

[directory.groups]
"team@example.com" = ["u0@example.com", "u1@example.com"]

[routes.legacy]
description = "legacy server"
host = "127.0.0.1"
port = {{LEGACY}}

[routes.archive]
description = "archive"
host = "127.0.0.1"
port = {{ARCHIVE}}

[relay]
allowed_senders = "domain_addresses"
require_network = true
networks = [{ cidr = "127.0.0.2", description = "application server", enabled = true }]

[relay.limits]
user_messages_per_day = 1000000
user_recipients_per_day = 1000000
org_recipients_per_day = 1000000
org_recipients_per_10_minutes = 1000000

[[split_delivery]]
name = "Unknown addresses stay on the legacy server"
messages = ["inbound", "internal"]
accounts = ["unrecognized"]
route = "legacy"

[[split_delivery]]
name = "Team mail is archived"
messages = ["inbound", "internal"]
accounts = ["groups"]
route = "archive"
also_deliver = true
`

const soakUsers = 40

// soakRcpt is one recipient of a soak message and where it must land.
type soakRcpt struct {
	addr  string   // the address Postfix stores (lower case)
	sent  string   // what the client types after RCPT TO:; default <addr>
	want  []string // sinks; nil: must be refused (relay denied)
	state string   // "", "done" (250 and message queued), "rejected"
}

type soakMsg struct {
	id     int
	source string
	from   string
	rcpts  []*soakRcpt
}

// soakPlan builds message i: deterministic, so a run can be repeated.
// With hostile set, every seventh message uses a form Postfix
// canonicalises (issue 9): source route, quoted local part, spaces inside
// the brackets, an unqualified address (myorigin = example.com), capitals.
func soakPlan(i int, hostile bool) *soakMsg {
	if hostile && i%7 == 6 {
		m := &soakMsg{id: i, source: "127.0.0.1", from: fmt.Sprintf("<sender%d@elsewhere.test>", i%97)}
		n := (i / 7) % soakUsers
		switch (i / 7) % 5 {
		case 0:
			m.rcpts = []*soakRcpt{{addr: fmt.Sprintf("z%d@example.com", i), sent: fmt.Sprintf("<@relay.test:z%d@example.com>", i), want: []string{"legacy"}}}
		case 1:
			m.rcpts = []*soakRcpt{{addr: fmt.Sprintf("u%d@example.com", n), sent: fmt.Sprintf(`<"u%d"@example.com>`, n), want: []string{"gmail"}}}
		case 2:
			m.rcpts = []*soakRcpt{{addr: fmt.Sprintf("z%d@example.com", i), sent: fmt.Sprintf("< z%d@example.com >", i), want: []string{"legacy"}}}
		case 3:
			m.rcpts = []*soakRcpt{{addr: fmt.Sprintf("z%d@example.com", i), sent: fmt.Sprintf("<z%d>", i), want: []string{"legacy"}}}
		case 4:
			m.rcpts = []*soakRcpt{{addr: fmt.Sprintf("u%d@example.com", n), sent: fmt.Sprintf("<U%d@EXAMPLE.COM>", n), want: []string{"gmail"}}}
		}
		return m
	}
	m := &soakMsg{id: i, source: "127.0.0.1", from: fmt.Sprintf("<sender%d@elsewhere.test>", i%97)}
	u := func(n int) *soakRcpt {
		return &soakRcpt{addr: fmt.Sprintf("u%d@example.com", n%soakUsers), want: []string{"gmail"}}
	}
	unknown := func() *soakRcpt {
		return &soakRcpt{addr: fmt.Sprintf("z%d@example.com", i), want: []string{"legacy"}}
	}
	team := func() *soakRcpt { return &soakRcpt{addr: "team@example.com", want: []string{"gmail", "archive"}} }
	switch i % 6 {
	case 0:
		m.rcpts = []*soakRcpt{u(i)}
	case 1:
		m.rcpts = []*soakRcpt{unknown()}
	case 2:
		m.rcpts = []*soakRcpt{team()}
	case 3:
		m.rcpts = []*soakRcpt{u(i + 7), unknown(), team()}
	case 4: // relay from the allowed network
		m.source, m.from = "127.0.0.2", fmt.Sprintf("<app%d@example.com>", i%10)
		m.rcpts = []*soakRcpt{{addr: fmt.Sprintf("r%d@elsewhere.test", i), want: []string{"internet"}}, u(i + 3)}
	case 5: // relay from an outsider: refused, its mail to us flows
		m.source, m.from = "127.0.0.3", fmt.Sprintf("<app%d@example.com>", i%10)
		m.rcpts = []*soakRcpt{{addr: fmt.Sprintf("d%d@elsewhere.test", i)}, unknown()}
	}
	return m
}

// soakStats are the client's counters.
type soakStats struct {
	mu         sync.Mutex
	sent       int // messages handed to the client
	accepted   int // messages whose every deliverable recipient was queued
	attempts   int // SMTP transactions
	tempfailed int // transactions with a 4xx or a broken connection
	retried    int // transactions that were retries
	gaveUp     int // messages still pending after the retry budget
	rejected   map[string]int
}

func (st *soakStats) reject(reply string) {
	st.mu.Lock()
	defer st.mu.Unlock()
	reason := reply
	if len(reason) > 9 {
		// "550 5.7.0 Mail relay denied": code and text, without addresses
		reason = strings.Join(strings.Fields(reason)[:min(6, len(strings.Fields(reason)))], " ")
	}
	st.rejected[reason]++
}

// deliver sends m until every recipient is queued or permanently refused,
// retrying tempfails with backoff (bounded).
func deliver(addr string, m *soakMsg, st *soakStats, deadline time.Time) {
	backoff := 200 * time.Millisecond
	for try := 0; ; try++ {
		var pending []*soakRcpt
		for _, r := range m.rcpts {
			if r.state == "" {
				pending = append(pending, r)
			}
		}
		if len(pending) == 0 {
			st.mu.Lock()
			st.accepted++
			st.mu.Unlock()
			return
		}
		if time.Now().After(deadline) {
			st.mu.Lock()
			st.gaveUp++
			st.mu.Unlock()
			return
		}
		if try > 0 {
			time.Sleep(backoff + time.Duration(rand.Int64N(int64(backoff))))
			backoff = min(2*backoff, 3*time.Second)
		}
		raw := postfixtest.RawMail{Source: m.source, From: m.from, Timeout: 60 * time.Second}
		for _, r := range pending {
			if r.sent != "" {
				raw.Rcpts = append(raw.Rcpts, r.sent)
			} else {
				raw.Rcpts = append(raw.Rcpts, "<"+r.addr+">")
			}
		}
		raw.Data = []byte(fmt.Sprintf("From: %s\nTo: soak@example.com\nSubject: soak %d\nX-Soak-ID: %d\n\nsoak message %d\n",
			strings.Trim(m.from, "<>"), m.id, m.id, m.id))
		res, err := postfixtest.SMTP(addr, raw)
		st.mu.Lock()
		st.attempts++
		if try > 0 {
			st.retried++
		}
		st.mu.Unlock()
		temp := err != nil || strings.HasPrefix(res.Mail, "4")
		queued := res.Accepted()
		if strings.HasPrefix(res.Data, "4") {
			temp = true
		}
		if strings.HasPrefix(res.Data, "5") || strings.HasPrefix(res.Mail, "5") {
			st.reject(firstNonEmpty(res.Data, res.Mail))
			for _, r := range pending {
				r.state = "rejected"
			}
			continue
		}
		if err == nil && strings.HasPrefix(res.Mail, "250") {
			for i, r := range pending {
				if i >= len(res.Rcpt) {
					break
				}
				switch rep := res.Rcpt[i]; {
				case strings.HasPrefix(rep, "250") && queued:
					r.state = "done"
				case strings.HasPrefix(rep, "5"):
					st.reject(rep)
					r.state = "rejected"
				case strings.HasPrefix(rep, "4"):
					temp = true
				}
			}
		}
		if temp {
			st.mu.Lock()
			st.tempfailed++
			st.mu.Unlock()
		}
	}
}

func firstNonEmpty(s ...string) string {
	for _, x := range s {
		if x != "" {
			return x
		}
	}
	return ""
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

func TestSoak(t *testing.T) {
	if os.Getenv("SPLITRELAY_SOAK") != "1" {
		t.Skip("the soak test runs with SPLITRELAY_SOAK=1 (make soak)")
	}
	total := envInt("SOAK_MESSAGES", 10000)
	sessions := envInt("SOAK_SESSIONS", 50)
	hostile := os.Getenv("SOAK_HOSTILE") == "1"

	sinks := map[string]*postfixtest.MemSink{}
	for _, n := range []string{"gmail", "internet", "legacy", "archive"} {
		sinks[n] = postfixtest.StartMemSink(t, n)
	}
	var users []string
	for i := range soakUsers {
		users = append(users, fmt.Sprintf("%q", fmt.Sprintf("u%d@example.com", i)))
	}
	cfg := strings.NewReplacer("{{USERS}}", strings.Join(users, ", "),
		"{{LEGACY}}", strconv.Itoa(sinks["legacy"].Port),
		"{{ARCHIVE}}", strconv.Itoa(sinks["archive"].Port)).Replace(soakConfig)
	s := newSite(t, nil, cfg)
	s.pf.SetTransport(t, map[string]string{
		"example.com":    sinks["gmail"].NextHop(),
		"elsewhere.test": sinks["internet"].NextHop(),
	})
	// the generated settings set no global limit and leave relay
	// recipients to the milter: nothing to undo before the soak
	s.pf.Postconf(t, "-e", "default_process_limit = 150", "smtpd_client_connection_count_limit = 0", "myorigin = example.com")
	s.pf.Reload(t)

	st := &soakStats{rejected: map[string]int{}}
	msgs := make([]*soakMsg, total)
	for i := range msgs {
		msgs[i] = soakPlan(i, hostile)
	}
	start := time.Now()
	deadline := start.Add(envDuration("SOAK_TIMEOUT", 15*time.Minute))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range sessions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= total {
					return
				}
				st.mu.Lock()
				st.sent++
				st.mu.Unlock()
				deliver(s.pf.Addr(), msgs[i], st, deadline)
			}
		}()
	}

	// Faults, keyed to progress.
	var faults []string
	logf := func(format string, a ...any) {
		line := fmt.Sprintf("%6.1fs ", time.Since(start).Seconds()) + fmt.Sprintf(format, a...)
		faults = append(faults, line)
		t.Log(line)
	}
	at := func(frac float64) {
		for int(next.Load()) < int(frac*float64(total)) && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
	}
	good, _ := os.ReadFile(s.cfgPath)
	broken := []string{
		"[milter\nlisten = ",                                                                     // TOML syntax
		string(good) + "\n[unknown_table]\nx = 1\n",                                              // unknown key
		strings.Replace(string(good), `route = "legacy"`, `route = "nowhere"`, 1),                // dangling route
		strings.Replace(string(good), `"team@example.com" = [`, `"team@example.com" = [42, `, 1), // wrong type
		"", // empty file
		string(good[:len(good)/2]),
		strings.Replace(string(good), `cidr = "127.0.0.2"`, `cidr = "127.0.0.300"`, 1),
	}
	var downAt time.Time
	faultsDone := make(chan struct{})
	go func() {
		defer close(faultsDone)
		at(0.15)
		logf("kill -9 daemon pid %d", s.d.cmd.Process.Pid)
		s.d.cmd.Process.Signal(syscall.SIGKILL)
		<-s.d.done
		time.Sleep(2 * time.Second)
		s.d = s.start()
		logf("daemon restarted, pid %d", s.d.cmd.Process.Pid)
		for k := range 20 {
			at(0.25 + 0.6*float64(k)/20)
			if k == 4 {
				sinks["legacy"].Stop(t)
				downAt = time.Now()
				logf("legacy server down")
			}
			if k == 10 {
				// down for at least 10 s, so Postfix defers and retries
				time.Sleep(time.Until(downAt.Add(10 * time.Second)))
				sinks["legacy"].Start(t)
				logf("legacy server up")
			}
			body := string(good)
			if k%3 == 1 {
				body = broken[(k/3)%len(broken)]
			}
			tmp := s.cfgPath + ".tmp"
			os.WriteFile(tmp, []byte(body), 0o644)
			os.Rename(tmp, s.cfgPath)
			s.d.cmd.Process.Signal(syscall.SIGHUP)
			logf("reload %d (%s)", k+1, map[bool]string{true: "broken file", false: "valid file"}[k%3 == 1])
			time.Sleep(300 * time.Millisecond)
			if k%3 == 1 { // put the good file back for the next reload
				os.WriteFile(s.cfgPath, good, 0o644)
			}
		}
		os.WriteFile(s.cfgPath, good, 0o644)
		s.d.cmd.Process.Signal(syscall.SIGHUP)
	}()
	wg.Wait()
	<-faultsDone
	sendTime := time.Since(start)
	s.pf.WaitQueueEmpty(t, 5*time.Minute)
	time.Sleep(time.Second)

	// Account for every (message, recipient, destination).
	type key struct {
		id   int
		addr string
		sink string
	}
	got := map[key]int{}
	perSink := map[string]int{}
	for name, sk := range sinks {
		for _, m := range sk.Messages() {
			id, err := strconv.Atoi(strings.TrimSpace(m.Header.Get("X-Soak-ID")))
			if err != nil {
				t.Errorf("%s received a message without X-Soak-ID", name)
				continue
			}
			for _, a := range m.Recipients() {
				got[key{id, strings.ToLower(a), name}]++
				perSink[name]++
			}
		}
	}
	var lost, misrouted, dups, unauth, pendingLeft, refused int
	var examples []string
	perKind := map[string]int{}
	example := func(f string, a ...any) { // up to 5 of each kind
		kind, _, _ := strings.Cut(f, ":")
		if perKind[kind]++; perKind[kind] <= 5 {
			examples = append(examples, fmt.Sprintf(f, a...))
		}
	}
	wanted := map[key]bool{}
	for _, m := range msgs {
		for _, r := range m.rcpts {
			if r.state == "" {
				pendingLeft++
			}
			for _, sk := range r.want {
				k := key{m.id, r.addr, sk}
				wanted[k] = true
				if r.state == "done" && got[k] == 0 {
					lost++
					example("lost: message %d %s → %s", m.id, r.addr, sk)
				}
			}
			if r.want != nil && r.state == "rejected" {
				refused++
				example("refused though deliverable: message %d %s (%s)", m.id, r.sent, r.addr)
			}
			if r.want == nil && r.state == "done" {
				unauth++
				example("relay accepted from outsider: message %d %s", m.id, r.addr)
			}
		}
	}
	for k, n := range got {
		if n > 1 {
			dups += n - 1
			example("duplicate: message %d %s at %s ×%d", k.id, k.addr, k.sink, n)
		}
		if !wanted[k] {
			if k.sink == "internet" {
				unauth++
				example("relayed without authorization: message %d %s", k.id, k.addr)
			} else {
				misrouted++
				example("misrouted: message %d %s → %s", k.id, k.addr, k.sink)
			}
		}
	}

	var b strings.Builder
	fmt.Fprintf(&b, "\nsplitrelay soak report\n")
	if hostile {
		fmt.Fprintf(&b, "  SOAK_HOSTILE=1: every seventh message uses a form Postfix canonicalises\n")
	}
	fmt.Fprintf(&b, "  messages %d over %d concurrent sessions; sending took %v, all delivered after %v\n", total, sessions, sendTime.Round(time.Second), time.Since(start).Round(time.Second))
	fmt.Fprintf(&b, "  faults:\n")
	for _, f := range faults {
		fmt.Fprintf(&b, "    %s\n", f)
	}
	dlog := s.d.logs()
	fmt.Fprintf(&b, "  reloads: %d applied, %d refused (daemon log); Postfix deferred %d deliveries (legacy down)\n",
		strings.Count(dlog, "configuration reloaded"), strings.Count(dlog, "reload refused"), strings.Count(s.pf.Log(), "status=deferred"))
	fmt.Fprintf(&b, "  sent                  %d\n", st.sent)
	fmt.Fprintf(&b, "  accepted              %d (every deliverable recipient queued)\n", st.accepted)
	fmt.Fprintf(&b, "  SMTP transactions     %d\n", st.attempts)
	fmt.Fprintf(&b, "  tempfailed            %d transactions (4xx or broken connection)\n", st.tempfailed)
	fmt.Fprintf(&b, "  retried               %d transactions\n", st.retried)
	fmt.Fprintf(&b, "  gave up (budget)      %d messages, %d recipients never queued\n", st.gaveUp, pendingLeft)
	fmt.Fprintf(&b, "  rejected by reason:\n")
	for _, r := range slices.Sorted(maps.Keys(st.rejected)) {
		fmt.Fprintf(&b, "    %6d  %s\n", st.rejected[r], r)
	}
	fmt.Fprintf(&b, "  delivered per destination:\n")
	for _, n := range []string{"gmail", "legacy", "archive", "internet"} {
		fmt.Fprintf(&b, "    %-9s %d\n", n, perSink[n])
	}
	fmt.Fprintf(&b, "  duplicates            %d\n", dups)
	fmt.Fprintf(&b, "  misrouted             %d\n", misrouted)
	fmt.Fprintf(&b, "  relayed without auth  %d\n", unauth)
	fmt.Fprintf(&b, "  lost                  %d\n", lost)
	fmt.Fprintf(&b, "  refused though ours   %d (a permanent error for a recipient the rules deliver)\n", refused)
	for _, e := range examples {
		fmt.Fprintf(&b, "    e.g. %s\n", e)
	}
	fmt.Print(b.String())
	if out := os.Getenv("SOAK_REPORT"); out != "" {
		os.WriteFile(out, []byte(b.String()), 0o644)
	}
	if lost+misrouted+dups+unauth+refused > 0 || pendingLeft > 0 {
		t.Errorf("soak failed: lost %d, misrouted %d, duplicates %d, unauthorized %d, refused though ours %d, never queued %d", lost, misrouted, dups, unauth, refused, pendingLeft)
	}
}

func envDuration(name string, def time.Duration) time.Duration {
	if d, err := time.ParseDuration(os.Getenv(name)); err == nil && d > 0 {
		return d
	}
	return def
}
