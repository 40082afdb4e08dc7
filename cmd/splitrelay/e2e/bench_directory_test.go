package e2e

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	gomilter "github.com/d--j/go-milter"

	"github.com/splitrelay/splitrelay/milter/postfixtest"
)

// BenchmarkReloadRSS runs the real daemon with a users_files of a million
// users (every tenth with an alias) and 10k groups of 20 in a Google
// export, reloads it six times (SIGHUP, each after the previous reload is
// done, 2.5 s apart) and reports its resident memory (VmRSS of
// /proc/PID/status) at start, just after the first and the sixth reload,
// 2.5 s after the last one (with the traffic's garbage), its peak (VmHWM),
// and how long a reload takes. Target (issue 13): under 300 MB, not growing
// with reloads.
//
//	go test ./cmd/splitrelay -run '^$' -bench ReloadRSS -benchtime 1x
func BenchmarkReloadRSS(b *testing.B) {
	dir := b.TempDir()
	const users = 1_000_000
	var u bytes.Buffer
	for i := range users {
		fmt.Fprintf(&u, "user%07d@example.com", i)
		if i%10 == 0 {
			fmt.Fprintf(&u, " alias%07d@example.com", i)
		}
		u.WriteByte('\n')
	}
	var g bytes.Buffer
	g.WriteString("Group Email [Required],Member Email\n")
	for i := range 10_000 {
		for m := range 20 {
			fmt.Fprintf(&g, "group%05d@example.com,user%07d@example.com\n", i, (i*20+m)%users)
		}
	}
	port := postfixtest.FreePort(b)
	cfg := fmt.Sprintf(`[milter]
listen = "inet:127.0.0.1:%d"
[organization]
domains = ["example.com"]
[directory]
users_files = ["users.txt"]
google_exports = ["groups.csv"]
[state]
dir = %q
`, port, dir)
	for name, data := range map[string][]byte{"users.txt": u.Bytes(), "groups.csv": g.Bytes(), "splitrelay.toml": []byte(cfg)} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	bin := binaryB(b)
	for b.Loop() {
		start := time.Now()
		cmd := exec.Command(bin, "run", "-c", filepath.Join(dir, "splitrelay.toml"))
		var mu sync.Mutex
		var logs strings.Builder
		stderr, _ := cmd.StderrPipe()
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		go func() {
			sc := bufio.NewScanner(stderr)
			for sc.Scan() {
				mu.Lock()
				logs.WriteString(sc.Text() + "\n")
				mu.Unlock()
			}
		}()
		count := func(s string) int { mu.Lock(); defer mu.Unlock(); return strings.Count(logs.String(), s) }
		wait := func(s string, n int) {
			for deadline := time.Now().Add(60 * time.Second); count(s) < n; time.Sleep(10 * time.Millisecond) {
				if time.Now().After(deadline) {
					cmd.Process.Kill()
					b.Fatalf("no %q in:\n%s", s, logs.String())
				}
			}
		}
		wait("splitrelay started", 1)
		b.ReportMetric(time.Since(start).Seconds(), "start-s")
		time.Sleep(time.Second)
		b.ReportMetric(rssMB(b, cmd.Process.Pid, "VmRSS"), "rss-start-MB")
		// Mail keeps flowing while the directory is swapped: one client
		// runs transactions back to back through the reloads.
		stop := make(chan struct{})
		var flow flowStats
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			if os.Getenv("RELOADRSS_NOFLOW") == "" {
				flow = mailFlow(fmt.Sprintf("127.0.0.1:%d", port), stop)
			} else {
				flow.n = 1
			}
		}()
		var reload time.Duration
		var afterFirst, afterLast float64
		for i := 1; i <= 6; i++ {
			t0 := time.Now()
			cmd.Process.Signal(syscall.SIGHUP)
			wait("configuration reloaded", i)
			reload += time.Since(t0)
			// Just after the swap (and FreeOSMemory): what each reload
			// leaves behind, without the mail traffic's later garbage.
			time.Sleep(300 * time.Millisecond)
			rss := rssMB(b, cmd.Process.Pid, "VmRSS")
			if i == 1 {
				afterFirst = rss
			}
			afterLast = rss
			time.Sleep(2200 * time.Millisecond)
		}
		b.ReportMetric(afterFirst, "rss-after-reload-1-MB")
		b.ReportMetric(afterLast, "rss-after-reload-6-MB")
		close(stop)
		wg.Wait()
		b.ReportMetric(reload.Seconds()/6, "reload-s")
		b.ReportMetric(float64(flow.n), "msgs-during-reloads")
		b.ReportMetric(float64(flow.failed), "msgs-not-accepted")
		b.ReportMetric(float64(flow.max.Milliseconds()), "msg-max-ms")
		if flow.failed > 0 || flow.n == 0 {
			b.Errorf("mail flow during reloads: %d messages, %d not accepted (%v)", flow.n, flow.failed, flow.err)
		}
		b.ReportMetric(rssMB(b, cmd.Process.Pid, "VmRSS"), "rss-after-6-reloads-MB")
		b.ReportMetric(rssMB(b, cmd.Process.Pid, "VmHWM"), "rss-peak-MB")
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	}
}

