package rules

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func relayRules(t testing.TB, mode, extra string) *Ruleset {
	t.Helper()
	cfg := `
[organization]
domains = ["example.com"]
[directory]
users = ["alice@example.com"]
[relay]
allowed_senders = "` + mode + `"
` + extra
	rs, err := Load("relay.toml", []byte(cfg), nil)
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

func client(addr, helo, auth string, tls bool) Client {
	c := Client{Helo: helo, Auth: auth, TLS: tls}
	if addr != "" {
		c.Addr = netip.MustParseAddr(addr)
	}
	return c
}

const (
	netOnly = `require_network = true
networks = [{ cidr = "127.0.0.2", description = "app", enabled = true }, { cidr = "::ffff:127.0.0.8/127", description = "mapped", enabled = true }]`
	authOnly = `require_network = false
require_smtp_auth = true`
	both    = netOnly + "\nrequire_smtp_auth = true"
	withTLS = netOnly + "\nrequire_tls = true"
)

func TestRelayPolicy(t *testing.T) {
	tests := []struct {
		name   string
		mode   string
		extra  string
		client Client
		sender string
		rcpt   string
		want   string // "accept" or the reply
	}{
		{"allowed network, domain address", "domain_addresses", netOnly, client("127.0.0.2", "app.example.com", "", false), "noreply@example.com", "x@elsewhere.test", "accept"},
		{"subdomain sender", "domain_addresses", netOnly, client("127.0.0.2", "h", "", false), "noreply@apps.example.com", "x@elsewhere.test", "accept"},
		{"other network", "domain_addresses", netOnly, client("127.0.0.3", "h", "", false), "noreply@example.com", "x@elsewhere.test", "550 5.7.0 Mail relay denied"},
		{"unknown client address", "domain_addresses", netOnly, client("", "h", "", false), "noreply@example.com", "x@elsewhere.test", "550 5.7.0 Mail relay denied"},
		{"IPv4-mapped client", "domain_addresses", netOnly, client("::ffff:127.0.0.2", "h", "", false), "noreply@example.com", "x@elsewhere.test", "accept"},
		{"IPv4-mapped range", "domain_addresses", netOnly, client("127.0.0.9", "h", "", false), "noreply@example.com", "x@elsewhere.test", "accept"},
		{"external sender", "domain_addresses", netOnly, client("127.0.0.2", "h", "", false), "x@elsewhere.test", "y@elsewhere.test", "550 5.7.1 Invalid credentials for relay"},
		{"lookalike sender domain", "domain_addresses", netOnly, client("127.0.0.2", "h", "", false), "x@exаmple.com", "y@elsewhere.test", "550 5.7.1 Invalid credentials for relay"},
		{"registered user", "registered_users", netOnly, client("127.0.0.2", "h", "", false), "Alice@Example.com", "y@elsewhere.test", "accept"},
		{"not registered", "registered_users", netOnly, client("127.0.0.2", "h", "", false), "bob@example.com", "y@elsewhere.test", "550 5.7.0 Mail Sending denied"},
		{"registered mode, external sender", "registered_users", netOnly, client("127.0.0.2", "h", "", false), "bob@elsewhere.test", "y@elsewhere.test", "550 5.7.1 Invalid credentials for relay"},
		{"internal recipient is not relay", "registered_users", netOnly, client("203.0.113.9", "h", "", false), "x@elsewhere.test", "alice@example.com", "accept"},
		{"auth over TLS", "domain_addresses", authOnly, client("203.0.113.9", "h", "alice@example.com", true), "alice@example.com", "y@elsewhere.test", "accept"},
		{"auth without TLS does not count", "domain_addresses", authOnly, client("203.0.113.9", "h", "alice@example.com", false), "alice@example.com", "y@elsewhere.test", "550 5.7.0 Mail relay denied"},
		{"no auth", "domain_addresses", authOnly, client("127.0.0.2", "h", "", true), "alice@example.com", "y@elsewhere.test", "550 5.7.0 Mail relay denied"},
		{"both: network and auth", "domain_addresses", both, client("127.0.0.2", "h", "alice", true), "alice@example.com", "y@elsewhere.test", "accept"},
		{"both: auth missing", "domain_addresses", both, client("127.0.0.2", "h", "", true), "alice@example.com", "y@elsewhere.test", "550 5.7.0 Mail relay denied"},
		{"both: network missing", "domain_addresses", both, client("127.0.0.5", "h", "alice", true), "alice@example.com", "y@elsewhere.test", "550 5.7.0 Mail relay denied"},
		{"TLS required", "domain_addresses", withTLS, client("127.0.0.2", "h", "", false), "alice@example.com", "y@elsewhere.test", "530 5.7.0 Must issue a STARTTLS command first"},
		{"TLS given", "domain_addresses", withTLS, client("127.0.0.2", "h", "", true), "alice@example.com", "y@elsewhere.test", "accept"},
		{"any: external sender with our HELO", "any", netOnly, client("127.0.0.2", "mail.example.com", "", false), "x@elsewhere.test", "y@elsewhere.test", "accept"},
		{"any: external sender, foreign HELO", "any", netOnly, client("127.0.0.2", "localhost", "", false), "x@elsewhere.test", "y@elsewhere.test", "550 5.7.1 Invalid credentials for relay"},
		{"any: AUTH identity domain", "any", both, client("127.0.0.2", "localhost", "app@example.com", true), "x@elsewhere.test", "y@elsewhere.test", "accept"},
		{"null sender, HELO ours", "domain_addresses", netOnly, client("127.0.0.2", "exch.example.com", "", false), "", "y@elsewhere.test", "accept"},
		{"null sender, foreign HELO", "domain_addresses", netOnly, client("127.0.0.2", "localhost", "", false), "", "y@elsewhere.test", "550 5.7.1 Invalid credentials for relay"},
		{"null sender with AUTH", "domain_addresses", both, client("127.0.0.2", "localhost", "alice", true), "", "y@elsewhere.test", "accept"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs := relayRules(t, tt.mode, tt.extra)
			r := checkRcpt(rs, Envelope{Client: tt.client, Sender: tt.sender}, tt.rcpt, nil)
			got := "accept"
			if r.Action == Reject {
				got = r.Reply.String()
			}
			if got != tt.want {
				t.Errorf("got %q (%s), want %q", got, r.Reason, tt.want)
			}
		})
	}
}

