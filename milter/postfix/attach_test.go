package postfix

import (
	"bytes"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/splitrelay/splitrelay/rules"
)

// siteDir is a private copy of testdata/postfix/site: Debian's main.cf with
// OpenDKIM, a hash: transport table, relay_domains, virtual_alias_maps, and
// master.cf with a submission service.
func siteDir(t *testing.T) (etc string) {
	t.Helper()
	return siteDirMain(t, "main.cf")
}

// siteDirMain is siteDir with main.cf copied from the file main of
// testdata/postfix/site.
func siteDirMain(t *testing.T, main string) (etc string) {
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
	for f, from := range map[string]string{"main.cf": main, "master.cf": "master.cf"} {
		data, err := os.ReadFile(filepath.Join(goldenDir, "site", from))
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

// postconfH is "postconf -h NAME" of etc. postconf's warnings (a site
// that sets a parameter twice gets "overriding earlier entry" on every
// run) are not failures here.
func postconfH(t *testing.T, etc, name string) string {
	t.Helper()
	return strings.TrimSpace(pc(t, etc, "-h", name))
}

// pc runs postconf -c etc with args and returns its standard output,
// ignoring its warnings.
func pc(t *testing.T, etc string, args ...string) string {
	t.Helper()
	out, err := exec.Command("postconf", append([]string{"-c", etc}, args...)...).Output()
	if err != nil {
		t.Fatalf("postconf -c %s %s: %v\n%s", etc, strings.Join(args, " "), err, exitStderr(err))
	}
	return string(out)
}

func exitStderr(err error) []byte {
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.Stderr
	}
	return nil
}

func backups(t *testing.T, etc string) int {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(etc, "*.cf.splitrelay-*"))
	return len(m)
}

