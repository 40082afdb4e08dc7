package e2e

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/splitrelay/splitrelay/milter"
	"github.com/splitrelay/splitrelay/milter/postfixtest"
)

// The relay clients of seed 003 that cannot run here (Exchange, Domino,
// GroupWise, macOS Server, Qmail) as recorded dialogues
// (testdata/clients/*.smtp, see dialogue_test.go), replayed against the
// gateway by a scripted SMTP client from their own loopback addresses.
// Every reply is asserted, then what reached the sinks, with the ESMTP
// parameters the products send.

// dialogueGateways are the two relay policies the dialogues run against.
// As in the relay suite, Postfix is made permissive after attaching (every
// loopback client may relay at Postfix's level): the refusals the
// dialogues expect are the milter's, with Google's replies.
var dialogueGateways = map[string]string{
	// Servers trusted by their address, as the seed's Exchange 2007/2010
	// (smart host authentication "None"), Domino, GroupWise and Qmail
	// set-ups are.
	"network": `
[relay]
allowed_senders = "domain_addresses"
require_network = true
log_bad_helo = true
networks = [
  { cidr = "127.0.0.21", description = "Exchange 2010 Hub", enabled = true },
  { cidr = "127.0.0.22", description = "Exchange Edge", enabled = true },
  { cidr = "127.0.0.23", description = "Domino", enabled = true },
  { cidr = "127.0.0.24", description = "GroupWise GWIA", enabled = true },
  { cidr = "127.0.0.25", description = "qmail", enabled = true },
]
[relay.limits]
recipients_per_message = 3
`,
	// Servers that authenticate: SMTP AUTH over TLS, registered users.
	"auth": `
[relay]
allowed_senders = "registered_users"
require_network = false
require_smtp_auth = true
require_tls = true
`,
}

func dialogueFiles() ([]string, error) {
	return filepath.Glob(filepath.Join("..", "..", "..", "testdata", "clients", "*.smtp"))
}

func TestE2EClientDialogues(t *testing.T) {
	files, err := dialogueFiles()
	if err != nil || len(files) == 0 {
		t.Fatalf("no dialogues: %v", err)
	}
	byGateway := map[string][]*dialogue{}
	for _, f := range files {
		d, err := parseDialogue(f)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := dialogueGateways[d.gateway]; !ok {
			t.Fatalf("%s: unknown gateway %q", f, d.gateway)
		}
		byGateway[d.gateway] = append(byGateway[d.gateway], d)
	}
	for _, gw := range slices.Sorted(func(yield func(string) bool) {
		for k := range byGateway {
			if !yield(k) {
				return
			}
		}
	}) {
		t.Run(gw, func(t *testing.T) {
			s := newSite(t, nil, relayBase+dialogueGateways[gw])
			if gw == "auth" {
				dc := postfixtest.StartDovecot(t, map[string]string{"alice@example.com": "s3cret", "app@example.com": "app-pw"})
				s.pf.EnableSASL(t, dc)
			}
			want := map[string][]string{}
			for _, d := range byGateway[gw] {
				t.Run(strings.TrimSuffix(filepath.Base(d.name), ".smtp"), func(t *testing.T) {
					tr, err := d.replay(s.pf.Addr())
					if err != nil {
						t.Errorf("%v\ntranscript:\n%s", err, tr)
					}
				})
				for sink, rcpts := range d.land {
					want[sink] = append(want[sink], rcpts...)
				}
			}
			got := s.landed(want)
			for _, d := range byGateway[gw] {
				for _, a := range d.args {
					checkRcptArgs(t, d.name, got[a.sink], a)
				}
			}
			if gw == "network" {
				// GroupWise's pause did not cost it its milter session.
				s.d.waitLog(t, 5*time.Second, `msg="relay recipient accepted"`, "client_addr=127.0.0.24", "rcpt=gw-a@elsewhere.test")
				// Domino saying HELO localhost: logged once, as log_bad_helo asks.
				s.d.waitLog(t, 5*time.Second, `msg="relay client HELO is not a real name"`, "client_addr=127.0.0.23", "helo=localhost", "reason=localhost")
				checkGatewayTimeouts(t, s.pf)
			}
		})
	}
}

// checkGatewayTimeouts reads the timeouts on a relay client's path in the
// gateway's Postfix as configured (postconf -x: expanded, so
// ${stress?{10}:{300}}s reads 300s outside stress) and checks them against
// GroupWise's 5-minute command timeout and the milter's read timeout: the
// client may pause up to smtpd_timeout between commands, and the milter
// must wait longer than that.
func checkGatewayTimeouts(t *testing.T, pf *postfixtest.Instance) {
	t.Helper()
	const groupwise = 5 * time.Minute
	for _, p := range []struct {
		name     string
		min, max time.Duration // the value must be in [min, max)
	}{
		{"smtpd_timeout", groupwise, milter.ReadTimeout},          // per client command
		{"smtpd_starttls_timeout", groupwise, milter.ReadTimeout}, // the TLS handshake
		{"milter_content_timeout", 0, milter.ReadTimeout},         // Postfix waiting for our answer to content
		{"milter_command_timeout", 0, milter.ReadTimeout},         // ... to other commands
	} {
		v := strings.TrimSpace(pf.Postconf(t, "-x", "-h", p.name))
		if v != "" && v[len(v)-1] >= '0' && v[len(v)-1] <= '9' {
			v += "s" // postconf(5): a time without unit is in seconds
		}
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Errorf("%s = %q: %v", p.name, v, err)
			continue
		}
		t.Logf("gateway %s = %v", p.name, d)
		if d < p.min || d >= p.max {
			t.Errorf("gateway %s = %v, want at least %v and below the milter read timeout %v", p.name, d, p.min, p.max)
		}
	}
}

// checkRcptArgs checks that the recipient reached the sink with the ESMTP
// parameters the client gave (Postfix passes NOTIFY and ORCPT on).
func checkRcptArgs(t *testing.T, file string, msgs []postfixtest.Message, a rcptArgs) {
	t.Helper()
	for _, m := range msgs {
		for _, r := range m.Rcpts {
			if r.Addr != a.rcpt {
				continue
			}
			for _, p := range a.params {
				k, v, _ := strings.Cut(p, "=")
				if got, ok := r.Param(k); !ok || !strings.EqualFold(got, v) {
					t.Errorf("%s: %s reached %s with %q, want %s", file, a.rcpt, a.sink, r.Args, p)
				}
			}
			return
		}
	}
	t.Errorf("%s: %s did not reach %s", file, a.rcpt, a.sink)
}
