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
