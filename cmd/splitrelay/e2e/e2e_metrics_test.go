package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/splitrelay/splitrelay/milter/postfixtest"
)

// TestE2EMetrics scrapes /metrics after real SMTP traffic through Postfix:
// a routed, a copied, an accepted and a refused recipient, then a refused
// and an accepted reload.
func TestE2EMetrics(t *testing.T) {
	addr := fmt.Sprintf("127.0.0.1:%d", postfixtest.FreePort(t))
	cfg := config(false) + "\n[metrics]\nlisten = \"" + addr + "\"\n"
	s := newSite(t, routes, cfg)
	s.d.waitLog(t, 5*time.Second, `msg="metrics listening"`, "metrics_listen="+addr)

	before := scrape(t, addr)
	want(t, before, `splitrelay_config_reloads_total{result="success"}`, 0)
	want(t, before, `splitrelay_config_last_reload_successful`, 1)
	if n := before.count("splitrelay_build_info{"); n != 1 {
		t.Errorf("%d splitrelay_build_info series, want 1", n)
	}
	// every series from the start, at zero
	rs, err := loadConfig(s.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	want(t, before, `splitrelay_config_info{id="`+rs.ID+`"}`, 1)
	want(t, before, `splitrelay_milter_sessions`, 0)
	want(t, before, `splitrelay_milter_protocol_errors_total`, 0)
	want(t, before, `splitrelay_recipients_total{action="route",route="legacy",rule="Unknown addresses stay on the legacy server"}`, 0)
	want(t, before, `splitrelay_rejects_total{reason="relay_denied"}`, 0)
	want(t, before, `splitrelay_config_reloads_total{result="failure"}`, 0)

	s.send(postfixtest.Mail{From: "x@elsewhere.test", To: []string{"alice@example.com", "carol@example.com", "sales@example.com"}})
	// A recipient in the routing namespace, with Postfix's own access
	// check removed so that the milter is the one to refuse it.
	s.pf.Postconf(t, "-e", "smtpd_recipient_restrictions =", "smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination")
	s.pf.Reload(t)
	bad := "bob@example.com.legacy.splitrelay.invalid"
	tr, _ := s.pf.Send(t, postfixtest.Mail{From: "x@elsewhere.test", To: []string{bad, "alice@example.com"}})
	if r := postfixtest.Reply(tr, "RCPT TO:<"+bad+">"); !strings.HasPrefix(r, "550 5.1.2") {
		t.Fatalf("routing namespace not refused: %q\n%s", r, tr)
	}
	s.landed(map[string][]string{
		"gmail":   {"alice@example.com", "alice@example.com", "sales@example.com"},
		"legacy":  {"carol@example.com"},
		"archive": {"sales@example.com"},
	})

	good, err := os.ReadFile(s.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	s.writeConfig(strings.Replace(string(good), `route = "legacy"`, `route = "nowhere"`, 1))
	s.d.cmd.Process.Signal(syscall.SIGHUP)
	s.d.waitLog(t, 10*time.Second, `msg="reload refused; keeping the running rules"`)
	s.writeConfig(string(good))
	s.d.cmd.Process.Signal(syscall.SIGHUP)
	s.d.waitLog(t, 10*time.Second, `msg="configuration reloaded"`)

	// The log line comes before the metrics are updated: scrape until
	// the successful reload shows (bounded).
	m := scrape(t, addr)
	for deadline := time.Now().Add(10 * time.Second); m[`splitrelay_config_reloads_total{result="success"}`] < 1 && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
		m = scrape(t, addr)
	}
	want(t, m, `splitrelay_recipients_total{action="route",route="legacy",rule="Unknown addresses stay on the legacy server"}`, 1)
	want(t, m, `splitrelay_recipients_total{action="copy",route="archive",rule="Sales mail is archived"}`, 1)
	want(t, m, `splitrelay_recipients_total{action="reject",route="",rule=""}`, 1)
	want(t, m, `splitrelay_rejects_total{reason="routing_namespace"}`, 1)
	want(t, m, `splitrelay_messages_total{outcome="accept"}`, 2)
	want(t, m, `splitrelay_messages_total{outcome="tempfail"}`, 0)
	want(t, m, `splitrelay_callback_duration_seconds_count{stage="eom"}`, 2)
	if n := m[`splitrelay_recipients_total{action="accept",route="",rule=""}`]; n < 2 {
		t.Errorf("accepted recipients = %v, want at least 2 (alice twice)", n)
	}
	if n := m[`splitrelay_callback_duration_seconds_count{stage="rcpt"}`]; n < 5 {
		t.Errorf("rcpt callbacks = %v, want at least 5", n)
	}
	want(t, m, `splitrelay_config_reloads_total{result="failure"}`, 1)
	want(t, m, `splitrelay_config_reloads_total{result="success"}`, 1)
	want(t, m, `splitrelay_config_last_reload_successful`, 1)
	want(t, m, `splitrelay_config_info{id="`+rs.ID+`"}`, 1)
	want(t, m, `splitrelay_milter_protocol_errors_total`, 0)
	if n := m.count("splitrelay_config_info{"); n != 1 {
		t.Errorf("%d splitrelay_config_info series, want 1", n)
	}
	if m[`splitrelay_config_last_reload_success_timestamp_seconds`] <= before[`splitrelay_config_last_reload_success_timestamp_seconds`] {
		t.Errorf("last reload timestamp did not move")
	}
}

// samples are a scrape: "name{labels}" -> value.
type samples map[string]float64

func (s samples) count(prefix string) int {
	n := 0
	for k := range s {
		if strings.HasPrefix(k, prefix) {
			n++
		}
	}
	return n
}

func want(t *testing.T, s samples, series string, v float64) {
	t.Helper()
	got, ok := s[series]
	if !ok || got != v {
		t.Errorf("%s = %v (present %v), want %v", series, got, ok, v)
	}
}

// scrape reads the text exposition format.
func scrape(t *testing.T, addr string) samples {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET /metrics: %s\n%s", resp.Status, b)
	}
	s := samples{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("bad sample line %q", line)
		}
		s[line[:i]] = v
	}
	return s
}
