package postfixtest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The Sentinel and Cluster deployments of the shared relay limits, each
// from private redis-server processes on loopback ports (Sentinel is the
// same binary with --sentinel; a Cluster is created with Debian's
// redis-cli, from redis-tools), so that the store's URL forms are tested
// against the real protocol, not only parsed.

// Sentinel is a Redis master, optionally a replica of it, and one
// Sentinel that monitors them under a master name (quorum 1: the one
// Sentinel alone decides that the master is down and promotes the
// replica).
type Sentinel struct {
	Name     string
	Master   *Redis
	Replica  *Redis // nil without one
	Sentinel *Redis
}

// SentinelDownAfter is how long the master must be unreachable before the
// Sentinel fails over to the replica (down-after-milliseconds).
const SentinelDownAfter = time.Second

// URL is the [state] redis URL of the master through the Sentinel, in the
// form splitrelay expects: the Sentinel's address with master_name.
func (s *Sentinel) URL() string {
	return fmt.Sprintf("redis://127.0.0.1:%d/0?master_name=%s", s.Sentinel.Port, s.Name)
}

// StartSentinel starts a master (with a replica if replica is true) and a
// Sentinel monitoring it as name, and waits until the Sentinel names the
// master (and has found the replica).
func StartSentinel(t testing.TB, name string, replica bool) *Sentinel {
	t.Helper()
	cli := redisCLI(t)
	s := &Sentinel{Name: name, Master: StartRedis(t)}
	if replica {
		s.Replica = StartRedis(t, "--replicaof", "127.0.0.1", strconv.Itoa(s.Master.Port))
	}
	// Sentinel rewrites its configuration file (it records what it
	// learns there), so the file lives in a directory of its own.
	confDir := makeTempDir(t, "splitrelay-sentinel-conf-")
	t.Cleanup(func() { removeTempDir(t, confDir) })
	conf := filepath.Join(confDir, "sentinel.conf")
	text := fmt.Sprintf("sentinel monitor %[1]s 127.0.0.1 %[2]d 1\n"+
		"sentinel down-after-milliseconds %[1]s %[3]d\n"+
		"sentinel failover-timeout %[1]s 10000\n", name, s.Master.Port, SentinelDownAfter.Milliseconds())
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		t.Fatalf("postfixtest: %v", err)
	}
	s.Sentinel = startRedis(t, "sentinel", func(int) []string { return []string{"--sentinel"} }, []string{conf})
	want := strconv.Itoa(s.Master.Port)
	wait(t, "sentinel "+name+" to name its master", startTimeout, func() (bool, string) {
		out, err := cli.run("-p", strconv.Itoa(s.Sentinel.Port), "sentinel", "get-master-addr-by-name", name)
		if err != nil || !strings.Contains(out, want) {
			return false, out + fmt.Sprint(err)
		}
		if !replica {
			return true, ""
		}
		out, err = cli.run("-p", strconv.Itoa(s.Sentinel.Port), "sentinel", "replicas", name)
		return err == nil && strings.Contains(out, strconv.Itoa(s.Replica.Port)), out + fmt.Sprint(err)
	})
	return s
}

// MasterPort asks the Sentinel which port the master has now.
func (s *Sentinel) MasterPort(t testing.TB) int {
	t.Helper()
	out, err := redisCLI(t).run("-p", strconv.Itoa(s.Sentinel.Port), "sentinel", "get-master-addr-by-name", s.Name)
	f := strings.Fields(out)
	if err != nil || len(f) != 2 {
		t.Fatalf("postfixtest: sentinel get-master-addr-by-name %s: %q %v", s.Name, out, err)
	}
	p, _ := strconv.Atoi(f[1])
	return p
}

