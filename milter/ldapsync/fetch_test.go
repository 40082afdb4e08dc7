package ldapsync

import (
	"reflect"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/splitrelay/splitrelay/rules"
)

// TestNormDN: the fast path for plain DNs gives what parsing gives, and
// DNs that differ only in case and spacing compare equal.
func TestNormDN(t *testing.T) {
	for _, tt := range []struct{ a, b string }{
		{"CN=Alice Martin,OU=People,DC=corp,DC=example,DC=com", "cn=alice martin, ou=people, dc=corp, dc=example, dc=com"},
		{"cn=bob,ou=people,dc=example,dc=com", "CN = Bob , OU=People,DC=Example,DC=Com"},
		{`CN=Smith\, John,OU=People,DC=example,DC=com`, `cn=smith\, john,ou=people,dc=example,dc=com`},
		{"cn=x+uid=y,dc=example,dc=com", "CN=X+UID=Y,DC=example,DC=com"},
	} {
		if normDN(tt.a) != normDN(tt.b) {
			t.Errorf("normDN(%q) = %q, normDN(%q) = %q", tt.a, normDN(tt.a), tt.b, normDN(tt.b))
		}
	}
	// The fast path agrees with the parser.
	for _, s := range []string{"CN=Alice Martin,OU=People,DC=corp,DC=example,DC=com", "cn = bob , dc=example"} {
		dn, err := ldap.ParseDN(s)
		if err != nil {
			t.Fatal(err)
		}
		var parsed string
		for i, rdn := range dn.RDNs {
			if i > 0 {
				parsed += ","
			}
			parsed += rdn.Attributes[0].Type + "=" + rdn.Attributes[0].Value
		}
		if got, want := normDN(s), normDN(parsed); got != want {
			t.Errorf("fast %q, parsed %q", got, want)
		}
	}
}

// TestSnapshotRoundTrip: what save writes, load reads back.
func TestSnapshotRoundTrip(t *testing.T) {
	snap := &Snapshot{Time: time.Unix(1700000000, 0).UTC(), URL: "ldap://x", BaseDN: "dc=x",
		Entries: rules.Entries{Users: []string{"a@example.com", `q"uote@example.com`}, Aliases: map[string]string{"b@example.com": "a@example.com"},
			Groups: map[string][]string{"g@example.com": {"a@example.com"}, "e@example.com": nil}}}
	s := New(rules.LDAP{URL: "ldap://x", BaseDN: "dc=x"}, t.TempDir(), logger(t), nil, nil)
	if err := s.save(snap); err != nil {
		t.Fatal(err)
	}
	got, err := s.load()
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.Entries.Users, snap.Entries.Users) || !reflect.DeepEqual(got.Entries.Aliases, snap.Entries.Aliases) ||
		len(got.Entries.Groups) != 2 || got.Entries.Groups["g@example.com"][0] != "a@example.com" || !got.Time.Equal(snap.Time) || got.URL != snap.URL {
		t.Errorf("got %+v, want %+v", got, snap)
	}
}
