package postfix

import (
	"bytes"
	"strings"
	"testing"

	"github.com/splitrelay/splitrelay/rules"
)

func TestMilterAddress(t *testing.T) {
	tests := []struct {
		listen, queue, want string
		note                bool
	}{
		{"unix:/var/spool/postfix/splitrelay/milter.sock", "/var/spool/postfix", "unix:splitrelay/milter.sock", false},
		{"unix:/var/spool/postfix/splitrelay/milter.sock", "/var/spool/postfix/", "unix:splitrelay/milter.sock", false},
		{"unix:/srv/pf/spool/m.sock", "/srv/pf/spool", "unix:m.sock", false},
		{"unix:/var/spool/postfix-other/m.sock", "/var/spool/postfix", "unix:/var/spool/postfix-other/m.sock", true},
		{"unix:/run/splitrelay/milter.sock", "/var/spool/postfix", "unix:/run/splitrelay/milter.sock", true},
		{"inet:127.0.0.1:10028", "/var/spool/postfix", "inet:127.0.0.1:10028", false},
		{"tcp:127.0.0.1:10028", "/var/spool/postfix", "inet:127.0.0.1:10028", false},
		{"inet:0.0.0.0:10028", "/var/spool/postfix", "inet:127.0.0.1:10028", false},
		{"inet::10028", "/var/spool/postfix", "inet:127.0.0.1:10028", false},
		{"inet:[::]:10028", "/var/spool/postfix", "inet:[::1]:10028", false},
		{"inet:[::1]:10028", "/var/spool/postfix", "inet:[::1]:10028", false},
		{"inet:milter.example.com:10028", "/var/spool/postfix", "inet:milter.example.com:10028", false},
	}
	for _, tc := range tests {
		got, notes, err := milterAddress(tc.listen, tc.queue)
		if err != nil || got != tc.want || (len(notes) > 0) != tc.note {
			t.Errorf("milterAddress(%q, %q) = %q, %q, %v; want %q, note %v", tc.listen, tc.queue, got, notes, err, tc.want, tc.note)
		}
	}
	for _, bad := range []string{"", "/var/spool/postfix/m.sock", "unix:relative.sock", "inet:127.0.0.1", "inet:127.0.0.1:0", "inet:127.0.0.1:x", "local:/x"} {
		if got, _, err := milterAddress(bad, "/var/spool/postfix"); err == nil {
			t.Errorf("milterAddress(%q) = %q, want an error", bad, got)
		}
	}
}

func TestNexthop(t *testing.T) {
	tests := []struct {
		route rules.Route
		want  string
	}{
		{rules.Route{Host: "exchange.corp.example.com", Port: 25}, "[exchange.corp.example.com]:25"},
		{rules.Route{Host: "Exchange.Corp.Example.COM.", Port: 587}, "[exchange.corp.example.com]:587"},
		{rules.Route{Host: "example.net", Port: 25, MXLookup: true}, "example.net:25"},
		{rules.Route{Host: "example.net"}, "[example.net]:25"},
		{rules.Route{Host: "ex_1.corp.example"}, "[ex_1.corp.example]:25"},
		{rules.Route{Host: "192.0.2.25", Port: 2525}, "[192.0.2.25]:2525"},
		{rules.Route{Host: "2001:db8::25", Port: 25}, "[ipv6:2001:db8::25]:25"},
		{rules.Route{Host: "[2001:DB8:0::25]", Port: 25}, "[ipv6:2001:db8::25]:25"},
		{rules.Route{Host: "::ffff:192.0.2.1", Port: 25}, "[192.0.2.1]:25"},
	}
	for _, tc := range tests {
		if got, err := Nexthop(&tc.route); err != nil || got != tc.want {
			t.Errorf("Nexthop(%+v) = %q, %v; want %q", tc.route, got, err, tc.want)
		}
	}
	for _, bad := range []rules.Route{
		{Host: "192.0.2.25", MXLookup: true},
		{Host: "2001:db8::25", MXLookup: true},
		{Host: "bad host"},
		{Host: ""},
		{Host: "example.net", Port: 70000},
	} {
		if got, err := Nexthop(&bad); err == nil {
			t.Errorf("Nexthop(%+v) = %q, want an error", bad, got)
		}
	}
}

func TestTLSParams(t *testing.T) {
	tests := []struct {
		name  string
		route rules.Route
		want  string // the params, "name=value" joined by spaces
		note  string // a substring of the notes
	}{
		{"none", rules.Route{Host: "h.example"}, "", "no requirement"},
		{"require_tls", rules.Route{Host: "h.example", RequireTLS: true},
			"smtp_tls_security_level=encrypt smtp_tls_policy_maps=", "certificate not checked"},
		{"require_ca_signed", rules.Route{Host: "h.example", RequireCASigned: true},
			"smtp_tls_security_level=verify smtp_tls_verify_cert_match=hostname,nexthop,dot-nexthop smtp_tls_policy_maps=", "stricter"},
		{"require_tls+require_ca_signed", rules.Route{Host: "h.example", RequireTLS: true, RequireCASigned: true},
			"smtp_tls_security_level=verify smtp_tls_verify_cert_match=hostname,nexthop,dot-nexthop smtp_tls_policy_maps=", "stricter"},
		{"validate_hostname", rules.Route{Host: "h.example", ValidateHostname: true},
			"smtp_tls_security_level=verify smtp_tls_verify_cert_match=hostname smtp_tls_policy_maps=", "stricter than validate_hostname alone"},
		{"all", rules.Route{Host: "h.example", RequireTLS: true, RequireCASigned: true, ValidateHostname: true},
			"smtp_tls_security_level=verify smtp_tls_verify_cert_match=hostname smtp_tls_policy_maps=", "must be CA-signed and name"},
		{"ip", rules.Route{Host: "192.0.2.1", RequireCASigned: true},
			"smtp_tls_security_level=verify smtp_tls_verify_cert_match=hostname,nexthop,dot-nexthop smtp_tls_policy_maps=", "WARNING"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			params, notes := tlsParams(&tc.route)
			var got []string
			for _, p := range params {
				got = append(got, p.Name+"="+p.Value)
			}
			if strings.Join(got, " ") != tc.want {
				t.Errorf("params %q, want %q", strings.Join(got, " "), tc.want)
			}
			if !strings.Contains(strings.Join(notes, "\n"), tc.note) {
				t.Errorf("notes %q do not say %q", notes, tc.note)
			}
		})
	}
}

