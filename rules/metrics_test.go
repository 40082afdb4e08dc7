package rules

import (
	"strings"
	"testing"
)

func TestMetricsListen(t *testing.T) {
	for _, tc := range []struct {
		name, section, want, err string
	}{
		{"absent", "", "", ""},
		{"loopback", "[metrics]\nlisten = \"127.0.0.1:9477\"\n", "127.0.0.1:9477", ""},
		{"ipv6", "[metrics]\nlisten = \"[::1]:9477\"\n", "[::1]:9477", ""},
		{"no host", "[metrics]\nlisten = \":9477\"\n", "", "t.toml:2:10: metrics.listen: \":9477\": name the address"},
		{"no port", "[metrics]\nlisten = \"127.0.0.1\"\n", "", "t.toml:2:10: metrics.listen: \"127.0.0.1\": want host:port"},
		{"bad port", "[metrics]\nlisten = \"127.0.0.1:99999\"\n", "", "port must be 1-65535"},
		{"unknown key", "[metrics]\npath = \"/m\"\n", "", "t.toml:2:1: metrics.path: unknown key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rs, err := Load("t.toml", []byte(tc.section+"[organization]\ndomains = [\"example.com\"]\n"), nil)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if rs.Metrics.Listen != tc.want {
				t.Errorf("Metrics.Listen = %q, want %q", rs.Metrics.Listen, tc.want)
			}
		})
	}
}
