package rules

import (
	"strings"
	"testing"
)

// outcome is a compact form of a Recipient decision for table tests:
// "accept", "route legacy", "reject 550 5.1.2 ...", with "+copy archive"
// for each dual-delivery copy.
func outcome(r Recipient) string {
	var s string
	switch r.Action {
	case Reroute:
		s = "route " + r.Route.Name
	case Reject:
		s = "reject " + r.Reply.String()
	default:
		s = "accept"
	}
	for _, c := range r.Copies {
		s += " +copy " + c.Route.Name
	}
	return s
}

func TestDecide(t *testing.T) {
	rs, err := loadTestdata(t, "valid.toml")
	if err != nil {
		t.Fatal(err)
	}
	const ext = "Someone <someone@elsewhere.test>"
	tests := []struct {
		name       string
		sender     string
		headerFrom string
		rcpt       string
		wantKind   Kind
		want       string
		wantRule   string
	}{
		{"user stays on primary", "x@elsewhere.test", ext, "alice@example.com", Inbound, "accept", ""},
		{"user in users_files", "x@elsewhere.test", ext, "erin@example.com", Inbound, "accept", ""},
		{"user case-insensitive local and domain", "x@elsewhere.test", ext, "BOB@Example.Com", Inbound, "accept", ""},
		{"unrecognized goes to legacy", "x@elsewhere.test", ext, "carol@example.com", Inbound, "route legacy", "Unknown addresses stay on Exchange"},
		{"unrecognized in subdomain", "x@elsewhere.test", ext, "zed@sub.example.com", Inbound, "route legacy", "Unknown addresses stay on Exchange"},
		{"user in subdomain", "x@elsewhere.test", ext, "dora@sub.example.com", Inbound, "accept", ""},
		{"unrecognized internal", "x@example.com", "Boss <boss@example.com>", "carol@example.com", Internal, "route legacy", "Unknown addresses stay on Exchange"},
		{"external recipient untouched", "x@example.com", ext, "someone@elsewhere.test", Inbound, "accept", ""},
		{"group stays without filter match", "x@elsewhere.test", ext, "sales@example.com", Inbound, "accept", ""},
		{"group with partner sender gets archive copy", "bob@partner.example", ext, "sales@example.com", Inbound, "accept +copy archive", ""},
		{"group member via group filter gets copy", "bob@partner.example", ext, "carol@example.com", Inbound, "route legacy +copy archive", "Unknown addresses stay on Exchange"},
		{"pattern is case-sensitive", "bob@PARTNER.example", ext, "alice@example.com", Inbound, "accept +copy archive", ""},
		{"pattern sees local part as written", "bob@partner.example.net", ext, "alice@example.com", Inbound, "accept", ""},
		{"dual delivery only for inbound", "bob@partner.example", "a@example.com", "alice@example.com", Internal, "accept", ""},
		{"nested group member", "bob@partner.example", ext, "bob@example.com", Inbound, "accept", ""},
		{"internal group pattern (?i)", "x@example.com", "x@example.com", "PROJECT-x@example.com", Internal, "route legacy", "Unknown addresses stay on Exchange"},
		{"internal group by parent domain From", "x@example.com", "x@example.org", "all@example.com", Internal, "accept", ""},
		{"IDN recipient user (U-label)", "x@elsewhere.test", ext, "jörg@BÜCHER.example", Inbound, "accept", ""},
		{"IDN recipient unrecognized (A-label)", "x@elsewhere.test", ext, "x@xn--bcher-kva.example", Inbound, "route legacy", "Unknown addresses stay on Exchange"},
		{"trailing dot domain", "x@elsewhere.test", ext, "carol@example.com.", Inbound, "route legacy", "Unknown addresses stay on Exchange"},
		{"routing namespace refused", "x@elsewhere.test", ext, "bob@example.com.legacy.splitrelay.invalid", Inbound, "reject 550 5.1.2 Bad destination system address", ""},
		{"routing namespace refused any case", "x@elsewhere.test", ext, "bob@Example.com.LEGACY.SplitRelay.Invalid.", Inbound, "reject 550 5.1.2 Bad destination system address", ""},
		{"routing namespace via percent hack", "x@elsewhere.test", ext, "bob%example.com.legacy.splitrelay.invalid@example.com", Inbound, "reject 550 5.1.2 Bad destination system address", ""},
		{"null sender", "", ext, "carol@example.com", Inbound, "route legacy", "Unknown addresses stay on Exchange"},
		{"no From header is inbound", "x@example.com", "", "carol@example.com", Inbound, "route legacy", "Unknown addresses stay on Exchange"},
		{"unreadable From header is inbound", "x@example.com", "<<<", "alice@example.com", Inbound, "accept", ""},
		{"one external author makes it inbound", "x@example.com", "a@example.com, b@elsewhere.test", "alice@example.com", Inbound, "accept", ""},
		{"bare TLD From is not a parent domain", "x@example.com", "x@com", "alice@example.com", Inbound, "accept", ""},
		{"RFC 2047 display name", "x@example.com", "=?utf-8?q?J=C3=B6rg?= <j@example.com>", "alice@example.com", Internal, "accept", ""},
		{"source route stripped", "x@elsewhere.test", ext, "@relay.test:carol@example.com", Inbound, "route legacy", "Unknown addresses stay on Exchange"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := decide(rs, Envelope{Sender: tt.sender, HeaderFrom: tt.headerFrom, Recipients: []string{tt.rcpt}})
			if d.Kind != tt.wantKind {
				t.Errorf("kind = %v (%s), want %v", d.Kind, d.KindReason, tt.wantKind)
			}
			r := d.Recipients[0]
			if got := outcome(r); got != tt.want || r.Rule != tt.wantRule {
				t.Errorf("got %q rule %q (%s), want %q rule %q", got, r.Rule, r.Reason, tt.want, tt.wantRule)
			}
		})
	}
}