// TestOpenRelayBattery: every classic way of sneaking a foreign
// destination past a relay check is refused for an unauthorised client.
func TestOpenRelayBattery(t *testing.T) {
	rs := relayRules(t, "domain_addresses", netOnly)
	outsider := client("127.0.0.66", "h", "", false)
	for _, rcpt := range []string{
		"victim@elsewhere.test",
		"user%elsewhere.test@example.com",
		"user%elsewhere.test@EXAMPLE.com",
		"elsewhere.test!user@example.com",
		`"user@elsewhere.test"@example.com`,
		"@example.com:user@elsewhere.test",
		"user@elsewhere.test.",
		"User@ElseWhere.TEST",
		"user@exаmple.com",        // Cyrillic а
		"user@xn--exmple-4nf.com", // its A-label
		"user@example.com.elsewhere.test",
		"user@example.com.legacy.splitrelay.invalid",
		"user%elsewhere.test",
		"elsewhere.test!user",
		"user@[192.0.2.1]",
		"user@[IPv6:2001:db8::1]",
	} {
		r := checkRcpt(rs, Envelope{Client: outsider, Sender: "noreply@example.com"}, rcpt, nil)
		if r.Action != Reject || r.Reply.Code/100 != 5 {
			t.Errorf("%s: %v %v (%s): not refused", rcpt, r.Action, r.Reply, r.Reason)
		}
	}
	// Ours stay ours.
	for _, rcpt := range []string{"alice@example.com", "Bob@SUB.Example.com.", "postmaster"} {
		if r := checkRcpt(rs, Envelope{Client: outsider, Sender: "x@elsewhere.test"}, rcpt, nil); r.Action == Reject {
			t.Errorf("%s refused: %v (%s)", rcpt, r.Reply, r.Reason)
		}
	}
}

func TestRelayTransactionLimits(t *testing.T) {
	rs, err := loadTestdata(t, "relay.toml")
	if err != nil {
		t.Fatal(err)
	}
	c := client("192.0.2.3", "app.example.com", "", false)
	env := Envelope{Client: c, Sender: "alice@example.com"}
	for i, want := range []string{"accept", "accept", "accept", "452 4.5.3 Your message has too many recipients"} {
		r := checkRcpt(rs, env, "r"+string(rune('a'+i))+"@elsewhere.test", nil)
		got := "accept"
		if r.Action == Reject {
			got = r.Reply.String()
		} else {
			env.Recipients = append(env.Recipients, r.Address)
		}
		if got != want {
			t.Errorf("recipient %d: got %q want %q", i+1, got, want)
		}
	}
	// SIZE= over the limit is refused at RCPT; the real size at end of
	// message.
	big := Envelope{Client: c, Sender: "alice@example.com", SizeParam: 10_000_001}
	if r := checkRcpt(rs, big, "x@elsewhere.test", nil); r.Reply != ReplyTooBig {
		t.Errorf("SIZE over limit: %v", r.Reply)
	}
	d := decide(rs, Envelope{Client: c, Sender: "alice@example.com", Size: 10_000_001, Recipients: []string{"x@elsewhere.test"}})
	if d.Reject == nil || *d.Reject != ReplyTooBig || !d.Relay {
		t.Errorf("real size over limit: %+v", d)
	}
	// Size limits only concern relayed mail.
	if d := decide(rs, Envelope{Client: c, Sender: "x@elsewhere.test", Size: 50_000_000, Recipients: []string{"alice@example.com"}}); d.Reject != nil {
		t.Errorf("inbound mail refused for size")
	}
	// Null sender: one recipient only in a relay transaction.
	nul := Envelope{Client: c, Recipients: []string{"x@elsewhere.test"}}
	if r := checkRcpt(rs, nul, "y@elsewhere.test", nil); r.Reply != ReplyMultiBounce {
		t.Errorf("multi-recipient bounce: %v", r.Reply)
	}
	nul.Recipients = []string{"alice@example.com"}
	if r := checkRcpt(rs, nul, "bob@example.com", nil); r.Action == Reject {
		t.Errorf("multi-recipient inbound bounce refused: %v", r.Reply)
	}
}

