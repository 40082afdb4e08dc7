package rules

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// measured is one row of testdata/address/postfix.tsv.
type measured struct {
	raw, setting, rcptAddr, original, delivered string
}

func measuredAddresses(tb testing.TB) []measured {
	tb.Helper()
	f, err := os.Open(filepath.Join("..", "testdata", "address", "postfix.tsv"))
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	var rows []measured
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "#") || sc.Text() == "" {
			continue
		}
		c := strings.Split(sc.Text(), "\t")
		if len(c) != 5 {
			tb.Fatalf("postfix.tsv: %q: want 5 tab-separated columns", sc.Text())
		}
		rows = append(rows, measured{c[0], c[1], c[2], c[3], c[4]})
	}
	return rows
}

// TestMeasuredAddresses replays what Postfix 3.7.11 was measured to do
// with each RCPT form: the engine decides on the address Postfix delivers
// (given {rcpt_addr}), the deletion names the original recipient record,
// and the test's own tok822 model agrees with Postfix.
func TestMeasuredAddresses(t *testing.T) {
	rs, err := Load("m.toml", []byte(`
[organization]
domains = ["acme.test", "bücher.test"]
[directory]
users = ["alice@acme.test"]
[routes.legacy]
host = "192.0.2.1"
[[split_delivery]]
name = "unknown to legacy"
messages = ["inbound", "internal"]
accounts = ["unrecognized"]
route = "legacy"
`), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range measuredAddresses(t) {
		t.Run(m.raw+"|"+m.setting, func(t *testing.T) {
			// The model reads the original record as Postfix does.
			if internal, _, _, ok := tok822Internal(m.raw, true); !ok || internal != m.original {
				t.Errorf("model: original %q (%v), Postfix stored %q", internal, ok, m.original)
			}
			// Deleting Original(raw) matches that record.
			if internal, _, _, ok := tok822Internal("<"+Original(m.raw)+">", false); !ok || internal != m.original {
				t.Errorf("deletion %q internalises to %q, the record is %q", Original(m.raw), internal, m.original)
			}
			// The decision is on the delivered address, case kept.
			tx := rs.Begin(Client{}, "x@elsewhere.test", 0, nil)
			tx.Rcpt(RcptIn{Raw: m.raw, Stored: m.rcptAddr})
			r := tx.End(Message{}).Recipients[0]
			if !r.parsed {
				t.Fatalf("not decided: %v %s", r.Action, r.Reason)
			}
			if got := r.Addr.Local + "@" + r.Addr.Domain; got != m.delivered {
				t.Errorf("decided on %q, Postfix delivers %q", got, m.delivered)
			}
		})
	}
}
