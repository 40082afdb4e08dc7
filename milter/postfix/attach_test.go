package postfix

import (
	"bytes"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/splitrelay/splitrelay/rules"
)

// siteDir is a private copy of testdata/postfix/site: Debian's main.cf with
// OpenDKIM, a hash: transport table, relay_domains, virtual_alias_maps, and
// master.cf with a submission service.
func siteDir(t *testing.T) (etc string) {
	t.Helper()
	for _, tool := range []string{"postconf", "postmap"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("SPLITRELAY_E2E") == "1" {
				t.Fatalf("%s not installed (SPLITRELAY_E2E=1: may not skip)", tool)
			}
			t.Skipf("%s not installed", tool)
		}
	}
	etc = filepath.Join(t.TempDir(), "etc")
	if err := os.Mkdir(etc, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"main.cf", "master.cf"} {
		data, err := os.ReadFile(filepath.Join(goldenDir, "site", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(etc, f), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	age(t, filepath.Join(etc, "main.cf"))
	return etc
}

// relayRuleset is exampleRuleset with a [relay] policy.
func relayRuleset(auth bool) *rules.Ruleset {
	rs := exampleRuleset()
	rs.Relay = &rules.Relay{RequireNetwork: true, RequireSMTPAuth: auth,
		Networks: []rules.Network{{Prefix: netip.MustParsePrefix("192.0.2.0/28"), Enabled: true}}}
	return rs
}

// apply generates the script (attach or detach) for rs and runs it on etc,
// returning what it printed.
func apply(t *testing.T, etc string, rs *rules.Ruleset, detach bool) string {
	t.Helper()
	mapDir := filepath.Join(filepath.Dir(etc), "maps")
	c, err := Generate(rs, Options{MapDir: mapDir, ConfigDir: etc})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(mapDir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, m := range c.Maps {
		if err := os.WriteFile(m.Path, []byte(m.Content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var script bytes.Buffer
	if detach {
		err = c.WriteDetach(&script)
	} else {
		err = c.WritePostconf(&script)
	}
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("sh", "-c", script.String()).CombinedOutput()
	if err != nil {
		t.Fatalf("script: %v\n%s\n%s", err, out, script.String())
	}
	age(t, filepath.Join(etc, "main.cf"))
	return string(out)
}

func postconfH(t *testing.T, etc, name string) string {
	t.Helper()
	return strings.TrimSpace(run(t, "postconf", "-c", etc, "-h", name))
}

func backups(t *testing.T, etc string) int {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(etc, "*.cf.splitrelay-*"))
	return len(m)
}

// TestAttachDetach: the script merges into a realistic site, records what
// it added, takes away what it no longer needs, and --detach gives back
// main.cf and master.cf byte for byte.
func TestAttachDetach(t *testing.T) {
	etc := siteDir(t)
	mapDir := filepath.Join(filepath.Dir(etc), "maps")
	origMain, _ := os.ReadFile(filepath.Join(etc, "main.cf"))
	origMaster, _ := os.ReadFile(filepath.Join(etc, "master.cf"))

	out := apply(t, etc, relayRuleset(true), false)
	if !strings.Contains(out, "smtpd_tls_auth_only = yes (was: no)") {
		t.Errorf("the scalar change is not shown with its old value:\n%s", out)
	}
	if n := backups(t, etc); n != 2 {
		t.Errorf("%d backups, want main.cf and master.cf", n)
	}
	access := "check_recipient_access regexp:" + mapDir + "/recipient_access"
	want := map[string]string{
		"smtpd_milters":                "inet:localhost:8891, { unix:splitrelay/milter.sock, default_action=tempfail, protocol=6 }",
		"non_smtpd_milters":            "$smtpd_milters", // holds ours through $smtpd_milters
		"transport_maps":               "regexp:" + mapDir + "/transport, hash:${config_directory}/transport",
		"smtpd_relay_restrictions":     access + ", permit_mynetworks permit_sasl_authenticated defer_unauth_destination",
		"smtpd_recipient_restrictions": access,
		"mynetworks":                   "127.0.0.0/8 [::ffff:127.0.0.0]/104 [::1]/128",
		"smtpd_tls_auth_only":          "yes",
		"virtual_alias_maps":           "hash:${config_directory}/virtual",
		"relay_domains":                "example.com, example.org",
	}
	for name, w := range want {
		if got := postconfH(t, etc, name); got != w {
			t.Errorf("after attach %s = %q, want %q", name, got, w)
		}
	}
	for _, p := range []string{"smtpd_recipient_limit", "message_size_limit", "smtpd_data_restrictions"} {
		if n := run(t, "postconf", "-c", etc, "-n", p); n != "" {
			t.Errorf("attach set %s", n)
		}
	}

	// Again: nothing changes, no new backups.
	files := []string{filepath.Join(etc, "main.cf"), filepath.Join(etc, "master.cf")}
	sum := fileSum(t, files...)
	if out := apply(t, etc, relayRuleset(true), false); !strings.Contains(out, "nothing to change") {
		t.Errorf("second run:\n%s", out)
	}
	if fileSum(t, files...) != sum || backups(t, etc) != 2 {
		t.Error("a second run changed main.cf or master.cf, or made backups")
	}

	// Route "lab" deleted, require_smtp_auth switched off: its service
	// goes, smtpd_tls_auth_only gets back the site's "no".
	rs := relayRuleset(false)
	delete(rs.Routes, "lab")
	rs.RouteNames = []string{"archive", "legacy", "smtps", "split"}
	apply(t, etc, rs, false)
	if got := postconfH(t, etc, "smtpd_tls_auth_only"); got != "no" {
		t.Errorf("smtpd_tls_auth_only = %q after require_smtp_auth went, want the site's no", got)
	}
	if m := run(t, "postconf", "-c", etc, "-M"); strings.Contains(m, "splitrelay-lab") || !strings.Contains(m, "splitrelay-legacy") {
		t.Errorf("master.cf after deleting route lab:\n%s", m)
	}

	// Detach with the script the last attach left next to the record (what
	// the package's postrm names): byte for byte what the site had.
	if out, err := exec.Command("sh", filepath.Join(mapDir, RecordFile+".detach.sh")).CombinedOutput(); err != nil {
		t.Fatalf("detach.sh: %v\n%s", err, out)
	}
	gotMain, _ := os.ReadFile(files[0])
	gotMaster, _ := os.ReadFile(files[1])
	if !bytes.Equal(gotMain, origMain) {
		t.Errorf("main.cf after detach differs:\n%s", gotMain)
	}
	if !bytes.Equal(gotMaster, origMaster) {
		t.Errorf("master.cf after detach differs:\n%s", gotMaster)
	}
	if _, err := os.Stat(mapDir); !os.IsNotExist(err) {
		t.Errorf("map directory left after detach: %v", err)
	}
}

// TestScriptsShellcheck runs shellcheck, when installed, on the attach,
// detach and warnings scripts.
func TestScriptsShellcheck(t *testing.T) {
	if _, err := exec.LookPath("shellcheck"); err != nil {
		t.Skip("shellcheck not installed")
	}
	c, err := Generate(relayRuleset(true), Options{})
	if err != nil {
		t.Fatal(err)
	}
	for name, write := range map[string]func(*bytes.Buffer) error{
		"attach":   func(b *bytes.Buffer) error { return c.WritePostconf(b) },
		"detach":   func(b *bytes.Buffer) error { return c.WriteDetach(b) },
		"warnings": func(b *bytes.Buffer) error { return c.WriteWarnings(b) },
	} {
		var b bytes.Buffer
		if err := write(&b); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command("shellcheck", "-s", "sh", "-")
		cmd.Stdin = &b
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("%s script: shellcheck: %v\n%s", name, err, out)
		}
	}
}

// TestAttachIDNRelayDomains: the U-label form of an IDN domain of ours
// joins relay_domains where its A-label form is listed (Postfix 3.7 does
// not match one against the other), and leaves again on detach.
func TestAttachIDNRelayDomains(t *testing.T) {
	for _, tc := range []struct{ relayDomains, want string }{
		{"example.com, example.org, xn--bcher-kva.test", "example.com, example.org, xn--bcher-kva.test, bücher.test"},
		{"example.com, example.org", "example.com, example.org"}, // not a relay domain here: left alone
		{"example.com, bücher.test, xn--bcher-kva.test", "example.com, bücher.test, xn--bcher-kva.test"},
	} {
		etc := siteDir(t)
		run(t, "postconf", "-c", etc, "-e", "relay_domains = "+tc.relayDomains)
		age(t, filepath.Join(etc, "main.cf"))
		before, _ := os.ReadFile(filepath.Join(etc, "main.cf"))
		rs := exampleRuleset()
		rs.Domains = append(rs.Domains, "xn--bcher-kva.test")
		apply(t, etc, rs, false)
		if got := postconfH(t, etc, "relay_domains"); got != tc.want {
			t.Errorf("relay_domains %q after attach = %q, want %q", tc.relayDomains, got, tc.want)
		}
		apply(t, etc, rs, true)
		if after, _ := os.ReadFile(filepath.Join(etc, "main.cf")); !bytes.Equal(after, before) {
			t.Errorf("relay_domains %q: main.cf after detach differs:\n%s", tc.relayDomains, after)
		}
	}
}
