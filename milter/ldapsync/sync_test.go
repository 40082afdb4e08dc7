package ldapsync

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/splitrelay/splitrelay/milter/slapdtest"
	"github.com/splitrelay/splitrelay/rules"
)

const people = "ou=people," + slapdtest.BaseDN

// populate writes the test directory: users in the OpenLDAP style (mail)
// and the Active Directory style (proxyAddresses), more of them than the
// reader may get without paging, and nested groups with a cycle.
func populate(s *slapdtest.Server) {
	s.Add(people, map[string][]string{"objectClass": {"organizationalUnit"}, "ou": {"people"}})
	s.Add("ou=groups,"+slapdtest.BaseDN, map[string][]string{"objectClass": {"organizationalUnit"}, "ou": {"groups"}})
	user := func(cn string, attrs map[string][]string) {
		a := map[string][]string{"objectClass": {"inetOrgPerson", "splitrelayMailbox"}, "cn": {cn}, "sn": {cn}}
		for k, v := range attrs {
			a[k] = v
		}
		s.Add("cn="+cn+","+people, a)
	}
	user("alice", map[string][]string{"mail": {"alice@example.com", "al@example.com"}})
	user("bob", map[string][]string{"proxyAddresses": {"smtp:robert@example.com", "SMTP:Bob@Example.com", "X500:/o=corp/cn=bob", "sip:bob@example.com"}})
	user("carol", map[string][]string{"mail": {"carol@example.com"}})
	user("dave", map[string][]string{"mail": {"dave@example.com"}})
	user("legacy", map[string][]string{"description": {"no mail: not on the primary system"}})
	group := func(cn string, mail []string, members ...string) {
		a := map[string][]string{"objectClass": {"groupOfNames", "splitrelayMailbox"}, "cn": {cn}, "member": members}
		if mail != nil {
			a["mail"] = mail
		}
		s.Add("cn="+cn+",ou=groups,"+slapdtest.BaseDN, a)
	}
	group("inner", nil, "cn=carol,"+people, "cn=sales,ou=groups,"+slapdtest.BaseDN)
	group("sales", []string{"sales@example.com", "ventes@example.com"}, "cn=alice,"+people, "CN=Inner, OU=Groups, DC=example, DC=com")
}

const configFmt = `[organization]
domains = ["example.com"]
[directory]
users = ["static@example.com"]
[directory.ldap]
url = %q
ca_file = %q
bind_dn = %q
password_file = %q
base_dn = %q
page_size = 2
refresh = "1s"
timeout = "5s"
[routes.legacy]
host = "legacy.example.org"
[[split_delivery]]
name = "Unknown addresses stay on Exchange"
messages = ["inbound", "internal"]
accounts = ["unrecognized"]
route = "legacy"
[[split_delivery]]
name = "Sales get a copy"
messages = ["inbound"]
accounts = ["users"]
route = "legacy"
also_deliver = true
[split_delivery.envelope]
recipients = ["group:sales@example.com"]
`

type recorder struct {
	mu   sync.Mutex
	dir  *rules.Directory
	oks  []string
	data time.Time
	st   rules.DirectoryStats
}

func (r *recorder) apply(d *rules.Directory) { r.mu.Lock(); r.dir = d; r.mu.Unlock() }
func (r *recorder) DirectorySync(result string, t time.Time, st rules.DirectoryStats) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.oks = append(r.oks, result)
	if result != Failure {
		r.data, r.st = t, st
	}
}

// route decides one inbound recipient with the synced directory.
func (r *recorder) route(t *testing.T, rs *rules.Ruleset, rcpt string) string {
	t.Helper()
	r.mu.Lock()
	d := r.dir
	r.mu.Unlock()
	if d != nil {
		rs = rs.WithDirectory(rs.Directory().Overlay(d))
	}
	tx := rs.Begin(rules.Client{}, "x@elsewhere.test", 0, nil)
	tx.Rcpt(rules.RcptIn{Raw: rcpt})
	x := tx.End(rules.Message{HeaderFrom: "x@elsewhere.test"}).Recipients[0]
	out := x.Account.String()
	if x.Route != nil {
		out += " route " + x.Route.Name
	}
	for _, c := range x.Copies {
		out += " copy " + c.Route.Name
	}
	return out
}

