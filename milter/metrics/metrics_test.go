package metrics

import (
	"encoding/json"
	"io"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/splitrelay/splitrelay/milter/limits"
	"github.com/splitrelay/splitrelay/rules"
)

const testConfig = `
[organization]
domains = ["example.com"]
[routes.legacy]
host = "192.0.2.1"
[routes.archive]
host = "192.0.2.2"
[[split_delivery]]
name = "Unknown addresses"
messages = ["inbound"]
accounts = ["unrecognized"]
route = "legacy"
[[split_delivery]]
name = "Archive"
messages = ["inbound"]
accounts = ["users"]
route = "archive"
also_deliver = true
`

func testRules(t *testing.T) *rules.Ruleset {
	t.Helper()
	rs, err := rules.Load("t.toml", []byte(testConfig), nil)
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

func scrape(t *testing.T, m *Metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	return string(body)
}

// Every series exists from the start, at zero.
func TestZeroAtStart(t *testing.T) {
	m := New("1.2.3", "abc1234")
	rs := testRules(t)
	m.Configure(rs)
	body := scrape(t, m)
	for _, want := range []string{
		`splitrelay_recipients_total{action="route",route="legacy",rule="Unknown addresses"} 0`,
		`splitrelay_recipients_total{action="copy",route="archive",rule="Archive"} 0`,
		`splitrelay_recipients_total{action="accept",route="",rule=""} 0`,
		`splitrelay_recipients_total{action="reject",route="",rule=""} 0`,
		`splitrelay_messages_total{outcome="accept"} 0`,
		`splitrelay_messages_total{outcome="tempfail"} 0`,
		`splitrelay_messages_total{outcome="reject"} 0`,
		`splitrelay_rejects_total{reason="relay_denied"} 0`,
		`splitrelay_rejects_total{reason="routing_namespace"} 0`,
		`splitrelay_config_reloads_total{result="failure"} 0`,
		`splitrelay_config_reloads_total{result="success"} 0`,
		`splitrelay_config_info{id="` + rs.ID + `"} 1`,
		`splitrelay_milter_sessions 0`,
		`splitrelay_milter_protocol_errors_total 0`,
		`splitrelay_callback_duration_seconds_count{stage="rcpt"} 0`,
	} {
		if !strings.Contains(body, want+"\n") {
			t.Errorf("no %q in:\n%s", want, body)
		}
	}
}

func TestExposition(t *testing.T) {
	m := New("1.2.3", "abc1234")
	m.now = func() time.Time { return time.Unix(1700000000, 0) }
	m.Configure(testRules(t))
	m.Recipient("route", "legacy", "Unknown addresses")
	m.Recipient("route", "legacy", "Unknown addresses")
	m.Recipient("accept", "", "")
	m.Message("accept")
	m.Rejected("routing_namespace")
	m.BadHelo("localhost")
	m.Callback("eom", 300*time.Microsecond)
	m.Session(1)
	m.Session(1)
	m.Session(-1)
	m.ProtocolError()
	m.Reload(nil)
	rs, err := rules.Load("t.toml", []byte(testConfig+"# changed\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	m.Reload(rs)
	m.Exceeded("user_messages_per_day")
	m.StoreOp("redis", "reserve", 200*time.Microsecond, false)
	m.StoreOp("redis", "reserve", time.Second, true)
	m.Fallback(true)
	m.SetLimits(func() (limits.Stats, error) {
		return limits.Stats{Near: map[string]int{"user_messages_per_day": 3}, OrgDay: 1200, OrgPeak: 40}, nil
	})

	body := scrape(t, m)
	if strings.Count(body, "splitrelay_config_info{") != 1 {
		t.Errorf("not one splitrelay_config_info series:\n%s", body)
	}
	for _, want := range []string{
		`splitrelay_recipients_total{action="route",route="legacy",rule="Unknown addresses"} 2`,
		`splitrelay_recipients_total{action="accept",route="",rule=""} 1`,
		`splitrelay_messages_total{outcome="accept"} 1`,
		`splitrelay_messages_total{outcome="tempfail"} 0`,
		`splitrelay_rejects_total{reason="routing_namespace"} 1`,
		`splitrelay_relay_bad_helo_total{reason="localhost"} 1`,
		`splitrelay_callback_duration_seconds_bucket{stage="eom",le="0.0005"} 1`,
		`splitrelay_callback_duration_seconds_bucket{stage="eom",le="0.00025"} 0`,
		`splitrelay_config_reloads_total{result="failure"} 1`,
		`splitrelay_config_reloads_total{result="success"} 1`,
		`splitrelay_config_last_reload_successful 1`,
		`splitrelay_config_last_reload_success_timestamp_seconds 1.7e+09`,
		`splitrelay_build_info{commit="abc1234",goversion="go`,
		`go_goroutines `,
		`splitrelay_milter_sessions 1`,
		`splitrelay_milter_protocol_errors_total 1`,
		`splitrelay_config_info{id="` + rs.ID + `"} 1`,
		`splitrelay_limit_exceeded_total{limit="user_messages_per_day"} 1`,
		`splitrelay_limit_exceeded_total{limit="org_recipients_per_10_minutes"} 0`,
		`splitrelay_limit_users_near{limit="user_messages_per_day"} 3`,
		`splitrelay_limit_users_near{limit="user_recipients_per_day"} 0`,
		`splitrelay_limit_org_recipients{window="24h"} 1200`,
		`splitrelay_limit_org_recipients{window="10m"} 40`,
		`splitrelay_limits_store_duration_seconds_bucket{op="reserve",store="redis",le="0.00025"} 1`,
		`splitrelay_limits_store_errors_total{op="reserve",store="redis"} 1`,
		`splitrelay_limits_fallback 1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("no %q in:\n%s", want, body)
		}
	}
}

// TestDashboard: the Grafana dashboard in contrib/ is valid JSON, only
// queries metrics that this package exports, shows every one of them, and
// has an "up" panel.
func TestDashboard(t *testing.T) {
	data, err := os.ReadFile("../../contrib/grafana/splitrelay.json")
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatal(err)
	}
	known := exported(t)
	shown := map[string]bool{}
	name := regexp.MustCompile(`splitrelay_[a-z_]+`)
	up := false
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			up = up || strings.HasPrefix(tg.Expr, "up{")
			for _, m := range name.FindAllString(tg.Expr, -1) {
				base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(m, "_bucket"), "_count"), "_sum")
				shown[base] = true
				if !known[base] {
					t.Errorf("panel %q queries %s, which splitrelay does not export", p.Title, m)
				}
			}
		}
	}
	for k := range known {
		if strings.HasPrefix(k, "splitrelay_") && !shown[k] {
			t.Errorf("the dashboard does not show %s", k)
		}
	}
	if !up {
		t.Error("no panel queries up{...}")
	}
}

func TestDirectoryExposition(t *testing.T) {
	m := New("1.2.3", "abc1234")
	now := time.Unix(1700000000, 0)
	m.now = func() time.Time { return now }
	m.DirectorySync("restored", now.Add(-time.Hour), rules.DirectoryStats{Users: 3, Groups: 1, Aliases: 2})
	m.DirectorySync("failure", time.Time{}, rules.DirectoryStats{})
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	for _, want := range []string{
		`splitrelay_directory_syncs_total{result="failure"} 1`,
		`splitrelay_directory_syncs_total{result="success"} 0`,
		`splitrelay_directory_last_sync_successful 0`,
		`splitrelay_directory_age_seconds 3600`,
		`splitrelay_directory_entries{kind="users"} 3`,
		`splitrelay_directory_entries{kind="aliases"} 2`,
	} {
		if !strings.Contains(string(body), want+"\n") {
			t.Errorf("missing %q in:\n%s", want, body)
		}
	}
	m.DirectorySync("success", now, rules.DirectoryStats{Users: 4})
	rec = httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ = io.ReadAll(rec.Body)
	for _, want := range []string{
		`splitrelay_directory_syncs_total{result="success"} 1`,
		`splitrelay_directory_last_sync_successful 1`,
		`splitrelay_directory_last_sync_success_timestamp_seconds 1.7e+09`,
		`splitrelay_directory_age_seconds 0`,
		`splitrelay_directory_entries{kind="users"} 4`,
	} {
		if !strings.Contains(string(body), want+"\n") {
			t.Errorf("missing %q in:\n%s", want, body)
		}
	}
}