func TestGenerateErrors(t *testing.T) {
	tests := []struct {
		name string
		edit func(*rules.Ruleset, *Options)
		want string
	}{
		{"relative map dir", func(_ *rules.Ruleset, o *Options) { o.MapDir = "maps" }, "map directory"},
		{"relative queue dir", func(_ *rules.Ruleset, o *Options) { o.QueueDir = "spool" }, "queue directory"},
		{"bad suffix", func(rs *rules.Ruleset, _ *Options) { rs.Milter.RoutingSuffix = "split relay" }, "routing_suffix"},
		{"no suffix", func(rs *rules.Ruleset, _ *Options) { rs.Milter.RoutingSuffix = "" }, "routing_suffix"},
		{"bad listen", func(rs *rules.Ruleset, _ *Options) { rs.Milter.Listen = "udp:1" }, "milter.listen"},
		{"bad route name", func(rs *rules.Ruleset, _ *Options) { rs.Routes["legacy"].Name = "leg_acy" }, "DNS label"},
		{"mx on an address", func(rs *rules.Ruleset, _ *Options) { rs.Routes["lab"].MXLookup = true }, "mx_lookup"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rs, opt := exampleRuleset(), Options{}
			tc.edit(rs, &opt)
			if _, err := Generate(rs, opt); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one about %q", err, tc.want)
			}
		})
	}
}

func TestGenerateOptions(t *testing.T) {
	rs := exampleRuleset()
	rs.RouteNames = nil // sorted from the map
	rs.Milter.Listen = "unix:/srv/postfix/splitrelay.sock"
	c, err := Generate(rs, Options{MapDir: "/etc/pf2/sr/", QueueDir: "/srv/postfix", ConfigDir: "/etc/pf2"})
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Main[0].Value; got != "{ unix:splitrelay.sock, default_action=tempfail, protocol=6 }" {
		t.Errorf("smtpd_milters = %q", got)
	}
	if got := c.Main[1].Value; got != "regexp:/etc/pf2/sr/transport" {
		t.Errorf("transport_maps = %q", got)
	}
	var names []string
	for _, s := range c.Master {
		names = append(names, s.Name)
	}
	if got := strings.Join(names, " "); got != "splitrelay-archive splitrelay-lab splitrelay-legacy" {
		t.Errorf("services %s", got)
	}
	var b bytes.Buffer
	if err := c.WritePostconf(&b); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "pc() { postconf -c /etc/pf2 \"$@\"; }") ||
		!strings.Contains(b.String(), `"postfix -c /etc/pf2 reload"`) {
		t.Errorf("script does not use -c /etc/pf2:\n%s", b.String())
	}
}

// A Replace setting is written as a plain postconf -e.
func TestPostconfReplace(t *testing.T) {
	c := &Config{Source: "x.toml", Main: []Setting{{Name: "milter_protocol", Value: "6", Merge: Replace}}}
	var b bytes.Buffer
	if err := c.WritePostconf(&b); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "\npc -e 'milter_protocol = 6'\n") || strings.Contains(b.String(), "cur_milter_protocol") {
		t.Errorf("script:\n%s", b.String())
	}
}

func TestShQuote(t *testing.T) {
	for in, want := range map[string]string{
		"regexp:/etc/postfix/splitrelay/transport": "regexp:/etc/postfix/splitrelay/transport",
		"":                   "''",
		"a b":                "'a b'",
		"it's":               `'it'\''s'`,
		"$x":                 "'$x'",
		"/dir with/space":    "'/dir with/space'",
		"{ unix:a, b=c }":    "'{ unix:a, b=c }'",
		"name = value; rm x": "'name = value; rm x'",
	} {
		if got := shQuote(in); got != want {
			t.Errorf("shQuote(%q) = %s, want %s", in, got, want)
		}
	}
}

// The access map answers what the milter answers at RCPT TO, so a client
// sees the same reply whether the milter or Postfix refuses it.
func TestNamespaceReplyMatchesRules(t *testing.T) {
	rs, err := rules.Load("t.toml", []byte("[organization]\ndomains = [\"example.com\"]\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	reply, _, ok := rs.CheckRecipient("bob@example.com.legacy." + rs.Milter.RoutingSuffix)
	if ok || reply != NamespaceReply {
		t.Errorf("rules reply %v (ok %v), access map says %v", reply, ok, NamespaceReply)
	}
}
