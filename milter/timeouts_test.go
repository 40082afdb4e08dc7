package milter

import (
	"testing"
	"time"
)

// TestTimeoutsOutlastClients: our own timeouts against the idle times of
// the relay clients of seed 003 and of Postfix's smtpd (their values are
// documented in testdata/clients/groupwise.smtp).
func TestTimeoutsOutlastClients(t *testing.T) {
	waits := []struct {
		who string
		d   time.Duration
	}{
		{"GroupWise GWIA command and TCP read timeouts (seed 003)", 5 * time.Minute},
		{"GroupWise GWIA connection termination timeout (seed 003)", 15 * time.Minute},
		{"Qmail idle timeout (seed 003: 1,200 s by default)", 1200 * time.Second},
		{"Sendmail idle timeout (seed 003: one hour)", time.Hour},
		{"Postfix smtpd_timeout (default 300 s) per client command", 300 * time.Second},
		{"Postfix milter_content_timeout (default 300 s)", 300 * time.Second},
	}
	for _, w := range waits {
		if ReadTimeout <= w.d {
			t.Errorf("milter read timeout %v does not outlast %s: %v", ReadTimeout, w.who, w.d)
		}
	}
	// Postfix waits milter_command_timeout (30 s) for each answer; a
	// write may not take longer than that is worth.
	if WriteTimeout > 30*time.Second || WriteTimeout <= 0 {
		t.Errorf("milter write timeout %v: want (0, 30s], Postfix's milter_command_timeout", WriteTimeout)
	}
}