func logger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func load(t *testing.T, url string, s *slapdtest.Server) *rules.Ruleset {
	t.Helper()
	cfg := fmt.Sprintf(configFmt, url, s.CAFile, slapdtest.ReaderDN, s.PasswordFile, slapdtest.BaseDN)
	rs, err := rules.Load("ldap.toml", []byte(cfg), nil)
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

func TestSyncAgainstSlapd(t *testing.T) {
	s := slapdtest.Start(t)
	populate(s)
	state := t.TempDir()
	for _, url := range []string{s.URL, s.LDAPSURL} {
		t.Run(url[:5], func(t *testing.T) {
			rs := load(t, url, s)
			rec := &recorder{}
			sy := New(*rs.LDAP, t.TempDir(), logger(t), rec, rec.apply)
			if !sy.Sync(context.Background()) {
				t.Fatal("sync failed")
			}
			for rcpt, want := range map[string]string{
				"alice@example.com":        "user copy legacy",
				"al+x@example.com":         "user copy legacy",
				"bob@example.com":          "user",
				"ROBERT@example.com":       "user",
				"carol@example.com":        "user copy legacy", // through the nested group without mail
				"dave@example.com":         "user",
				"ventes@example.com":       "group",
				"static@example.com":       "user",
				"legacy@example.com":       "unrecognized route legacy",
				"bob@legacy.example":       "external",
				"x500@example.com":         "unrecognized route legacy",
				"nobody+sales@example.com": "unrecognized route legacy",
			} {
				if got := rec.route(t, rs, rcpt); got != want {
					t.Errorf("%s: got %q, want %q", rcpt, got, want)
				}
			}
			if rec.st.Users != 4 || rec.st.Groups != 1 || rec.st.Aliases != 3 {
				t.Errorf("stats %+v, want 4 users, 1 group, 3 aliases", rec.st)
			}
		})
	}

	// Changes in LDAP change routing after the next sync; slapd down keeps
	// the last directory; a restart with slapd down routes from the
	// snapshot.
	rs := load(t, s.URL, s)
	rec := &recorder{}
	sy := New(*rs.LDAP, state, logger(t), rec, rec.apply)
	if err := sy.Restore(); !NoSnapshot(err) {
		t.Fatalf("Restore before any sync: %v, want no snapshot", err)
	}
	if !sy.Sync(context.Background()) {
		t.Fatal("sync failed")
	}
	s.Add("cn=erin,"+people, map[string][]string{"objectClass": {"inetOrgPerson"}, "cn": {"erin"}, "sn": {"erin"}, "mail": {"erin@example.com"}})
	s.Delete("cn=dave," + people)
	s.Replace("cn=sales,ou=groups,"+slapdtest.BaseDN, "member", "cn=erin,"+people)
	if got := rec.route(t, rs, "erin@example.com"); got != "unrecognized route legacy" {
		t.Errorf("erin before the sync: %s", got)
	}
	if !sy.Sync(context.Background()) {
		t.Fatal("second sync failed")
	}
	for rcpt, want := range map[string]string{
		"erin@example.com":  "user copy legacy",
		"dave@example.com":  "unrecognized route legacy",
		"alice@example.com": "user",
	} {
		if got := rec.route(t, rs, rcpt); got != want {
			t.Errorf("after changes, %s: got %q, want %q", rcpt, got, want)
		}
	}

	s.Stop()
	if sy.Sync(context.Background()) {
		t.Fatal("sync with slapd stopped succeeded")
	}
	if got := rec.route(t, rs, "erin@example.com"); got != "user copy legacy" {
		t.Errorf("slapd stopped: erin %s, want the last directory kept", got)
	}
	if oks := rec.oks; len(oks) != 3 || oks[0] != Success || oks[2] != Failure {
		t.Errorf("observed syncs %v, want ok, ok, failed", oks)
	}

	restarted := &recorder{}
	sy2 := New(*rs.LDAP, state, logger(t), restarted, restarted.apply)
	if err := sy2.Restore(); err != nil {
		t.Fatalf("Restore with slapd down: %v", err)
	}
	if sy2.Sync(context.Background()) {
		t.Fatal("sync with slapd stopped succeeded")
	}
	if got := restarted.route(t, rs, "erin@example.com"); got != "user copy legacy" {
		t.Errorf("restart with slapd down: erin %s, want routed from the snapshot", got)
	}
	if _, err := os.Stat(filepath.Join(state, SnapshotFile)); err != nil {
		t.Error(err)
	}

	s.Restart()
	if !sy2.Sync(context.Background()) {
		t.Fatal("sync after slapd restarted failed")
	}
}

// TestSyncNeedsPaging: the reader gets at most SizeLimit entries without
// paging, so this proves the sync pages (page_size 2 above); and a wrong
// CA or password fails the sync instead of emptying the directory.
func TestSyncFailures(t *testing.T) {
	s := slapdtest.Start(t)
	populate(s)
	rs := load(t, s.URL, s)
	for name, mod := range map[string]func(c *rules.LDAP){
		"wrong CA": func(c *rules.LDAP) { c.CAFile = "/etc/ssl/certs/ca-certificates.crt" },
		"wrong password": func(c *rules.LDAP) {
			c.PasswordFile = filepath.Join(t.TempDir(), "pw")
			os.WriteFile(c.PasswordFile, []byte("nope"), 0o600)
		},
		"bad filter": func(c *rules.LDAP) { c.UserFilter = "(&(objectClass=person)" },
		"bad base":   func(c *rules.LDAP) { c.BaseDN = "dc=nowhere,dc=test" },
	} {
		t.Run(name, func(t *testing.T) {
			cfg := *rs.LDAP
			mod(&cfg)
			if _, err := Fetch(context.Background(), &cfg); err == nil {
				t.Error("Fetch succeeded")
			} else {
				t.Log(err)
			}
		})
	}
}

// TestServerNeedsPaging: the reader gets at most SizeLimit entries from a
// search that is not paged, so the syncs above, which read more users than
// that, prove the sync pages.
func TestServerNeedsPaging(t *testing.T) {
	s := slapdtest.Start(t)
	populate(s)
	rs := load(t, s.URL, s)
	c, err := dial(rs.LDAP)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Bind(slapdtest.ReaderDN, slapdtest.ReaderPassword); err != nil {
		t.Fatal(err)
	}
	req := ldap.NewSearchRequest(slapdtest.BaseDN, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false, rs.LDAP.UserFilter, nil, nil)
	if _, err := c.Search(req); !ldap.IsErrorWithCode(err, ldap.LDAPResultSizeLimitExceeded) {
		t.Fatalf("search without paging: %v, want size limit exceeded", err)
	}
	e, err := Fetch(context.Background(), rs.LDAP)
	if err != nil {
		t.Fatal(err)
	}
	if len(e.Users) <= slapdtest.SizeLimit {
		t.Fatalf("%d users, want more than %d", len(e.Users), slapdtest.SizeLimit)
	}
}
