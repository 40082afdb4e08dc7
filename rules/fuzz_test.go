package rules

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzLoad: no input may panic the loader, and every problem it reports
// names the file.
func FuzzLoad(f *testing.F) {
	cases, _ := filepath.Glob(filepath.Join(testdataDir, "*.toml"))
	for _, c := range cases {
		data, err := os.ReadFile(c)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		rs, err := Load("f.toml", data, mapFiles{"users.txt": "a@example.com\n"})
		if err != nil {
			es, ok := err.(Errors)
			if !ok || len(es) == 0 {
				t.Fatalf("error %T %v is not a non-empty Errors", err, err)
			}
			for _, e := range es {
				if e.File == "" || e.Msg == "" {
					t.Fatalf("problem without file or message: %#v", e)
				}
			}
			return
		}
		_ = rs.Summary()
	})
}

type mapFiles map[string]string

func (m mapFiles) ReadFile(name string) ([]byte, error) {
	if s, ok := m[name]; ok {
		return []byte(s), nil
	}
	return nil, os.ErrNotExist
}

// FuzzDecide: any envelope gets a decision per recipient, and a routed
// recipient's namespace address is one the RCPT check refuses from
// clients.
func FuzzDecide(f *testing.F) {
	rs, err := loadTestdata(f, "valid.toml")
	if err != nil {
		f.Fatal(err)
	}
	f.Add("x@partner.example", "Boss <boss@example.com>", "carol@example.com")
	f.Add("", "=?utf-8?q?J=C3=B6rg?= <j@bücher.example>", "jörg@BÜCHER.example")
	f.Add("@a:b@c", "<<<@>>>", `"a@b"@example.com.`)
	f.Add("x", "a@example.org, b@x", "bob%x.legacy.splitrelay.invalid@example.com")
	f.Fuzz(func(t *testing.T, sender, from, rcpt string) {
		d := decide(rs, Envelope{Sender: sender, HeaderFrom: from, Recipients: []string{rcpt}})
		if len(d.Recipients) != 1 {
			t.Fatalf("%d decisions for one recipient", len(d.Recipients))
		}
		r := d.Recipients[0]
		if r.Action == Reroute {
			routed := rs.RoutedAddress(r.Addr, r.Route, r.Choice)
			if !strings.HasSuffix(routed, "."+r.Route.Name+".splitrelay.invalid") {
				t.Fatalf("routed %q -> %q", rcpt, routed)
			}
			if !rs.inNamespace(routed) {
				t.Fatalf("routed form %q accepted from a client", routed)
			}
		}
		if r.Action == Reject && r.Reply.Code/100 != 5 {
			t.Fatalf("reject with %v", r.Reply)
		}
		if r.Action == Defer && r.Reply.Code/100 != 4 {
			t.Fatalf("tempfail with %v", r.Reply)
		}
	})
}

// FuzzStoredForm is a differential target: whenever the engine reads an
// RCPT argument itself (Canonical, used when the MTA does not send
// {rcpt_addr}, and by explain), it must read the address Postfix stores
// (the tok822 model), and the routed form must carry that same address;
// the deletion form must internalise to Postfix's original recipient.
// Seeds: testdata/address/postfix.tsv (measured on Postfix 3.7.11).
func FuzzStoredForm(f *testing.F) {
	for _, row := range measuredAddresses(f) {
		f.Add(row.raw)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		a, ok := Canonical(raw)
		if !ok {
			return
		}
		local, domain, mok := tok822(raw)
		if !mok {
			t.Fatalf("Canonical(%q) = %q, but Postfix would not store it as one address", raw, a.Stored())
		}
		if a.Local != local || !strings.EqualFold(a.Domain, domain) {
			t.Fatalf("Canonical(%q): local %q domain %q; Postfix stores local %q domain %q", raw, a.Local, a.Domain, local, domain)
		}
		// The routed address, once Postfix has internalised it and the
		// generic map has taken the namespace off, is the stored one.
		rs := fuzzRules(t)
		routed := rs.RoutedAddress(a, rs.Routes["legacy"], Choice{})
		rl, rd, rok := tok822(routed)
		if !rok || rl != local || rd != domain+".legacy."+rs.Milter.RoutingSuffix {
			t.Fatalf("routed %q reads back as %q@%q, want %q@%q.legacy...", routed, rl, rd, local, domain)
		}
	})
}

var fuzzRulesOnce struct {
	rs *Ruleset
}

func fuzzRules(t *testing.T) *Ruleset {
	if fuzzRulesOnce.rs == nil {
		rs, err := Load("f.toml", []byte("[organization]\ndomains = [\"example.com\"]\n[routes.legacy]\nhost = \"192.0.2.1\"\n"), nil)
		if err != nil {
			t.Fatal(err)
		}
		fuzzRulesOnce.rs = rs
	}
	return fuzzRulesOnce.rs
}