func TestPrecedence(t *testing.T) {
	cfg := `
[organization]
domains = ["example.com"]
[routes.a]
host = "a.example.net"
[routes.b]
host = "b.example.net"
[routes.c]
host = "c.example.net"
[[split_delivery]]
name = "copy to c"
messages = ["inbound"]
accounts = ["unrecognized"]
route = "c"
also_deliver = true
[[split_delivery]]
name = "first: a"
messages = ["inbound"]
accounts = ["unrecognized"]
route = "a"
[[split_delivery]]
name = "second: b"
messages = ["inbound"]
accounts = ["unrecognized"]
route = "b"
[[split_delivery]]
name = "copy to c again"
messages = ["inbound"]
accounts = ["unrecognized"]
route = "c"
also_deliver = true
[[split_delivery]]
name = "copy to a"
messages = ["inbound"]
accounts = ["unrecognized"]
route = "a"
also_deliver = true
[[split_delivery]]
name = "copy to b"
messages = ["inbound"]
accounts = ["unrecognized"]
route = "b"
also_deliver = true
`
	rs, err := Load("p.toml", []byte(cfg), nil)
	if err != nil {
		t.Fatal(err)
	}
	d := decide(rs, Envelope{Sender: "x@elsewhere.test", Recipients: []string{"u@example.com", "u2@example.com"}})
	for _, r := range d.Recipients {
		// first route-changing rule wins; one copy per route; no copy via
		// the route already taken.
		if got, want := outcome(r), "route a +copy c +copy b"; got != want || r.Rule != "first: a" {
			t.Errorf("%s: got %q (rule %q), want %q", r.Address, got, r.Rule, want)
		}
		if r.Copies[0].Rule != "copy to c" {
			t.Errorf("copy c credited to %q, want the first rule that added it", r.Copies[0].Rule)
		}
	}
}

func TestRoutedAddress(t *testing.T) {
	rs, err := loadTestdata(t, "valid.toml")
	if err != nil {
		t.Fatal(err)
	}
	for in, want := range map[string]string{
		// Case, U-labels and subaddresses are kept: the route's server
		// receives the address exactly as stored.
		"Carol@Example.COM":     "Carol@Example.COM.legacy.splitrelay.invalid",
		"x@bücher.example":      "x@bücher.example.legacy.splitrelay.invalid",
		`"a b"@example.com.`:    `"a b"@example.com.legacy.splitrelay.invalid`,
		`"alice"@example.com`:   `alice@example.com.legacy.splitrelay.invalid`,
		`"a\"b"@example.com`:    `"a\"b"@example.com.legacy.splitrelay.invalid`,
		"@r.test:z@example.com": "z@example.com.legacy.splitrelay.invalid",
		"bob+tag@example.com":   "bob+tag@example.com.legacy.splitrelay.invalid",
	} {
		a, err := ParseAddress(in)
		if err != nil {
			t.Fatalf("ParseAddress(%q): %v", in, err)
		}
		if got := rs.RoutedAddress(a, rs.Routes["legacy"], Choice{}); got != want {
			t.Errorf("RoutedAddress(%q) = %q, want %q", in, got, want)
		}
		if !rs.inNamespace(want) {
			t.Errorf("routed form %q not refused at RCPT", want)
		}
	}
}