func TestSenderRewrite(t *testing.T) {
	rs := relayRules(t, "any", both)
	for _, tt := range []struct {
		c      Client
		sender string
		want   string
	}{
		{client("127.0.0.2", "mail.example.com", "app@example.com", true), "x@elsewhere.test", "postmaster@example.com"},
		{client("127.0.0.2", "printer.example.com", "scanner", true), "x@elsewhere.test", "postmaster@example.com"},
		{client("127.0.0.2", "localhost", "app@example.com", true), "alice@example.com", ""},
		{client("127.0.0.2", "localhost", "app@example.com", true), "", ""},
	} {
		d := decide(rs, Envelope{Client: tt.c, Sender: tt.sender, Recipients: []string{"y@elsewhere.test"}})
		got := ""
		if d.SenderRewritten {
			got = d.Sender
		}
		if got != tt.want || d.Recipients[0].Action == Reject {
			t.Errorf("%+v %q: rewritten to %q (%v), want %q", tt.c, tt.sender, got, d.Recipients[0].Reply, tt.want)
		}
	}
}

// fakeLimiter answers every reservation with ex (or err) and remembers
// what it was asked.
type fakeLimiter struct {
	ex  Exceeded
	err error
	got *Reservation
}

func (f fakeLimiter) Reserve(r Reservation) (Exceeded, error) {
	*f.got = r
	return f.ex, f.err
}

func TestRollingLimits(t *testing.T) {
	rs := relayRules(t, "domain_addresses", netOnly+`
[relay.limits]
user_messages_per_day = 2
user_recipients_per_day = 3
org_recipients_per_day = 10
org_recipients_per_10_minutes = 5`)
	c := client("127.0.0.2", "h", "", false)
	for _, tt := range []struct {
		name     string
		sender   string
		rcpt     string
		ex       Exceeded
		err      error
		want     string
		wantUser string
		wantRcpt string
	}{
		{"within limits", "Alice@Example.COM", "Bob@Bücher.TEST", NotExceeded, nil, "accept", "alice@example.com", "bob@xn--bcher-kva.test"},
		{"user messages", "alice@example.com", "x@elsewhere.test", UserMessages, nil, ReplyUserDaily.String(), "alice@example.com", "x@elsewhere.test"},
		{"unique recipients", "alice@example.com", "x+tag@elsewhere.test", UserRecipients, nil, ReplyUserDaily.String(), "alice@example.com", "x+tag@elsewhere.test"},
		{"unregistered sender: organisation only", "noreply@example.com", "x@elsewhere.test", NotExceeded, nil, "accept", "", "x@elsewhere.test"},
		{"org peak", "noreply@example.com", "x@elsewhere.test", OrgPeak, nil, ReplyOrgPeak.String(), "", "x@elsewhere.test"},
		{"org day", "noreply@example.com", "x@elsewhere.test", OrgDay, nil, ReplyOrgDaily.String(), "", "x@elsewhere.test"},
		{"store unavailable", "alice@example.com", "x@elsewhere.test", NotExceeded, errors.New("redis: connection refused"), ReplyTryLater.String(), "alice@example.com", "x@elsewhere.test"},
	} {
		var got Reservation
		r := checkRcpt(rs, Envelope{Client: c, Sender: tt.sender}, tt.rcpt, fakeLimiter{tt.ex, tt.err, &got})
		res := "accept"
		if r.Action == Reject {
			res = r.Reply.String()
		}
		if res != tt.want {
			t.Errorf("%s: got %q (%s) want %q", tt.name, res, r.Reason, tt.want)
		}
		if got.User != tt.wantUser || got.Rcpt != tt.wantRcpt || got.Limits.UserRecipientsPerDay != 3 || got.Tx != "" {
			t.Errorf("%s: reserved %+v", tt.name, got)
		}
	}
	// Recipients in our domains are never reserved.
	var got Reservation
	checkRcpt(rs, Envelope{Client: c, Sender: "alice@example.com"}, "bob@example.com", fakeLimiter{UserMessages, nil, &got})
	if got.Rcpt != "" {
		t.Errorf("internal recipient reserved: %+v", got)
	}
}

func TestDryRunRelayWarning(t *testing.T) {
	rs := relayRules(t, "domain_addresses", netOnly)
	if strings.Contains(rs.Summary(), "relay refusals too") {
		t.Error("warning without dry run")
	}
	dry, err := Load("d.toml", []byte("[milter]\ndry_run = true\n[organization]\ndomains = [\"example.com\"]\n[relay]\nnetworks = []\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(dry.Summary(), "relay refusals too") {
		t.Errorf("dry run with a relay policy does not warn: %s", dry.Summary())
	}
}
