package e2e

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/splitrelay/splitrelay/milter/postfixtest"
	"github.com/splitrelay/splitrelay/milter/slapdtest"
)

// e2eDirectoryConfig: the directory comes from LDAP (refreshed every
// second), with example.net an alias domain of example.com.
const e2eDirectoryConfig = `
[milter]
listen = "{{LISTEN}}"

[log]
level = "debug"

[organization]
domains = ["example.com"]
domain_aliases = { "example.net" = "example.com" }

[directory]
recipient_delimiter = "+"

[directory.ldap]
url = "{{LDAP_URL}}"
ca_file = "{{LDAP_CA}}"
bind_dn = "{{LDAP_BIND}}"
password_file = "{{LDAP_PASSWORD}}"
base_dn = "{{LDAP_BASE}}"
page_size = 2
refresh = "1s"

[state]
dir = "{{STATE}}"

{{ROUTES}}

[[split_delivery]]
name = "Unknown addresses stay on the legacy server"
messages = ["inbound", "internal"]
accounts = ["unrecognized"]
route = "legacy"
`

// newDirectorySite is newSite with example.net, the alias domain, accepted
// by Postfix and delivered to the primary system like example.com.
func newDirectorySite(t *testing.T, config string) *site {
	t.Helper()
	postfixtest.Require(t)
	s := &site{t: t, bin: binary(t), sinks: map[string]*postfixtest.Sink{}}
	s.gmail = postfixtest.StartSink(t, "gmail")
	s.internet = postfixtest.StartSink(t, "internet")
	legacy := postfixtest.StartSink(t, "legacy")
	s.sinks["legacy"] = legacy
	routes := fmt.Sprintf("[routes.legacy]\nhost = \"127.0.0.1\"\nport = %d\n", legacy.Port)
	s.pf = postfixtest.Start(t, postfixtest.Options{
		RelayDomains: []string{"example.com", "example.net"},
		Transport: map[string]string{
			"example.com":    s.gmail.NextHop(),
			"example.net":    s.gmail.NextHop(),
			"elsewhere.test": s.internet.NextHop(),
		},
	})
	s.network, s.addr = "unix", filepath.Join(s.pf.QueueDir, "splitrelay", "milter.sock")
	config = strings.ReplaceAll(config, "{{ROUTES}}", routes)
	config = strings.ReplaceAll(config, "{{LISTEN}}", "unix:"+s.addr)
	s.cfgPath = filepath.Join(s.pf.Dir, "splitrelay.toml")
	s.writeConfig(config)
	s.attach()
	s.d = s.start()
	return s
}

// count is how many log lines have every part.
func (d *daemon) count(parts ...string) int {
	n := 0
	for _, line := range strings.Split(d.logs(), "\n") {
		if containsAll(line, parts) {
			n++
		}
	}
	return n
}

// waitCount waits until at least n log lines have every part.
func (d *daemon) waitCount(t *testing.T, timeout time.Duration, n int, parts ...string) {
	t.Helper()
	for deadline := time.Now().Add(timeout); d.count(parts...) < n; {
		if time.Now().After(deadline) {
			t.Fatalf("fewer than %d log lines with %q in:\n%s", n, parts, d.logs())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestE2EDirectory: through the real Postfix, a subaddress, an alias (from
// LDAP) and an alias domain reach the primary system with the address as
// written; a user removed from LDAP moves to the legacy route after the
// next refresh; a restart while LDAP is down routes from the snapshot.
func TestE2EDirectory(t *testing.T) {
	ldap := slapdtest.Start(t)
	people := "ou=people," + slapdtest.BaseDN
	ldap.Add(people, map[string][]string{"objectClass": {"organizationalUnit"}, "ou": {"people"}})
	for cn, mail := range map[string][]string{"alice": {"alice@example.com", "al@example.com"}, "bob": {"bob@example.com"}, "carol": {"carol@example.com"}} {
		ldap.Add("cn="+cn+","+people, map[string][]string{"objectClass": {"inetOrgPerson"}, "cn": {cn}, "sn": {cn}, "mail": mail})
	}
	config := strings.NewReplacer("{{LDAP_URL}}", ldap.URL, "{{LDAP_CA}}", ldap.CAFile, "{{LDAP_BIND}}", slapdtest.ReaderDN,
		"{{LDAP_PASSWORD}}", ldap.PasswordFile, "{{LDAP_BASE}}", slapdtest.BaseDN, "{{STATE}}", t.TempDir()).Replace(e2eDirectoryConfig)
	s := newDirectorySite(t, config)
	s.d.waitLog(t, 15*time.Second, `msg="directory synced"`, "users=3")

	s.send(postfixtest.Mail{
		From:       "someone@elsewhere.test",
		HeaderFrom: "Someone <someone@elsewhere.test>",
		To:         []string{"alice+news@example.com", "al@example.com", "Alice@example.net", "bob@example.com", "zed@example.com"},
	})
	s.landed(map[string][]string{
		"gmail":  {"alice+news@example.com", "al@example.com", "Alice@example.net", "bob@example.com"},
		"legacy": {"zed@example.com"},
	})

	// bob leaves the primary system: after the next sync, mail for him
	// goes to the legacy server.
	ldap.Delete("cn=bob," + people)
	n := s.d.count(`msg="directory synced"`)
	s.d.waitCount(t, 20*time.Second, n+2, `msg="directory synced"`, "users=2")
	s.send(postfixtest.Mail{
		From:       "someone@elsewhere.test",
		HeaderFrom: "Someone <someone@elsewhere.test>",
		To:         []string{"bob@example.com", "carol+x@example.net"},
	})
	s.landed(map[string][]string{
		"gmail":  {"alice+news@example.com", "al@example.com", "Alice@example.net", "bob@example.com", "carol+x@example.net"},
		"legacy": {"zed@example.com", "bob@example.com"},
	})

	// The daemon restarts while LDAP is down: it routes with the snapshot
	// of the last good sync.
	ldap.Stop()
	s.d.stop()
	s.d = s.start()
	s.d.waitLog(t, 15*time.Second, `msg="directory restored from snapshot"`, "users=2")
	s.send(postfixtest.Mail{
		From:       "someone@elsewhere.test",
		HeaderFrom: "Someone <someone@elsewhere.test>",
		To:         []string{"carol@example.com", "bob@example.com"},
	})
	s.landed(map[string][]string{
		"gmail":  {"alice+news@example.com", "al@example.com", "Alice@example.net", "bob@example.com", "carol+x@example.net", "carol@example.com"},
		"legacy": {"zed@example.com", "bob@example.com", "bob@example.com"},
	})
	s.d.waitLog(t, 15*time.Second, `msg="directory sync failed; keeping the directory in use"`)
}
