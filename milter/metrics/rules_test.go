package metrics

import (
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

const alertRules = "../../contrib/prometheus/splitrelay.rules.yml"

// TestAlertRules: promtool accepts the alerting rules and their unit tests
// pass, and the rules only query metrics that this package exports.
// promtool comes from Debian's prometheus package (make deps); without it
// the test is skipped, or fails under SPLITRELAY_E2E=1.
func TestAlertRules(t *testing.T) {
	data, err := os.ReadFile(alertRules)
	if err != nil {
		t.Fatal(err)
	}
	known := exported(t)
	n := 0
	for _, m := range regexp.MustCompile(`splitrelay_[a-z_]+`).FindAllString(string(data), -1) {
		if strings.HasSuffix(m, "_") || m == "splitrelay_rules" {
			continue
		}
		n++
		if !known[m] {
			t.Errorf("%s queries %s, which splitrelay does not export", alertRules, m)
		}
	}
	if n == 0 {
		t.Error("no splitrelay metric in the rules")
	}

	promtool, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("SPLITRELAY_E2E") == "1" {
			t.Fatal("promtool not found (apt-get install prometheus, or make deps); SPLITRELAY_E2E=1: may not skip")
		}
		t.Skip("promtool not found (apt-get install prometheus, or make deps)")
	}
	for _, args := range [][]string{
		{"check", "rules", "splitrelay.rules.yml"},
		{"test", "rules", "splitrelay.rules.test.yml"},
	} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = "../../contrib/prometheus"
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// exported is the name of every metric family New registers.
func exported(t *testing.T) map[string]bool {
	t.Helper()
	m := New("v", "c")
	m.Configure(testRules(t))
	families, err := m.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	known := map[string]bool{}
	for _, f := range families {
		known[f.GetName()] = true
	}
	return known
}