func stat(t *testing.T, file string) os.FileInfo {
	t.Helper()
	st, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// settings is "postconf -n" of etc without config_directory (which -c
// sets): what main.cf means, whatever its layout.
func settings(t *testing.T, etc string) string {
	t.Helper()
	var b strings.Builder
	for l := range strings.Lines(pc(t, etc, "-n")) {
		if !strings.HasPrefix(l, "config_directory =") {
			b.WriteString(l)
		}
	}
	return b.String()
}

// Administrators' changes between attaching and detaching.
var (
	// editMain sets a parameter splitrelay does not touch.
	editMain = func(t *testing.T, etc string) { pc(t, etc, "-e", "delay_warning_time = 4h") }
	// editCopies changes the copies of main.cf and master.cf that
	// attaching made (the way back among them).
	editCopies = func(t *testing.T, etc string) {
		copies, _ := filepath.Glob(filepath.Join(etc, "*.cf.splitrelay-*"))
		for _, c := range copies {
			f, err := os.OpenFile(c, os.O_APPEND|os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			f.WriteString("# changed\n")
			f.Close()
		}
	}
	// editMaster switches on the smtps service.
	editMaster = func(t *testing.T, etc string) {
		pc(t, etc, "-M", "smtps/inet = smtps inet n - y - - smtpd")
		pc(t, etc, "-P", "smtps/inet/smtpd_tls_wrappermode = yes")
	}
)

// TestAttachDetach: the script merges into a realistic site, records what
// it added, takes away what it no longer needs, and --detach gives back
// main.cf and master.cf byte for byte, from the copies made before the
// first attach, when nobody else changed them since. A file the
// administrator changed in between loses only what splitrelay added and
// keeps the change; detach says that it is not restored, what postconf
// cannot keep (multi-line values come back on one line) and where the copy
// is. The multi-line site (testdata/postfix/site/multiline.main.cf) spreads
// the lists we touch over continuation lines with comments and blank lines
// inside, and sets smtpd_milters and smtpd_tls_auth_only twice.
func TestAttachDetach(t *testing.T) {
	access := "check_recipient_access regexp:MAPS/recipient_access"
	debian := map[string]string{
		"smtpd_milters":                "inet:localhost:8891, { unix:splitrelay/milter.sock, default_action=tempfail, protocol=6 }",
		"non_smtpd_milters":            "$smtpd_milters", // holds ours through $smtpd_milters
		"transport_maps":               "regexp:MAPS/transport, hash:${config_directory}/transport",
		"smtpd_relay_restrictions":     access + ", permit_mynetworks permit_sasl_authenticated defer_unauth_destination",
		"smtpd_recipient_restrictions": access,
		"mynetworks":                   "127.0.0.0/8 [::ffff:127.0.0.0]/104 [::1]/128",
		"smtpd_tls_auth_only":          "yes",
		"virtual_alias_maps":           "hash:${config_directory}/virtual",
		"relay_domains":                "example.com, example.org",
	}
	multiline := map[string]string{
		"smtpd_milters":                "inet:localhost:8891, inet:localhost:7357, { unix:splitrelay/milter.sock, default_action=tempfail, protocol=6 }",
		"non_smtpd_milters":            "$smtpd_milters",
		"transport_maps":               "regexp:MAPS/transport, hash:${config_directory}/transport hash:${config_directory}/transport.old",
		"smtpd_relay_restrictions":     access + ", permit_mynetworks permit_sasl_authenticated defer_unauth_destination",
		"smtpd_recipient_restrictions": access + ", permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination",
		"smtpd_tls_auth_only":          "yes",
	}
	notRestored := func(f string) []string {
		w := []string{"# WARNING: " + f + " is not restored from its copy from before attaching: it was changed after splitrelay attached.",
			"# WARNING: " + f + " as it was before attaching: ETC/" + f + ".splitrelay-"}
		if f == "main.cf" {
			w = append(w, "# WARNING: main.cf: postconf takes out only what splitrelay added and writes each parameter splitrelay touched on one line: a value that spanned several lines comes back joined (same meaning")
		}
		return w
	}
	both := []string{"main.cf", "master.cf"}
	tests := []struct {
		name string
		main string            // the site's main.cf in testdata/postfix/site
		want map[string]string // after attaching; MAPS is the map directory
		// edit is the administrator's change after the last attach, or
		// with between after the first (a later attach then finds it)
		edit    func(*testing.T, string)
		between bool
		edited  string // the file edit changes
		// stopped: an earlier first attach stopped half way (it left
		// the new record behind), so there is no way back to restore
		stopped bool
		// exact: the edited file comes back as the site's with the edit,
		// byte for byte, even through postconf (no multi-line values)
		exact    bool
		restored []string // the files detach restores from the copies
		warn     []string // in what detach prints; ETC is the configuration directory
	}{
		{name: "debian site", main: "main.cf", want: debian, restored: both},
		{name: "multi-line values", main: "multiline.main.cf", want: multiline, restored: both},
		{name: "debian site main.cf edited", main: "main.cf", want: debian,
			edit: editMain, edited: "main.cf", exact: true, restored: []string{"master.cf"}, warn: notRestored("main.cf")},
		{name: "multi-line values main.cf edited", main: "multiline.main.cf", want: multiline,
			edit: editMain, edited: "main.cf", restored: []string{"master.cf"}, warn: notRestored("main.cf")},
		{name: "multi-line values main.cf edited between attach runs", main: "multiline.main.cf", want: multiline,
			edit: editMain, between: true, edited: "main.cf", restored: []string{"master.cf"}, warn: notRestored("main.cf")},
		{name: "multi-line values master.cf edited", main: "multiline.main.cf", want: multiline,
			edit: editMaster, edited: "master.cf", exact: true, restored: []string{"main.cf"}, warn: notRestored("master.cf")},
		{name: "debian site after a stopped attach", main: "main.cf", want: debian, stopped: true, warn: []string{
			"# WARNING: main.cf is not restored from its copy from before attaching: splitrelay recorded no copy of it from before attaching.",
			"# WARNING: master.cf is not restored from its copy from before attaching: splitrelay recorded no copy of it from before attaching."}},
		{name: "debian site copies changed", main: "main.cf", want: debian, edit: editCopies, warn: []string{
			"# WARNING: main.cf is not restored from its copy from before attaching: its copy from before attaching is missing or was changed.",
			"# WARNING: master.cf is not restored from its copy from before attaching: its copy from before attaching is missing or was changed."}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			etc := siteDirMain(t, tc.main)
			mapDir := filepath.Join(filepath.Dir(etc), "maps")
			files := []string{filepath.Join(etc, "main.cf"), filepath.Join(etc, "master.cf")}
			orig := map[string][]byte{}
			for _, f := range files {
				orig[filepath.Base(f)], _ = os.ReadFile(f)
				// an owner and mode of the site's own, which postconf
				// does not keep (it writes a new file) and a restored
				// copy does
				if err := os.Chmod(f, 0o640); err != nil {
					t.Fatal(err)
				}
				if os.Geteuid() == 0 {
					if err := os.Chown(f, 65534, 65534); err != nil {
						t.Fatal(err)
					}
				}
			}
			origStat := map[string]os.FileInfo{}
			for _, f := range files {
				origStat[filepath.Base(f)] = stat(t, f)
			}
			edit := func() {
				tc.edit(t, etc)
				age(t, files[0])
			}

			if tc.stopped {
				if err := os.MkdirAll(mapDir, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(mapDir, RecordFile+".new"), nil, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			out := apply(t, etc, relayRuleset(true), false)
			if tc.stopped && !strings.Contains(out, "# an earlier run of this script stopped half way") {
				t.Errorf("attach does not say that an earlier run stopped:\n%s", out)
			}
			if !strings.Contains(out, "smtpd_tls_auth_only = yes (was: no)") {
				t.Errorf("the scalar change is not shown with its old value:\n%s", out)
			}
			if n := backups(t, etc); n != 2 {
				t.Errorf("%d backups, want main.cf and master.cf", n)
			}
			for name, w := range tc.want {
				w = strings.ReplaceAll(w, "MAPS", mapDir)
				if got := postconfH(t, etc, name); got != w {
					t.Errorf("after attach %s = %q, want %q", name, got, w)
				}
			}
			for _, p := range []string{"smtpd_recipient_limit", "message_size_limit", "smtpd_data_restrictions"} {
				if n := pc(t, etc, "-n", p); n != "" {
					t.Errorf("attach set %s", n)
				}
			}

			// Again: nothing changes, no new backups.
			sum := fileSum(t, files...)
			if out := apply(t, etc, relayRuleset(true), false); !strings.Contains(out, "nothing to change") {
				t.Errorf("second run:\n%s", out)
			}
			if fileSum(t, files...) != sum || backups(t, etc) != 2 {
				t.Error("a second run changed main.cf or master.cf, or made backups")
			}

			if tc.edit != nil && tc.between {
				edit()
			}
			// Route "lab" deleted, require_smtp_auth switched off: its
			// service goes, smtpd_tls_auth_only gets back the site's "no".
			rs := relayRuleset(false)
			delete(rs.Routes, "lab")
			rs.RouteNames = []string{"archive", "legacy", "smtps", "split"}
			out = apply(t, etc, rs, false)
			if got := postconfH(t, etc, "smtpd_tls_auth_only"); got != "no" {
				t.Errorf("smtpd_tls_auth_only = %q after require_smtp_auth went, want the site's no", got)
			}
			if m := pc(t, etc, "-M"); strings.Contains(m, "splitrelay-lab") || !strings.Contains(m, "splitrelay-legacy") {
				t.Errorf("master.cf after deleting route lab:\n%s", m)
			}
			if tc.between && !strings.Contains(out, "# main.cf was changed since splitrelay last attached") {
				t.Errorf("the attach after the edit does not say that main.cf was changed:\n%s", out)
			}
			if tc.edit != nil && !tc.between {
				edit()
			}

			// Detach with the script the last attach left next to the
			// record (what the package's postrm names).
			b, err := exec.Command("sh", filepath.Join(mapDir, RecordFile+".detach.sh")).CombinedOutput()
			out = string(b)
			if err != nil {
				t.Fatalf("detach.sh: %v\n%s", err, out)
			}
			age(t, files[0])
			for _, w := range tc.warn {
				if w = strings.ReplaceAll(w, "ETC", etc); !strings.Contains(out, w) {
					t.Errorf("detach does not say %q:\n%s", w, out)
				}
			}
			if tc.warn == nil && strings.Contains(out, "WARNING") {
				t.Errorf("detach warns:\n%s", out)
			}
			// What the site has now: its files, with the administrator's
			// edit made on a copy of them.
			want := orig
			if tc.edit != nil {
				pristine := siteDirMain(t, tc.main)
				tc.edit(t, pristine)
				age(t, filepath.Join(pristine, "main.cf"))
				want = map[string][]byte{}
				for f := range orig {
					want[f], _ = os.ReadFile(filepath.Join(pristine, f))
				}
				if !tc.exact {
					if got, w := settings(t, etc), settings(t, pristine); got != w {
						t.Errorf("main.cf after detach means:\n%s\nwant:\n%s", got, w)
					}
				}
			}
			for _, file := range files {
				f := filepath.Base(file)
				got, _ := os.ReadFile(file)
				if f != tc.edited || tc.exact {
					if !bytes.Equal(got, want[f]) {
						t.Errorf("%s after detach differs:\n%s", f, got)
					}
					if slices.Contains(tc.restored, f) != strings.Contains(out, "# "+f+": restored from "+etc+"/"+f+".splitrelay-") {
						t.Errorf("detach restored %s: %v, want %v:\n%s", f, !slices.Contains(tc.restored, f), slices.Contains(tc.restored, f), out)
					}
					if slices.Contains(tc.restored, f) {
						st, want := stat(t, file), origStat[f]
						if st.Mode() != want.Mode() || owner(st) != owner(want) {
							t.Errorf("%s restored with mode %v owner %s, want %v %s", f, st.Mode(), owner(st), want.Mode(), owner(want))
						}
					}
					continue
				}
				// through postconf: nothing of ours left, every comment
				// of the site's still there
				if bytes.Contains(got, []byte("splitrelay")) {
					t.Errorf("%s after detach still names splitrelay:\n%s", f, got)
				}
				for l := range strings.Lines(string(orig[f])) {
					if strings.HasPrefix(strings.TrimSpace(l), "#") && !strings.Contains(string(got), l) {
						t.Errorf("%s after detach lost the comment %q", f, l)
					}
				}
			}
			if _, err := os.Stat(mapDir); !os.IsNotExist(err) {
				t.Errorf("map directory left after detach: %v", err)
			}
		})
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
