package milter

import "testing"

func TestLocalSubmission(t *testing.T) {
	for _, tc := range []struct {
		host, addr string
		port       uint16
		want       bool
	}{
		{"localhost", "127.0.0.1", 0, true},
		{"localhost", "::1", 0, true},
		{"localhost", "127.0.0.1", 41234, false}, // an SMTP client on loopback
		{"unknown", "127.0.0.1", 0, false},
		{"localhost", "192.0.2.1", 0, false},
		{"", "", 0, false},
	} {
		if got := localSubmission(tc.host, tc.addr, tc.port); got != tc.want {
			t.Errorf("localSubmission(%q, %q, %d) = %v, want %v", tc.host, tc.addr, tc.port, got, tc.want)
		}
	}
}
