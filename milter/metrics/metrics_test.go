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
)

func TestExposition(t *testing.T) {
	m := New("1.2.3", "abc1234")
	m.now = func() time.Time { return time.Unix(1700000000, 0) }
	m.Recipient("route", "legacy", "Unknown addresses")
	m.Recipient("route", "legacy", "Unknown addresses")
	m.Recipient("accept", "", "")
	m.Message("accept")
	m.Rejected("routing_namespace")
	m.BadHelo("localhost")
	m.Callback("eom", 300*time.Microsecond)
	m.Reload(false)
	m.Reload(true)

	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
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
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("no %q in:\n%s", want, body)
		}
	}
}

// TestDashboard: the Grafana dashboard in contrib/ is valid JSON and only
// queries metrics that this package exports.
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
	m := New("v", "c")
	m.Recipient("route", "r", "rule") // vectors without labels yet are not gathered
	m.Rejected("relay_denied")
	families, err := m.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	known := map[string]bool{}
	for _, f := range families {
		known[f.GetName()] = true
	}
	name := regexp.MustCompile(`splitrelay_[a-z_]+`)
	n := 0
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			for _, m := range name.FindAllString(tg.Expr, -1) {
				n++
				base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(m, "_bucket"), "_count"), "_sum")
				if !known[base] {
					t.Errorf("panel %q queries %s, which splitrelay does not export", p.Title, m)
				}
			}
		}
	}
	if n == 0 {
		t.Error("no splitrelay metric in the dashboard")
	}
}