func TestSummaryMentionsDryRun(t *testing.T) {
	rs, err := Load("d.toml", []byte("[milter]\ndry_run = true\n[organization]\ndomains = [\"example.com\"]\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(rs.Summary(), "DRY RUN") {
		t.Error(rs.Summary())
	}
}

// The stored form decides (Postfix's {rcpt_addr}, lower-cased by its
// resolver); the client's own form is routed when it is the same address,
// so the route's server sees it as written. Measured forms: see
// TestAddressProbe in milter/postfixtest.
func TestStoredForm(t *testing.T) {
	rs, err := loadTestdata(t, "valid.toml")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		raw, stored string
		action      Action
		account     Account
		routed      string // with Reroute
	}{
		{"@relay.test:zed@example.com", "zed@example.com", Reroute, Unrecognized, "zed@example.com.legacy.splitrelay.invalid"},
		{`"alice"@example.com`, "alice@example.com", Keep, User, ""},
		{"alice(x)@example.com", "alice@example.com", Keep, User, ""},
		{"zed", "zed@example.com", Reroute, Unrecognized, "zed@example.com.legacy.splitrelay.invalid"},
		{" zed@example.com ", "zed@example.com", Reroute, Unrecognized, "zed@example.com.legacy.splitrelay.invalid"},
		{"ZOE2@EXAMPLE.COM", "zoe2@example.com", Reroute, Unrecognized, "ZOE2@EXAMPLE.COM.legacy.splitrelay.invalid"},
		{`"zed"@EXAMPLE.com.`, "zed@example.com", Reroute, Unrecognized, "zed@EXAMPLE.com.legacy.splitrelay.invalid"},
		{"@example.com", `""@example.com`, Reroute, Unrecognized, `""@example.com.legacy.splitrelay.invalid`},
		{`"a b"@example.com`, `"a b"@example.com`, Reroute, Unrecognized, `"a b"@example.com.legacy.splitrelay.invalid`},
		{"x@bücher.example", "x@bücher.example", Reroute, Unrecognized, "x@bücher.example.legacy.splitrelay.invalid"},
		// {rcpt_addr} missing: plain forms are read, others tempfailed.
		{"Carol@Example.com", "", Reroute, Unrecognized, "Carol@Example.com.legacy.splitrelay.invalid"},
		{"zed", "", Defer, External, ""},
		{"alice(x)@example.com", "", Defer, External, ""},
		{"elsewhere.test!zed", "", Defer, External, ""},
		{"x@elsewhere.test", "", Keep, External, ""},
		// An unreadable stored form is never guessed.
		{"zed", "zed@", Defer, External, ""},
	}
	for _, tt := range tests {
		t.Run(tt.raw+"|"+tt.stored, func(t *testing.T) {
			tx := rs.Begin(Client{}, "x@partner.example", 0, nil)
			v := tx.Rcpt(RcptIn{Raw: tt.raw, Stored: tt.stored})
			d := tx.End(Message{HeaderFrom: "x@partner.example"})
			r := d.Recipients[0]
			if v.Action != r.Action && r.Action != Reroute || r.Action != tt.action || r.Account != tt.account {
				t.Fatalf("verdict %v, decision %v %v (%s), want %v %v", v.Action, r.Action, r.Account, r.Reason, tt.action, tt.account)
			}
			if tt.routed != "" {
				if got := rs.RoutedAddress(r.Addr, r.Route, r.Choice); got != tt.routed {
					t.Errorf("routed %q, want %q", got, tt.routed)
				}
			}
		})
	}
}

// A folded From header is unfolded before it is read.
func TestFoldedFrom(t *testing.T) {
	rs, err := loadTestdata(t, "valid.toml")
	if err != nil {
		t.Fatal(err)
	}
	if k, why := rs.kind("a@example.com,\r\n b@example.org"); k != Internal {
		t.Errorf("folded From: %v (%s)", k, why)
	}
}
