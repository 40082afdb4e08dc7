package postfix

import (
	"bytes"
	"crypto/sha256"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// postfixDir is siteDir with some settings of its own, so that the
// script must merge, not replace.
func postfixDir(t *testing.T) (etc string) {
	t.Helper()
	etc = siteDir(t)
	run(t, "postconf", "-c", etc, "-e",
		"smtpd_milters = inet:127.0.0.1:8891",
		"transport_maps = hash:/etc/postfix/transport",
		"smtpd_recipient_restrictions = permit_mynetworks, reject_unauth_destination")
	age(t, filepath.Join(etc, "main.cf"))
	return etc
}

// age makes a file look a minute old: postconf -h pauses for seconds when
// it reads a main.cf modified a moment ago.
func age(t *testing.T, file string) {
	t.Helper()
	old := time.Now().Add(-time.Minute)
	if err := os.Chtimes(file, old, old); err != nil {
		t.Fatal(err)
	}
}

// run runs a command and returns its standard output; it fails the test
// when the command fails or says anything on standard error.
func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil || stderr.Len() > 0 {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String()
}

func fileSum(t *testing.T, files ...string) [32]byte {
	t.Helper()
	h := sha256.New()
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		h.Write(data)
	}
	return [32]byte(h.Sum(nil))
}

