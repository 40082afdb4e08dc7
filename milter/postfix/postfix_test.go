package postfix

import (
	"bytes"
	"errors"
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
		if got, err := Nexthop(&tc.route, rules.Choice{}); err != nil || got != tc.want {
			t.Errorf("Nexthop(%+v) = %q, %v; want %q", tc.route, got, err, tc.want)
		}
	}
	for _, bad := range []rules.Route{
		{Host: "192.0.2.25", MXLookup: true},
		{Host: "2001:db8::25", MXLookup: true},
		{Host: "bad host"},
		{Host: ""},
		{Host: "example.net", Port: 70000},
		{Primary: []rules.Host{{Host: "a.example", Port: 25, Load: 50}, {Host: "bad host", Port: 25, Load: 50}}},
	} {
		if got, err := Nexthop(&bad, rules.Choice{}); err == nil {
			t.Errorf("Nexthop(%+v) = %q, want an error", bad, got)
		}
	}
}

// TestNexthopList: a multiple-host route's next hop is the ordered list of
// a host choice, chosen primary first, secondaries last.
func TestNexthopList(t *testing.T) {
	r := &rules.Route{Name: "legacy",
		Primary: []rules.Host{
			{Host: "a.example", Port: 25, Load: 50},
			{Host: "192.0.2.2", Port: 2525, Load: 25},
			{Host: "2001:db8::3", Port: 25, Load: 25},
		},
		Secondary: []rules.Host{{Host: "s1.example", Port: 25, Load: 60}, {Host: "s2.example", Port: 587, Load: 40}},
	}
	tests := []struct {
		c    rules.Choice
		want string
	}{
		{rules.Choice{}, "[a.example]:25,[192.0.2.2]:2525,[ipv6:2001:db8::3]:25,[s1.example]:25,[s2.example]:587"},
		{rules.Choice{Primary: 1, Secondary: 1}, "[192.0.2.2]:2525,[ipv6:2001:db8::3]:25,[a.example]:25,[s2.example]:587,[s1.example]:25"},
		{rules.Choice{Primary: 2}, "[ipv6:2001:db8::3]:25,[a.example]:25,[192.0.2.2]:2525,[s1.example]:25,[s2.example]:587"},
	}
	for _, tc := range tests {
		if got, err := Nexthop(r, tc.c); err != nil || got != tc.want {
			t.Errorf("Nexthop(%v) = %q, %v; want %q", tc.c, got, err, tc.want)
		}
	}
	r.MXLookup = true
	r.Primary = r.Primary[:1]
	if got, err := Transport(r, rules.Choice{Secondary: 1}); err != nil || got != "splitrelay-legacy:a.example:25,s2.example:587,s1.example:25" {
		t.Errorf("Transport with mx_lookup = %q, %v", got, err)
	}
}

func TestTLSParams(t *testing.T) {
	h := []rules.Host{{Host: "a.example", Port: 465, Load: 50}, {Host: "b.example", Port: 465, Load: 50}}
	tests := []struct {
		name  string
		route rules.Route
		want  string // the params, "name=value" joined by spaces
		note  string // a substring of the notes
	}{
		{"none", rules.Route{Host: "h.example"}, "", "no requirement"},
		{"require_tls", rules.Route{Host: "h.example", RequireTLS: true},
			"smtp_tls_security_level=encrypt smtp_tls_policy_maps=", "certificate not checked"},
		{"all", rules.Route{Host: "h.example", RequireTLS: true, RequireCASigned: true, ValidateHostname: true},
			"smtp_tls_security_level=verify smtp_tls_verify_cert_match=hostname smtp_tls_policy_maps=", "must be CA-signed and name"},
		{"all on MX hosts", rules.Route{Host: "h.example", MXLookup: true, RequireTLS: true, RequireCASigned: true, ValidateHostname: true},
			"smtp_tls_security_level=verify smtp_tls_verify_cert_match=hostname smtp_tls_policy_maps=", "must be CA-signed and name"},
		{"465", rules.Route{Primary: h},
			"smtp_tls_security_level=encrypt smtp_tls_wrappermode=yes smtp_tls_policy_maps=", "implicit TLS"},
		{"465 require_tls", rules.Route{Primary: h, RequireTLS: true},
			"smtp_tls_security_level=encrypt smtp_tls_wrappermode=yes smtp_tls_policy_maps=", "implicit TLS"},
		{"465 all", rules.Route{Primary: h, RequireTLS: true, RequireCASigned: true, ValidateHostname: true},
			"smtp_tls_security_level=verify smtp_tls_verify_cert_match=hostname smtp_tls_wrappermode=yes smtp_tls_policy_maps=", "implicit TLS"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			params, notes, err := tlsParams(&tc.route)
			if err != nil {
				t.Fatal(err)
			}
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
	// What Postfix cannot enforce exactly is refused, never weakened.
	for name, r := range map[string]rules.Route{
		"ca alone":               {Host: "h.example", RequireTLS: true, RequireCASigned: true},
		"ca without tls":         {Host: "h.example", RequireCASigned: true, ValidateHostname: true},
		"hostname without ca":    {Host: "h.example", RequireTLS: true, ValidateHostname: true},
		"hostname on an address": {Host: "192.0.2.1", RequireTLS: true, RequireCASigned: true, ValidateHostname: true},
		"hostname on a secondary address": {Primary: []rules.Host{{Host: "h.example", Port: 25, Load: 100}},
			Secondary: []rules.Host{{Host: "2001:db8::1", Port: 25, Load: 100}}, RequireTLS: true, RequireCASigned: true, ValidateHostname: true},
	} {
		if params, _, err := tlsParams(&r); !errors.Is(err, ErrTLS) {
			t.Errorf("%s: params %v, error %v; want ErrTLS", name, params, err)
		}
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
		{"comma in map dir", func(_ *rules.Ruleset, o *Options) { o.MapDir = "/srv/pf/a,b" }, `contains ","`},
		{"space in map dir", func(_ *rules.Ruleset, o *Options) { o.MapDir = "/srv/pf/a b" }, `contains " "`},
		{"$ in map dir", func(_ *rules.Ruleset, o *Options) { o.MapDir = "/etc/$dir/splitrelay" }, `contains "$"`},
		{"brace in queue dir", func(_ *rules.Ruleset, o *Options) { o.QueueDir = "/var/spool/{pf}" }, `queue directory "/var/spool/{pf}" contains "{"`},
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
	if got := c.Main[3].Value; got != "regexp:/etc/pf2/sr/transport" {
		t.Errorf("transport_maps = %q", got)
	}
	var names []string
	for _, s := range c.Master {
		names = append(names, s.Name)
	}
	if got := strings.Join(names, " "); got != "splitrelay-archive splitrelay-lab splitrelay-legacy splitrelay-smtps splitrelay-split" {
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

// A Replace setting is written with put, which records and shows the old value.
func TestPostconfReplace(t *testing.T) {
	c := &Config{Source: "x.toml", Main: []Setting{{Name: "milter_protocol", Value: "6", Merge: Replace}}}
	var b bytes.Buffer
	if err := c.WritePostconf(&b); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "\nput milter_protocol 6\n") || !strings.Contains(b.String(), "\t'val|milter_protocol|6') return 0 ;;\n") {
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
	v := rs.Begin(rules.Client{}, "x@elsewhere.test", 0, nil).Rcpt(rules.RcptIn{Raw: "bob@example.com.legacy." + rs.Milter.RoutingSuffix})
	if v.Action != rules.Reject || v.Reply != NamespaceReply {
		t.Errorf("rules reply %v (%v), access map says %v", v.Reply, v.Action, NamespaceReply)
	}
}
