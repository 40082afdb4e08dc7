package rules

import "testing"

// Mail submitted on the MTA host (Client.Local) is not relay traffic: no
// relay reply, no sender rewrite, no relay size limit; the routing
// namespace is still refused.
func TestLocalSubmissionIsNotRelay(t *testing.T) {
	rs := relayRules(t, "any", withTLS+"\n[relay.limits]\nmessage_size = \"1KB\"\n")
	local := client("127.0.0.1", "localhost", "", false)
	local.Local = true
	tx := rs.Begin(local, "cron@elsewhere.test", 0, nil)
	for _, tc := range []struct {
		rcpt   string
		reject bool
	}{
		{"x@elsewhere.test", false},
		{"victim%elsewhere.test@example.com", false},
		{"alice@example.com", false},
		{"bob@example.com.legacy.splitrelay.invalid", true},
	} {
		v := tx.Rcpt(RcptIn{Raw: tc.rcpt, Stored: tc.rcpt})
		if (v.Action == Reject) != tc.reject || v.Relay {
			t.Errorf("%s: %+v, want reject=%v and not relay", tc.rcpt, v, tc.reject)
		}
	}
	d := tx.End(Message{Size: 4096})
	if d.Relay || d.Reject != nil || d.SenderRewritten {
		t.Errorf("local message decided as relay: %+v", d)
	}
	// The same from an SMTP client on loopback is relay.
	smtp := rs.Begin(client("127.0.0.1", "localhost", "", false), "cron@elsewhere.test", 0, nil)
	if v := smtp.Rcpt(RcptIn{Raw: "x@elsewhere.test", Stored: "x@elsewhere.test"}); v.Action != Reject {
		t.Errorf("SMTP client without TLS: %+v", v)
	}
}