func TestPostconfScript(t *testing.T) {
	etc := postfixDir(t)
	mapDir := filepath.Join(filepath.Dir(etc), "maps")
	c, err := Generate(exampleRuleset(), Options{MapDir: mapDir, ConfigDir: etc})
	if err != nil {
		t.Fatal(err)
	}
	var script bytes.Buffer
	if err := c.WritePostconf(&script); err != nil {
		t.Fatal(err)
	}
	scriptFile := filepath.Join(filepath.Dir(etc), "apply.sh")
	if err := os.WriteFile(scriptFile, script.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	cfFiles := []string{filepath.Join(etc, "main.cf"), filepath.Join(etc, "master.cf")}

	// Without the map files the script refuses to touch anything.
	before := fileSum(t, cfFiles...)
	if out, err := exec.Command("sh", scriptFile).CombinedOutput(); err == nil || !strings.Contains(string(out), "is missing") {
		t.Fatalf("script ran without map files: %v\n%s", err, out)
	}
	if fileSum(t, cfFiles...) != before {
		t.Fatal("script changed the configuration although the map files are missing")
	}

	if err := os.Mkdir(mapDir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, m := range c.Maps {
		if err := os.WriteFile(m.Path, []byte(m.Content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	run(t, "sh", scriptFile)
	first := fileSum(t, cfFiles...)
	age(t, cfFiles[0])
	run(t, "sh", scriptFile)
	if fileSum(t, cfFiles...) != first {
		t.Error("running the script a second time changed main.cf or master.cf")
	}
	age(t, cfFiles[0])

	wantMain := map[string]string{
		"smtpd_milters":                "inet:127.0.0.1:8891, { unix:splitrelay/milter.sock, default_action=tempfail, protocol=6 }",
		"transport_maps":               "regexp:" + mapDir + "/transport, hash:/etc/postfix/transport",
		"smtpd_recipient_restrictions": "check_recipient_access regexp:" + mapDir + "/recipient_access, permit_mynetworks, reject_unauth_destination",
		"smtpd_relay_restrictions":     "check_recipient_access regexp:" + mapDir + "/recipient_access, permit_mynetworks permit_sasl_authenticated defer_unauth_destination",
	}
	for name, want := range wantMain {
		if got := strings.TrimSpace(run(t, "postconf", "-c", etc, "-h", name)); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	n := run(t, "postconf", "-c", etc, "-n")
	for s, want := range map[string]int{"splitrelay/milter.sock": 1, mapDir + "/transport": 1, mapDir + "/recipient_access": 2} {
		if k := strings.Count(n, s); k != want {
			t.Errorf("postconf -n names %s %d times, want %d:\n%s", s, k, want, n)
		}
	}

	var wantP []string
	for _, s := range c.Master {
		m := strings.Fields(run(t, "postconf", "-c", etc, "-M", s.Name))
		want := strings.Fields(s.Line())
		for _, p := range s.Params {
			want = append(want, "-o", p.Name+"="+p.Value)
		}
		if strings.Join(m, " ") != strings.Join(want, " ") {
			t.Errorf("postconf -M %s = %q, want %q", s.Name, m, want)
		}
		for _, p := range s.Params {
			wantP = append(wantP, strings.TrimSpace(s.Name+"/unix/"+p.Name+" = "+p.Value))
		}
	}
	var gotP []string
	for l := range strings.Lines(run(t, "postconf", "-c", etc, "-P")) {
		if strings.HasPrefix(l, ServicePrefix) {
			gotP = append(gotP, strings.TrimSpace(l))
		}
	}
	slices.Sort(gotP) // postconf -P sorts by parameter name
	slices.Sort(wantP)
	if strings.Join(gotP, "\n") != strings.Join(wantP, "\n") {
		t.Errorf("postconf -P:\n%s\nwant:\n%s", strings.Join(gotP, "\n"), strings.Join(wantP, "\n"))
	}
	if k := strings.Count(run(t, "postconf", "-c", etc, "-M"), "\n"+ServicePrefix+"legacy "); k != 1 {
		t.Errorf("master.cf has %d splitrelay-legacy entries, want 1", k)
	}
}

// TestMapsPostmap looks addresses up in the generated tables with
// postmap(1), the way Postfix will.
func TestMapsPostmap(t *testing.T) {
	etc := siteDir(t)
	dir := t.TempDir()
	c, err := Generate(relayRuleset(false), Options{MapDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range c.Maps {
		if err := os.WriteFile(m.Path, []byte(m.Content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		table, key, want string // want "" = not found
	}{
		{"transport", "bob@example.com.legacy.splitrelay.invalid", "splitrelay-legacy:[exchange.corp.example.com]:25"},
		{"transport", "Bob@Example.COM.LEGACY.splitrelay.invalid", "splitrelay-legacy:[exchange.corp.example.com]:25"},
		{"transport", "example.com.legacy.splitrelay.invalid", "splitrelay-legacy:[exchange.corp.example.com]:25"},
		{"transport", "bob@example.com.archive.splitrelay.invalid", "splitrelay-archive:archive.example.net:25"},
		{"transport", "bob@example.com.lab.splitrelay.invalid", "splitrelay-lab:[ipv6:2001:db8::25]:2525"},
		{"transport", "bob@example.com.gone.splitrelay.invalid", "retry:4.3.5 unknown splitrelay route"},
		{"transport", "bob@example.com.p1.split.splitrelay.invalid", "splitrelay-split:[ex1.corp.example.com]:25,[ex2.corp.example.com]:25,[backup.corp.example.com]:2525"},
		{"transport", "bob@example.com.P2.split.splitrelay.invalid", "splitrelay-split:[ex2.corp.example.com]:25,[ex1.corp.example.com]:25,[backup.corp.example.com]:2525"},
		{"transport", "bob@example.com.split.splitrelay.invalid", "splitrelay-split:[ex1.corp.example.com]:25,[ex2.corp.example.com]:25,[backup.corp.example.com]:2525"},
		{"transport", "bob@example.com.p3.split.splitrelay.invalid", "retry:4.3.5 unknown splitrelay host label"},
		{"transport", "bob@example.com.p1s1.split.splitrelay.invalid", "retry:4.3.5 unknown splitrelay host label"},
		{"transport", "bob@example.com.p1.legacy.splitrelay.invalid", "retry:4.3.5 unknown splitrelay host label"},
		{"transport", "bob@example.com.p1s2.smtps.splitrelay.invalid", "splitrelay-smtps:[a.example.org]:465,[c.example.org]:465,[b.example.org]:465"},
		{"transport", "bob@example.com.p1.smtps.splitrelay.invalid", "retry:4.3.5 unknown splitrelay host label"},
		{"generic", "bob@example.com.p2.split.splitrelay.invalid", "bob@example.com"},
		{"generic", "bob@sub.example.com.p1s2.smtps.splitrelay.invalid", "bob@sub.example.com"},
		{"transport", "bob@example.com", ""},
		{"transport", "bob@legacy.example.com", ""},
		{"transport", "bob@example.com.legacy.splitrelay.invalid.example.net", ""},
		{"generic", "bob@example.com.legacy.splitrelay.invalid", "bob@example.com"},
		{"generic", "bob+tag@sub.example.org.lab.splitrelay.invalid", "bob+tag@sub.example.org"},
		{"generic", "bob@example.com.gone.splitrelay.invalid", ""},
		{"generic", "bob@example.com", ""},
		{"recipient_access", "bob@example.com.legacy.splitrelay.invalid", "550 5.1.2 Bad destination system address"},
		{"recipient_access", "bob@example.com.legacy.splitrelay.invalid.", "550 5.1.2 Bad destination system address"},
		{"recipient_access", "postmaster@SplitRelay.Invalid", "550 5.1.2 Bad destination system address"},
		{"recipient_access", "bob@example.com", "DUNNO"},
		{"recipient_access", "Bob@Sub.Example.ORG.", "DUNNO"},
		{"recipient_access", "postmaster", "DUNNO"},
		{"recipient_access", "bob@notsplitrelay.invalid", "OK"},
		{"recipient_access", "victim%elsewhere.test@example.com", "OK"},
		{"recipient_access", "elsewhere.test!victim@example.com", "OK"},
		{"recipient_access", "victim@elsewhere.test@example.com", "OK"},
		{"recipient_access", "victim@example.com.elsewhere.test", "OK"},
		{"recipient_access", "victim@notexample.com", "OK"},
		{"recipient_access", "victim%elsewhere.test", "OK"},
	}
	for _, tc := range tests {
		var stdout, stderr bytes.Buffer
		cmd := exec.Command("postmap", "-c", etc, "-q", tc.key, "regexp:"+filepath.Join(dir, tc.table))
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		if stderr.Len() > 0 {
			t.Errorf("postmap -q %s %s: %s", tc.key, tc.table, stderr.String())
		}
		got := strings.TrimSpace(stdout.String())
		if tc.want == "" && err == nil {
			t.Errorf("%s: %s found %q, want nothing", tc.table, tc.key, got)
		}
		if tc.want != "" && got != tc.want {
			t.Errorf("%s: %s = %q (%v), want %q", tc.table, tc.key, got, err, tc.want)
		}
	}
}
