package sendmail

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"

	"github.com/splitrelay/splitrelay/rules"
)

func TestMilterSpec(t *testing.T) {
	tests := []struct{ listen, want string }{
		{"unix:/run/splitrelay/milter.sock", "local:/run/splitrelay/milter.sock"},
		{"inet:127.0.0.1:10028", "inet:10028@127.0.0.1"},
		{"tcp:0.0.0.0:10028", "inet:10028@127.0.0.1"},
		{"tcp::10028", ""}, // no host: the configuration is refused, so is this
		{"inet:[::]:10028", "inet6:10028@::1"},
		{"inet:[::1]:10028", "inet6:10028@::1"},
		{"unix:relative.sock", ""},
		{"unix:/a,b", ""},
		{"inet:127.0.0.1:0", ""},
		{"ftp:x", ""},
	}
	for _, tc := range tests {
		got, err := milterSpec(tc.listen)
		if got != tc.want || (err != nil) != (tc.want == "") {
			t.Errorf("milterSpec(%q) = %q, %v; want %q", tc.listen, got, err, tc.want)
		}
	}
}

func TestOctets(t *testing.T) {
	tests := []struct {
		prefix, want string
		ok           bool
	}{
		{"192.0.2.0/24", "192.0.2", true},
		{"10.0.0.0/8", "10", true},
		{"198.51.100.7/32", "198.51.100.7", true},
		{"203.0.113.0/28", "", false},
		{"2001:db8::/112", "", false},
		{"0.0.0.0/0", "", false},
	}
	for _, tc := range tests {
		got, ok := octets(tc.prefix)
		if got != tc.want || ok != tc.ok {
			t.Errorf("octets(%q) = %q, %v; want %q, %v", tc.prefix, got, ok, tc.want, tc.ok)
		}
	}
}

// TestQuoted: every line that reaches sendmail.cf is m4-quoted, so that a
// route named like an m4 builtin survives; the other lines are our own
// macro calls, m4 comments (dnl) or continuation lines of a quoted mailer.
func TestQuoted(t *testing.T) {
	rs := &rules.Ruleset{
		Name:   "t.toml",
		Milter: rules.Milter{Listen: "inet:127.0.0.1:10028", RoutingSuffix: "splitrelay.invalid"},
		Routes: map[string]*rules.Route{
			"dnl":     {Name: "dnl", Description: "it's `quoted'", Host: "192.0.2.1", Port: 25},
			"include": {Name: "include", Primary: []rules.Host{{Host: "a.example", Port: 25, Load: 50}, {Host: "b.example", Port: 25, Load: 50}}},
		},
		RouteNames: []string{"dnl", "include"},
	}
	c, err := Generate(rs)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := c.WriteMC(&b); err != nil {
		t.Fatal(err)
	}
	known := []string{"dnl ", "define(`SPLITRELAY_MACRO'", "SPLITRELAY_MACRO(", "undefine(", "INPUT_MAIL_FILTER(",
		"LOCAL_CONFIG", "MAILER_DEFINITIONS", "LOCAL_RULE_0", "LOCAL_RULESETS", "divert(0)dnl", "\t\tT=DNS"}
	for _, line := range strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n") {
		ok := strings.HasPrefix(line, "`") && (strings.HasSuffix(line, "'") || strings.HasPrefix(line, "`M"))
		for _, k := range known {
			ok = ok || strings.HasPrefix(line, k)
		}
		if !ok {
			t.Errorf("line not m4-quoted: %q", line)
		}
		if strings.Count(line, "`") != strings.Count(line, "'") && !strings.HasPrefix(line, "dnl") && !strings.HasPrefix(line, "`M") && !strings.HasPrefix(line, "\t\t") {
			t.Errorf("unbalanced m4 quotes: %q", line)
		}
	}
	for _, want := range []string{
		"`R$* < @ $+ . dnl . splitrelay . invalid . > $*\t$#splitrelay-dnl $@ [192.0.2.1] $: $1 < @ $2 . > $3'",
		"`R$* < @ $+ . p2 . include . splitrelay . invalid . > $*\t$#splitrelay-include $@ [b.example]:[a.example] $: $1 < @ $2 . > $3'",
		"`# route dnl: its quoted'",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("missing %q in:\n%s", want, b.String())
		}
	}
}

// TestIPv6Networks: Sendmail needs nothing for ::1 (it lets its own host
// relay, measured), and for any other IPv6 network the warning gives the
// access entry in the form Sendmail names its clients (leftmost groups,
// uncompressed), or says why there is no single one.
func TestIPv6Networks(t *testing.T) {
	tests := []struct {
		cidr        string
		unsupported string // "" when only a note is wanted
	}{
		{"::1/128", ""},
		{"2001:db8::25/128", "Connect:IPv6:2001:db8:0:0:0:0:0:25 RELAY"},
		{"2001:db8::/112", "Connect:IPv6:2001:db8:0:0:0:0:0 RELAY"},
		{"2001:db8:1:2::/64", "Connect:IPv6:2001:db8:1:2 RELAY"},
		{"fe80::a:b/128", "Connect:IPv6:fe80:0:0:0:0:0:a:b RELAY"},
		{"2001:db8::100/120", "write one entry per /128 it holds"},
	}
	for _, tc := range tests {
		t.Run(tc.cidr, func(t *testing.T) {
			rs := &rules.Ruleset{
				Name:   "t.toml",
				Milter: rules.Milter{Listen: "inet:127.0.0.1:10028", RoutingSuffix: "splitrelay.invalid"},
				Relay: &rules.Relay{RequireNetwork: true,
					Networks: []rules.Network{{Prefix: netip.MustParsePrefix(tc.cidr), Description: "v6", Enabled: true}}},
			}
			c, err := Generate(rs)
			if err != nil {
				t.Fatal(err)
			}
			all := strings.Join(c.Unsupported, "\n")
			if tc.unsupported == "" {
				if strings.Contains(all, tc.cidr) {
					t.Errorf("a warning for %s, which Sendmail lets relay:\n%s", tc.cidr, all)
				}
				if !strings.Contains(strings.Join(c.Notes, "\n"), tc.cidr+" (v6): nothing to add") {
					t.Errorf("no note for %s:\n%s", tc.cidr, c.Notes)
				}
				return
			}
			if !strings.Contains(all, tc.unsupported) {
				t.Errorf("warning lacks %q:\n%s", tc.unsupported, all)
			}
			for _, l := range c.Relay {
				if strings.Contains(l, ":") {
					t.Errorf("an IPv6 network in the relay class: %s", l)
				}
			}
		})
	}
}
