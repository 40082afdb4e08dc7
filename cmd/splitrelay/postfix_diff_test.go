package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/splitrelay/splitrelay/milter/postfix"
	"github.com/splitrelay/splitrelay/milter/postfixtest"
)

// TestPostfixDiffAndDetach: on a copy of the realistic site
// (testdata/postfix/site), --format diff prints exactly the change that the
// postconf script then makes, --detach --format diff exactly the way back,
// and attach then detach leaves main.cf and master.cf byte for byte as
// they were. Needs postconf (the Postfix package), not a running Postfix.
func TestPostfixDiffAndDetach(t *testing.T) {
	postfixtest.Require(t)
	dir := t.TempDir()
	etc, maps := filepath.Join(dir, "etc"), filepath.Join(dir, "maps")
	if err := os.Mkdir(etc, 0o755); err != nil {
		t.Fatal(err)
	}
	orig := map[string][]byte{}
	for _, f := range []string{"main.cf", "master.cf"} {
		data, err := os.ReadFile(filepath.Join("../../testdata/postfix/site", f))
		if err != nil {
			t.Fatal(err)
		}
		orig[f] = data
		if err := os.WriteFile(filepath.Join(etc, f), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	age := func() {
		old := time.Now().Add(-time.Minute)
		os.Chtimes(filepath.Join(etc, "main.cf"), old, old)
		os.Chtimes(filepath.Join(etc, "master.cf"), old, old)
	}
	age()
	config := filepath.Join(testdataDir, "example.toml")
	args := []string{"postfix", "-c", config, "--postfix-config-dir", etc, "--map-dir", maps}
	snapshot := func() map[string][]byte {
		m := map[string][]byte{}
		for _, f := range []string{"main.cf", "master.cf"} {
			m[f], _ = os.ReadFile(filepath.Join(etc, f))
		}
		return m
	}
	// diffOf is the diff part (from the first "--- ") of --format diff
	diffOf := func(out string) string {
		if i := strings.Index(out, "\n--- "); i >= 0 {
			return out[i+1:]
		}
		return ""
	}
	wantDiff := func(before, after map[string][]byte, what string) string {
		var b bytes.Buffer
		for _, f := range []string{"main.cf", "master.cf"} {
			name := filepath.Join(etc, f)
			postfix.WriteDiff(&b, name, name+" ("+what+")", before[f], after[f])
		}
		return b.String()
	}
	sh := func(script string) string {
		cmd := exec.Command("sh", "-c", script)
		cmd.Env = append(os.Environ(), "PATH="+os.Getenv("PATH")+":/usr/sbin:/sbin")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("script: %v\n%s", err, out)
		}
		age()
		return string(out)
	}

	code, planned, stderr := runCmd(append(args, "--format", "diff")...)
	if code != 0 {
		t.Fatalf("--format diff: exit %d: %s", code, stderr)
	}
	if !bytes.Equal(snapshot()["main.cf"], orig["main.cf"]) {
		t.Fatal("--format diff changed main.cf")
	}
	if !strings.Contains(planned, "# WARNING: master.cf service submission/inet sets its own smtpd_milters") {
		t.Errorf("no warning about the submission service:\n%s", planned)
	}
	code, script, stderr := runCmd(append(args, "--format", "postconf")...)
	if code != 0 {
		t.Fatalf("--format postconf: exit %d: %s", code, stderr)
	}
	out := sh(script)
	attached := snapshot()
	if got, want := diffOf(planned), wantDiff(orig, attached, "attaching"); got != want || want == "" {
		t.Errorf("--format diff printed:\n%s\nthe script changed:\n%s", got, want)
	}
	if !strings.Contains(out, "copied main.cf and master.cf") {
		t.Errorf("no backup said:\n%s", out)
	}

	code, plannedBack, stderr := runCmd(append(args, "--detach", "--format", "diff")...)
	if code != 0 {
		t.Fatalf("--detach --format diff: exit %d: %s", code, stderr)
	}
	code, detach, stderr := runCmd(append(args, "--detach", "--format", "postconf")...)
	if code != 0 {
		t.Fatalf("--detach --format postconf: exit %d: %s", code, stderr)
	}
	sh(detach)
	back := snapshot()
	if got, want := diffOf(plannedBack), wantDiff(attached, back, "detaching"); got != want {
		t.Errorf("--detach --format diff printed:\n%s\ndetaching changed:\n%s", got, want)
	}
	for f, data := range orig {
		if !bytes.Equal(back[f], data) {
			t.Errorf("%s after attach and detach differs from before:\n%s", f, wantDiff(map[string][]byte{f: data}, map[string][]byte{f: back[f]}, "detached"))
		}
	}
	if _, err := os.Stat(maps); !os.IsNotExist(err) {
		t.Errorf("map directory left: %v", err)
	}
}

// TestCheckPostfixWarnings: check --postfix-config-dir warns about the
// site's submission service, which bypasses splitrelay, and about a
// virtual alias regexp that captures the routing namespace.
func TestCheckPostfixWarnings(t *testing.T) {
	postfixtest.Require(t)
	etc := filepath.Join(t.TempDir(), "etc")
	if err := os.Mkdir(etc, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"main.cf", "master.cf"} {
		data, err := os.ReadFile(filepath.Join("../../testdata/postfix/site", f))
		if err != nil {
			t.Fatal(err)
		}
		if f == "main.cf" {
			data = append(data, []byte("virtual_alias_maps = regexp:"+filepath.Join(etc, "virtual.re")+"\n")...)
		}
		if err := os.WriteFile(filepath.Join(etc, f), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(etc, "virtual.re"), []byte("/^(.*)@example\\.com/ ${1}@mailhost.example.com\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := runCmd("check", "-c", filepath.Join(testdataDir, "example.toml"), "--postfix-config-dir", etc)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{
		"warning: with Postfix: master.cf service submission/inet sets its own smtpd_milters = inet:localhost:8891 without splitrelay",
		"warning: with Postfix: virtual_alias_maps: regexp:" + filepath.Join(etc, "virtual.re") + " maps splitrelay-probe@example.com.legacy.splitrelay.invalid",
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("no %q in:\n%s", want, stderr)
		}
	}
	if strings.Contains(stdout, "warning") {
		t.Errorf("warnings on stdout (the one-paragraph summary):\n%s", stdout)
	}
}
