package rules

import (
	"testing"
)

func TestDirectoryResolve(t *testing.T) {
	rs, err := loadTestdata(t, "directory.toml")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		rcpt      string
		want      string // outcome
		account   Account
		canonical string
	}{
		{"alice@example.com", "accept +copy archive", User, ""},
		{"ALICE@example.com", "accept +copy archive", User, ""},
		{"alice+news@example.com", "accept +copy archive", User, "alice@example.com"},
		{"alice-news@example.com", "accept +copy archive", User, "alice@example.com"},
		{"alice+a-b@example.com", "accept +copy archive", User, "alice@example.com"},
		{"+alice@example.com", "route legacy", Unrecognized, ""},
		{"carol+x@example.com", "route legacy +copy archive", Unrecognized, ""},
		{"al@example.com", "accept +copy archive", User, "alice@example.com"},
		{"Al+x@Example.NET", "accept +copy archive", User, "alice@example.com"},
		{"alice@example.net", "accept +copy archive", User, "alice@example.com"},
		{"alice@example-alias.org", "accept +copy archive", User, "alice@example.com"},
		{"alice@sub.example.net", "route legacy", Unrecognized, ""},
		{"nobody@example.net", "route legacy", Unrecognized, ""},
		{"boss@example.com", "accept", User, "bob@example.com"},
		{"team@example.com", "accept", Group, "sales@example.com"},
		{"team+x@example.net", "accept", Group, "sales@example.com"},
		{"es@example.com", "accept", User, "erin@example.com"},
		{"Erin.Smith@example.com", "accept", User, "erin@example.com"},
		{"frank@example.com", "accept", User, ""},
		{"JÖRG+x@bücher.example", "accept", User, "jörg@xn--bcher-kva.example"},
	}
	for _, tt := range tests {
		t.Run(tt.rcpt, func(t *testing.T) {
			d := decide(rs, Envelope{Sender: "x@elsewhere.test", HeaderFrom: "x@elsewhere.test", Recipients: []string{tt.rcpt}})
			r := d.Recipients[0]
			if got := outcome(r); got != tt.want || r.Account != tt.account || r.Canonical != tt.canonical {
				t.Errorf("got %s, %v, canonical %q; want %s, %v, %q (%s)", got, r.Account, r.Canonical, tt.want, tt.account, tt.canonical, r.Reason)
			}
		})
	}
}

// TestDirectoryAddressFilter: an address: filter matches the account's
// aliases, subaddresses and alias-domain forms.
func TestDirectoryAddressFilter(t *testing.T) {
	rs, err := loadTestdata(t, "directory.toml")
	if err != nil {
		t.Fatal(err)
	}
	for rcpt, want := range map[string]string{
		"bob@example.com":        "accept +copy archive",
		"boss@example.com":       "accept +copy archive",
		"bob+x@example.net":      "accept +copy archive",
		"alice@example.com":      "accept",
		"bobby@example.com":      "route legacy",
		"bob@bücher.example":     "route legacy",
		"boss+y@example.com":     "accept +copy archive",
		"BOSS@EXAMPLE-ALIAS.org": "accept +copy archive",
	} {
		d := decide(rs, Envelope{Sender: "x@example.com", HeaderFrom: "x@example.com", Recipients: []string{rcpt}})
		if got := outcome(d.Recipients[0]); got != want {
			t.Errorf("%s: got %s, want %s", rcpt, got, want)
		}
	}
}

func TestDirectoryDelimiterOff(t *testing.T) {
	rs, err := Load("x.toml", []byte(`
[organization]
domains = ["example.com"]
[directory]
recipient_delimiter = ""
users = ["alice@example.com", "bob+x@example.com"]
`), nil)
	if err != nil {
		t.Fatal(err)
	}
	for addr, want := range map[string]Account{"alice@example.com": User, "alice+x@example.com": Unrecognized, "bob+x@example.com": User, "bob@example.com": Unrecognized} {
		if got, _ := rs.Directory().Resolve(addr[:len(addr)-len("@example.com")], "example.com"); got != want {
			t.Errorf("%s: got %v, want %v", addr, got, want)
		}
	}
}

// TestGoogleExports checks what the sample exports of testdata/rules/google
// put in the directory.
func TestGoogleExports(t *testing.T) {
	rs, err := loadTestdata(t, "google.toml")
	if err != nil {
		t.Fatal(err)
	}
	d := rs.Directory()
	for _, tt := range []struct {
		addr, canonical string
		account         Account
	}{
		{"alice@example.com", "alice@example.com", User},
		{"bob@example.com", "bob@example.com", User},
		{"chloe@bücher.example", "chloe@xn--bcher-kva.example", User},
		{"davey@example.com", "dave@example.com", User},
		{"d.smith@example.com", "dave@example.com", User},
		{"erin@example.com", "erin@example.com", User},
		{"al@example.com", "alice@example.com", User},
		{"sales@example.com", "sales@example.com", Group},
		{"ventes@example.com", "sales@example.com", Group},
		{"all@example.com", "all@example.com", Group},
		{"support@example.com", "support@example.com", Group},
		{"infos@example.com", "news@example.com", Group},
		{"partner@example.com", "", Unrecognized},
	} {
		a, err := parseAddress(tt.addr)
		if err != nil {
			t.Fatal(err)
		}
		if acc, c := d.Resolve(a.Local, a.ASCII); acc != tt.account || c != tt.canonical {
			t.Errorf("%s: got %v %q, want %v %q", tt.addr, acc, c, tt.account, tt.canonical)
		}
	}
	for _, tt := range []struct {
		group, member string
		want          bool
	}{
		{"sales@example.com", "alice@example.com", true},
		{"sales@example.com", "partner@elsewhere.test", true},
		{"all@example.com", "bob@example.com", true},
		{"support@example.com", "dave@example.com", true},
		{"support@example.com", "alice@example.com", false},
		{"news@example.com", "erin@example.com", true},
	} {
		if got := d.Member(tt.group, tt.member); got != tt.want {
			t.Errorf("Member(%s, %s) = %v", tt.group, tt.member, got)
		}
	}
}
