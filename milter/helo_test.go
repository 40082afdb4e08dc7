package milter

import (
	"strings"
	"sync"
	"testing"
	"time"

	gomilter "github.com/d--j/go-milter"
)

const heloConfig = `
[organization]
domains = ["example.com"]
[relay]
require_network = true
log_bad_helo = %ON%
networks = [{ cidr = "192.0.2.0/24", description = "servers", enabled = true }]
`

// heloCounter is an Observer that counts BadHelo calls.
type heloCounter struct {
	nopObserver
	mu sync.Mutex
	n  map[string]int
}

func (h *heloCounter) BadHelo(label string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.n[label]++
}

// TestBadHeloLogged: a relay client's bad HELO is logged and counted once
// per SMTP session, at its first relay recipient, only with log_bad_helo;
// mail to our domains and real names are not concerned.
func TestBadHeloLogged(t *testing.T) {
	for _, tc := range []struct {
		name  string
		on    bool
		helo  string
		rcpts []string // two transactions of the same session, these recipients each
		want  string   // the label logged and counted, "" for none
	}{
		{"localhost relaying", true, "localhost", []string{"x@elsewhere.test"}, "localhost"},
		{"gateway's own name", true, "GW.example.com", []string{"x@elsewhere.test"}, "gateway_name"},
		{"refused relay counts too", true, "localhost", []string{"x@elsewhere.test"}, "localhost"},
		{"real name", true, "app01.example.com", []string{"x@elsewhere.test"}, ""},
		{"mail to our domains only", true, "localhost", []string{"bob@example.com"}, ""},
		{"switched off", false, "localhost", []string{"x@elsewhere.test"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			on := map[bool]string{true: "true", false: "false"}[tc.on]
			c, buf, srv := startServerWith(t, strings.ReplaceAll(heloConfig, "%ON%", on))
			obs := &heloCounter{n: map[string]int{}}
			srv.SetObserver(obs)
			addr := "192.0.2.7"
			if tc.name == "refused relay counts too" {
				addr = "198.51.100.7"
			}
			macros := gomilter.NewMacroBag()
			macros.Set(gomilter.MacroMTAFQDN, "gw.example.com")
			s, err := c.Session(macros)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if _, err := s.Conn("client.test", gomilter.FamilyInet, 4321, addr); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Helo(tc.helo); err != nil {
				t.Fatal(err)
			}
			for range 2 {
				if _, err := s.Mail("app@example.com", ""); err != nil {
					t.Fatal(err)
				}
				for _, r := range tc.rcpts {
					if _, err := s.Rcpt(r, ""); err != nil {
						t.Fatal(err)
					}
				}
				if err := s.Abort(nil); err != nil {
					t.Fatal(err)
				}
			}
			s.Close()
			time.Sleep(50 * time.Millisecond) // the server logs after answering
			logged := strings.Count(buf.String(), `msg="relay client HELO is not a real name"`)
			obs.mu.Lock()
			counted := obs.n[tc.want]
			total := 0
			for _, n := range obs.n {
				total += n
			}
			obs.mu.Unlock()
			if tc.want == "" {
				if logged != 0 || total != 0 {
					t.Errorf("logged %d, counted %v; want nothing\n%s", logged, obs.n, buf)
				}
				return
			}
			if logged != 1 || counted != 1 || total != 1 || !strings.Contains(buf.String(), "reason="+tc.want) {
				t.Errorf("logged %d, counted %v; want once as %s\n%s", logged, obs.n, tc.want, buf)
			}
		})
	}
}
