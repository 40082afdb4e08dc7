package rules

import "testing"

// BenchmarkDecide measures one routing decision for a typical message
// (four recipients: a user, an unrecognized address, a group, an external
// Address). The product target is far below Postfix's own milter cost of
// 2-4 ms CPU per message (POSTFIX.md).
func BenchmarkDecide(b *testing.B) {
	rs, err := loadTestdata(b, "valid.toml")
	if err != nil {
		b.Fatal(err)
	}
	env := Envelope{
		Sender:     "bob@partner.example",
		HeaderFrom: "Bob Partner <bob@partner.example>",
		Recipients: []string{"alice@example.com", "carol@example.com", "sales@example.com", "x@elsewhere.test"},
	}
	b.ReportAllocs()
	for b.Loop() {
		decide(rs, env)
	}
}
