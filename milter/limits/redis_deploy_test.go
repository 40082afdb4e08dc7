package limits

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/splitrelay/splitrelay/milter/postfixtest"
	"github.com/splitrelay/splitrelay/rules"
)

// The Sentinel and Cluster URL forms against real deployments (started
// by postfixtest on loopback ports), not only parsed (TestRedisURLs).

// atLimit relays up to the user message limit through gateways in turn,
// then checks that each gateway refuses one more.
func atLimit(t *testing.T, gws ...*Redis) {
	t.Helper()
	lim := rules.Limits{UserMessagesPerDay: 3, UserRecipientsPerDay: 10}
	for i := range lim.UserMessagesPerDay {
		relay(t, gws[i%len(gws)], fmt.Sprint("m", i), alice, fmt.Sprintf("r%d@x.test", i))
	}
	for i, g := range gws {
		tx := fmt.Sprint("over", i)
		if ex, err := g.Reserve(res(tx, alice, "z@x.test", lim)); ex != rules.UserMessages || err != nil {
			t.Errorf("gateway %d at 3 of 3: %v %v, want %v", i, ex, err, rules.UserMessages)
		}
		g.Release(tx)
	}
}

// TestRedisSentinel: the store reaches the master through a Sentinel
// (?master_name=), and after the master fails the Sentinel's failover
// brings it to the promoted replica, where the counts are (replicated)
// and the limit still holds.
func TestRedisSentinel(t *testing.T) {
	s := postfixtest.StartSentinel(t, "relay", true)
	clk := &clock{t: time.Now()}
	a, _, _ := openRedis(t, s.URL(), "tempfail", clk)
	b, _, _ := openRedis(t, s.URL(), "tempfail", clk)
	if want := fmt.Sprintf("sentinel 127.0.0.1:%d master relay", s.Sentinel.Port); a.where != want {
		t.Errorf("where %q, want %q", a.where, want)
	}
	atLimit(t, a, b)

	s.WaitReplicated(t)
	s.Master.Stop(t)
	deadline := time.Now().Add(30 * time.Second)
	for s.MasterPort(t) != s.Replica.Port {
		if time.Now().After(deadline) {
			t.Fatal("no failover after 30s")
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Recipients are deferred (an error) until the client finds the new
	// master.
	var ex rules.Exceeded
	var err error
	for {
		if ex, err = a.Reserve(res("after", alice, "z@x.test", rules.Limits{UserMessagesPerDay: 3})); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no reservation through the new master after 30s: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if ex != rules.UserMessages {
		t.Errorf("after the failover: %v, want %v (the counts replicated)", ex, rules.UserMessages)
	}
	rep, err := a.Show(alice)
	if err != nil || len(rep.Users) != 1 || rep.Users[0].Messages != 3 {
		t.Errorf("show after the failover: %+v %v", rep, err)
	}
}

// TestRedisCluster: two gateways on a 3-node Cluster (?addr=) share one
// limit; every key is in the slot of the hash tag {splitrelay}, so each
// script runs on one node.
func TestRedisCluster(t *testing.T) {
	c := postfixtest.StartCluster(t, 3)
	clk := &clock{t: time.Now()}
	a, _, _ := openRedis(t, c.URL(), "tempfail", clk)
	b, _, _ := openRedis(t, c.URL(), "tempfail", clk)
	if !strings.HasPrefix(a.where, "cluster [127.0.0.1:") || strings.Count(a.where, "127.0.0.1:") != 3 {
		t.Errorf("where %q", a.where)
	}
	atLimit(t, a, b)
	rep, err := b.Show("")
	if err != nil || len(rep.Users) != 1 || rep.Users[0].Messages != 3 || rep.Users[0].Recipients != 3 || rep.Org.Day != 3 {
		t.Errorf("show: %+v %v", rep, err)
	}
}
