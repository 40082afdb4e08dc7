package postfix

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/splitrelay/splitrelay/rules"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/postfix")

// goldenDir holds the expected outputs (repository testdata/postfix).
const goldenDir = "../../testdata/postfix"

// exampleRuleset is built by hand (no rules.Load): routes covering a
// bracketed host name with require_tls, an MX route with CA and host name
// checks, an IPv6 address on a custom port, two primaries at 70/30 with a
// secondary, and implicit TLS on 465 with two weighted secondaries.
func exampleRuleset() *rules.Ruleset {
	routes := map[string]*rules.Route{
		"legacy": {Name: "legacy", Description: "On-prem Exchange", Host: "exchange.corp.example.com", Port: 25, RequireTLS: true},
		"archive": {Name: "archive", Description: "Archive service\n(MX lookup)", Host: "archive.example.net", Port: 25,
			MXLookup: true, RequireTLS: true, RequireCASigned: true, ValidateHostname: true},
		"lab": {Name: "lab", Host: "2001:db8::25", Port: 2525, RequireTLS: true},
		"split": {Name: "split", Description: "Two Exchange servers at 70/30 and a backup",
			Primary: []rules.Host{
				{Host: "ex1.corp.example.com", Port: 25, Load: 70},
				{Host: "ex2.corp.example.com", Port: 25, Load: 30},
			},
			Secondary:  []rules.Host{{Host: "backup.corp.example.com", Port: 2525, Load: 100}},
			RequireTLS: true, RequireCASigned: true, ValidateHostname: true},
		"smtps": {Name: "smtps",
			Primary:   []rules.Host{{Host: "a.example.org", Port: 465, Load: 100}},
			Secondary: []rules.Host{{Host: "b.example.org", Port: 465, Load: 50}, {Host: "c.example.org", Port: 465, Load: 50}}},
	}
	return &rules.Ruleset{
		Name: "example.toml",
		Milter: rules.Milter{
			Listen:        "unix:/var/spool/postfix/splitrelay/milter.sock",
			RoutingSuffix: "splitrelay.invalid",
		},
		Domains:    []string{"example.com", "example.org"},
		Routes:     routes,
		RouteNames: []string{"archive", "lab", "legacy", "smtps", "split"},
	}
}

func TestGolden(t *testing.T) {
	c, err := Generate(exampleRuleset(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		file  string
		write func(*bytes.Buffer) error
	}{
		{"example.text", func(b *bytes.Buffer) error { return c.WriteText(b) }},
		{"example.postconf.sh", func(b *bytes.Buffer) error { return c.WritePostconf(b) }},
	}
	for _, tc := range cases {
		t.Run(tc.file, func(t *testing.T) {
			var b bytes.Buffer
			if err := tc.write(&b); err != nil {
				t.Fatal(err)
			}
			golden(t, filepath.Join(goldenDir, tc.file), b.Bytes())
		})
	}
}

// golden compares got with the file, or rewrites the file with -update.
func golden(t *testing.T, file string, got []byte) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(file, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("output differs from %s (go test -update rewrites it):\n--- got\n%s\n--- want\n%s", file, got, want)
	}
}