type flowStats struct {
	n, failed int
	max       time.Duration
	err       error
}

// mailFlow runs milter transactions (one user recipient, one unknown one)
// until stop is closed.
func mailFlow(addr string, stop <-chan struct{}) (st flowStats) {
	c := gomilter.NewClient("tcp", addr, gomilter.WithAction(gomilter.AllClientSupportedActionMasks))
	for {
		select {
		case <-stop:
			return st
		default:
		}
		t0 := time.Now()
		ok, err := oneTransaction(c)
		st.n++
		if !ok {
			st.failed++
			st.err = err
		}
		st.max = max(st.max, time.Since(t0))
	}
}

func oneTransaction(c *gomilter.Client) (bool, error) {
	macros := gomilter.NewMacroBag()
	s, err := c.Session(macros)
	if err != nil {
		return false, err
	}
	defer s.Close()
	if _, err := s.Conn("client.test", gomilter.FamilyInet, 4321, "192.0.2.1"); err != nil {
		return false, err
	}
	if _, err := s.Helo("client.test"); err != nil {
		return false, err
	}
	if _, err := s.Mail("x@elsewhere.test", ""); err != nil {
		return false, err
	}
	for _, r := range []string{"user0999999@example.com", "nobody@example.com"} {
		if act, err := s.Rcpt(r, ""); err != nil || act.Type != gomilter.ActionContinue {
			return false, fmt.Errorf("rcpt %s: %v %v", r, act, err)
		}
		macros.Set(gomilter.MacroQueueId, "4ABCDEF")
	}
	if _, err := s.DataStart(); err != nil {
		return false, err
	}
	if _, err := s.HeaderField("From", "x@elsewhere.test", nil); err != nil {
		return false, err
	}
	if _, err := s.HeaderEnd(); err != nil {
		return false, err
	}
	_, final, err := s.BodyReadFrom(strings.NewReader("hello\r\n"))
	if err != nil || final.Type != gomilter.ActionAccept {
		return false, fmt.Errorf("end of message: %v %v", final, err)
	}
	return true, nil
}

// rssMB reads a memory field of /proc/PID/status in MB.
func rssMB(b *testing.B, pid int, field string) float64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			kb, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			return float64(kb) / 1024
		}
	}
	b.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}

// binaryB builds splitrelay for a benchmark.
func binaryB(b *testing.B) string {
	b.Helper()
	p := filepath.Join(b.TempDir(), "splitrelay")
	if out, err := exec.Command("go", "build", "-o", p, "..").CombinedOutput(); err != nil { // cmd/splitrelay
		b.Fatalf("go build: %v\n%s", err, out)
	}
	return p
}
