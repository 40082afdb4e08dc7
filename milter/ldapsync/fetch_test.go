package ldapsync

import (
	"testing"

	"github.com/go-ldap/ldap/v3"
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