// WaitReplicated waits until the replica has everything the master
// wrote (so that a failover loses nothing a test counted).
func (s *Sentinel) WaitReplicated(t testing.TB) {
	t.Helper()
	cli := redisCLI(t)
	// WAIT numreplicas timeout: the number of replicas that acknowledged
	// the master's writes so far.
	wait(t, "the replica to acknowledge the master's writes", startTimeout, func() (bool, string) {
		out, err := cli.run("-p", strconv.Itoa(s.Master.Port), "wait", "1", "1000")
		return err == nil && strings.TrimSpace(out) == "1", out + fmt.Sprint(err)
	})
}

// Cluster is a Redis Cluster of masters without replicas.
type Cluster struct {
	Nodes []*Redis
}

// URL is the [state] redis URL of the cluster in the form splitrelay
// expects: the first node's address, the others as addr parameters.
func (c *Cluster) URL() string {
	var b strings.Builder
	fmt.Fprintf(&b, "redis://127.0.0.1:%d", c.Nodes[0].Port)
	for i, n := range c.Nodes[1:] {
		sep := "&"
		if i == 0 {
			sep = "?"
		}
		fmt.Fprintf(&b, "%saddr=127.0.0.1:%d", sep, n.Port)
	}
	return b.String()
}

// StartCluster starts n (at least 3, Redis's minimum) cluster-enabled
// redis-servers, joins them into one cluster sharing the hash slots
// (redis-cli --cluster create), and waits until every node reports the
// cluster ok.
func StartCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	cli := redisCLI(t)
	c := &Cluster{}
	addrs := make([]string, 0, n)
	for range n {
		// The cluster bus needs a port too; Redis's default (port +
		// 10000) may be taken or beyond 65535.
		nd := startRedis(t, "redis-cluster", func(int) []string {
			return []string{"--cluster-enabled", "yes", "--cluster-port", strconv.Itoa(FreePort(t)),
				"--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "5000"}
		}, nil)
		c.Nodes = append(c.Nodes, nd)
		addrs = append(addrs, "127.0.0.1:"+strconv.Itoa(nd.Port))
	}
	if out, err := cli.run(append(append([]string{"--cluster", "create"}, addrs...), "--cluster-replicas", "0", "--cluster-yes")...); err != nil {
		t.Fatalf("postfixtest: redis-cli --cluster create: %v\n%s", err, tail(out, 30))
	}
	for _, nd := range c.Nodes {
		wait(t, fmt.Sprintf("cluster node %d to report the cluster ok", nd.Port), startTimeout, func() (bool, string) {
			out, err := cli.run("-p", strconv.Itoa(nd.Port), "cluster", "info")
			return err == nil && strings.Contains(out, "cluster_state:ok"), out + fmt.Sprint(err)
		})
	}
	return c
}

// cli runs redis-cli against loopback servers.
type cli string

// redisCLI finds redis-cli, or skips the test (fails it under
// SPLITRELAY_E2E=1).
func redisCLI(t testing.TB) cli {
	t.Helper()
	p, err := lookTool("redis-cli")
	if err != nil {
		missing(t, "redis-cli not found (apt-get install redis-tools, or make deps)")
	}
	return cli(p)
}

// run runs redis-cli on 127.0.0.1 with args, bounded by commandTimeout,
// and returns its output (stdout and stderr: redis-cli reports some
// failures on stdout with exit status 0, others on stderr).
func (c cli) run(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, string(c), append([]string{"-h", "127.0.0.1"}, args...)...)
	out, _, err := runFiles(cmd, true)
	if err == nil && (strings.HasPrefix(out, "ERR") || strings.HasPrefix(out, "(error)")) {
		err = fmt.Errorf("redis-cli %s: %s", strings.Join(args, " "), strings.TrimSpace(out))
	}
	return out, err
}

// wait polls ok every pollInterval until it holds, failing the test after
// timeout with what ok last said.
func wait(t testing.TB, what string, timeout time.Duration, ok func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		done, last := ok()
		if done {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("postfixtest: waited %v for %s; last: %s", timeout, what, strings.TrimSpace(last))
		}
		time.Sleep(pollInterval)
	}
}
