package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/splitrelay/splitrelay/milter/postfix"
	"github.com/splitrelay/splitrelay/rules"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/cmd")

// testdataDir holds the configurations and golden files; the tests run in
// it so that file names in the output are short and stable.
const testdataDir = "../../testdata/cmd"

// runCmd runs splitrelay with args and returns the exit code and outputs.
func runCmd(args ...string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	code = dispatch(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// TestGolden runs commands and compares exit code, stdout and stderr with
// testdata/cmd/<name>.golden.
func TestGolden(t *testing.T) {
	t.Chdir(testdataDir)
	tests := []struct {
		name string
		args []string
	}{
		{"check-ok", []string{"check", "-c", "example.toml"}},
		{"check-config-long", []string{"check", "--config", "dryrun.toml"}},
		{"check-errors", []string{"check", "-c", "errors.toml"}},
		{"check-directory-warnings", []string{"check", "-c", "directory.toml"}},
		{"explain-directory", []string{"explain", "-c", "directory.toml", "--from", "x@elsewhere.test",
			"--to", "Al+News@example.net", "--to", "alice+x@example.com", "--to", "team@example.net", "--to", "carol@example.net"}},
		{"explain-directory-json", []string{"explain", "-c", "directory.toml", "--from", "x@elsewhere.test", "--format", "json",
			"--to", "Al+News@example.net", "--to", "carol@example.net"}},
		{"check-missing", []string{"check", "-c", "missing.toml"}},
		{"check-extra-arg", []string{"check", "-c", "example.toml", "extra"}},
		{"explain-inbound", []string{"explain", "-c", "example.toml", "--from", "carol@partner.example",
			"--to", "bob@example.com", "--to", "sales@example.com", "--to", "zoe@example.com",
			"--to", "x@example.com.legacy.splitrelay.invalid", "--to", "ext@elsewhere.example",
			"--client", "192.0.2.10", "--helo", "mx.partner.example"}},
		{"explain-internal", []string{"explain", "-c", "example.toml", "--from", "alice@example.com",
			"--header-from", "Alice <alice@example.com>", "--to", "lab-1@example.org", "--to", "zoe@example.com",
			"--auth", "alice", "--tls"}},
		{"explain-null-sender-dry-run", []string{"explain", "-c", "dryrun.toml", "--from", "", "--to", "zoe@example.com"}},
		{"explain-relay-allowed", []string{"explain", "-c", "relay.toml", "--from", "scanner@elsewhere.test",
			"--to", "x@elsewhere.test", "--to", "alice@example.com", "--client", "192.0.2.3", "--helo", "localhost", "--auth", "printer@example.com", "--tls"}},
		{"explain-relay-denied", []string{"explain", "-c", "relay.toml", "--from", "alice@example.com",
			"--to", "x@elsewhere.test", "--to", "user%elsewhere.test@example.com", "--to", "alice@example.com", "--client", "203.0.113.7", "--helo", "mail.example.com"}},
		{"postfix-relay", []string{"postfix", "-c", "relay.toml"}},
		{"limits-no-op", []string{"limits", "-c", "relay.toml"}},
		{"limits-reset-no-user", []string{"limits", "-c", "relay.toml", "reset"}},
		{"limits-bad-format", []string{"limits", "-c", "relay.toml", "--format", "yaml", "show"}},
		{"explain-no-from", []string{"explain", "-c", "example.toml", "--to", "bob@example.com"}},
		{"explain-trace", []string{"explain", "-c", "example.toml", "--from", "carol@partner.example", "--trace",
			"--to", "bob@example.com", "--to", "Zed+tag@Example.COM", "--to", `"alice"@example.com`, "--to", "@relay.test:sales@example.com", "--to", "(x)zed@example.com"}},
		{"explain-json", []string{"explain", "-c", "relay.toml", "--from", "alice@example.com", "--format", "json", "--trace",
			"--client", "192.0.2.7", "--to", "x@elsewhere.test", "--to", "bob@example.com", "--to", "y@elsewhere.test"}},
		{"explain-bad-format", []string{"explain", "-c", "example.toml", "--from", "a@b.example", "--to", "bob@example.com", "--format", "xml"}},
		{"explain-no-to", []string{"explain", "-c", "example.toml", "--from", "a@b.example"}},
		{"explain-errors", []string{"explain", "-c", "errors.toml", "--from", "a@b.example", "--to", "bob@example.com"}},
		{"postfix-text", []string{"postfix", "-c", "example.toml"}},
		{"postfix-postconf", []string{"postfix", "-c", "example.toml", "--format", "postconf", "--postfix-config-dir", "/srv/site/etc/postfix"}},
		{"postfix-inet", []string{"postfix", "-c", "dryrun.toml", "--queue-dir", "/srv/postfix"}},
		{"postfix-bad-format", []string{"postfix", "-c", "example.toml", "--format", "xml"}},
		{"sendmail-text", []string{"sendmail", "-c", "example.toml"}},
		{"sendmail-mc", []string{"sendmail", "-c", "sendmail.toml", "--format", "mc"}},
		{"sendmail-relay-text", []string{"sendmail", "-c", "sendmail.toml"}},
		{"sendmail-bad-format", []string{"sendmail", "-c", "example.toml", "--format", "cf"}},
		{"check-sendmail-warnings", []string{"check", "-c", "sendmail.toml"}},
		{"help-sendmail", []string{"sendmail", "-h"}},
		{"postfix-detach-text", []string{"postfix", "-c", "relay.toml", "--detach"}},
		{"postfix-detach-postconf", []string{"postfix", "-c", "example.toml", "--detach", "--format", "postconf", "--postfix-config-dir", "/srv/site/etc/postfix"}},
		{"postfix-diff-no-dir", []string{"postfix", "-c", "example.toml", "--format", "diff"}},
		{"no-command", nil},
		{"unknown-command", []string{"frobnicate"}},
		{"help", []string{"help"}},
		{"help-explain", []string{"help", "explain"}},
		{"help-postfix", []string{"postfix", "-h"}},
		{"help-run", []string{"run", "--help"}},
		{"help-reload", []string{"reload", "-h"}},
		{"help-check", []string{"help", "check"}},
		{"help-test-route", []string{"test-route", "--help"}},
		{"help-version", []string{"version", "-h"}},
		{"help-help", []string{"help", "--help"}},
		{"help-unknown", []string{"help", "chek"}},
		{"did-you-mean-command", []string{"chek", "-c", "example.toml"}},
		{"did-you-mean-flag", []string{"check", "--cofnig", "example.toml"}},
		{"did-you-mean-short-flag", []string{"explain", "-c", "example.toml", "--form", "a@b.example", "--to", "x@example.com"}},
		{"unknown-flag", []string{"postfix", "--frobnicate"}},
		{"flag-needs-argument", []string{"check", "-c"}},
		{"version-extra-arg", []string{"version", "now"}},
		{"check-types", []string{"check", "-c", "types.toml"}},
		{"reload-no-pid", []string{"reload", "-c", "example.toml"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runCmd(tc.args...)
			got := fmt.Sprintf("$ splitrelay %s\nexit %d\n--- stdout\n%s--- stderr\n%s", shellWords(tc.args), code, stdout, stderr)
			golden(t, tc.name+".golden", got)
		})
	}
}

// Every command's -h and --help prints its help on stdout, in the same
// layout, and exits 0.
func TestHelpEverywhere(t *testing.T) {
	for _, name := range commandOrder {
		for _, h := range []string{"-h", "--help", "-help"} {
			code, stdout, stderr := runCmd(name, h)
			if code != 0 || stderr != "" || !strings.HasPrefix(stdout, "usage: splitrelay "+name) ||
				!strings.Contains(stdout, "\n\n  ") {
				t.Errorf("splitrelay %s %s: exit %d\nstdout %q\nstderr %q", name, h, code, stdout, stderr)
			}
			if name == "help" {
				continue
			}
			_, viaHelp, _ := runCmd("help", name)
			if viaHelp != stdout {
				t.Errorf("splitrelay help %s differs from splitrelay %s %s:\n%s\n%s", name, name, h, viaHelp, stdout)
			}
		}
	}
}

// shellWords shows args as a shell would need them.
func shellWords(args []string) string {
	var out []string
	for _, a := range args {
		if a == "" || strings.ContainsAny(a, " <>'\"") {
			a = "'" + a + "'"
		}
		out = append(out, a)
	}
	return strings.Join(out, " ")
}

func golden(t *testing.T, file, got string) {
	t.Helper()
	if *update {
		if err := os.WriteFile(file, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("%v (go test -update creates it)", err)
	}
	if got != string(want) {
		t.Errorf("output differs from testdata/cmd/%s (go test -update rewrites it):\n--- got\n%s\n--- want\n%s", file, got, want)
	}
}

// check prints every problem as FILE:LINE:COL: path: message, each being
// one of the rules.Errors.
func TestCheckPrintsEveryError(t *testing.T) {
	t.Chdir(testdataDir)
	_, err := loadConfig("errors.toml")
	es, ok := err.(rules.Errors)
	if !ok || len(es) < 2 {
		t.Fatalf("loadConfig(errors.toml) = %v, want several rules.Errors", err)
	}
	code, stdout, stderr := runCmd("check", "-c", "errors.toml")
	if code != 1 || stdout != "" {
		t.Errorf("exit %d, stdout %q", code, stdout)
	}
	var want strings.Builder
	for _, e := range es {
		if e.Line == 0 {
			t.Errorf("%v has no position", e)
		}
		fmt.Fprintf(&want, "%s:%d:%d: %s: %s\n", e.File, e.Line, e.Col, e.Path, e.Msg)
	}
	if stderr != want.String() {
		t.Errorf("stderr:\n%s\nwant:\n%s", stderr, want.String())
	}
}

// Relative users_files are read next to the configuration file, wherever
// the command runs.
func TestLoadConfigRelativeUsersFiles(t *testing.T) {
	rs, err := loadConfig(filepath.Join(testdataDir, "example.toml"))
	if err != nil {
		t.Fatal(err)
	}
	t1 := rs.Begin(rules.Client{}, "x@partner.example", 0, nil)
	t1.Rcpt(rules.RcptIn{Raw: "bob@example.com"})
	d := t1.End(rules.Message{})
	if got := d.Recipients[0].Account; got != rules.User {
		t.Errorf("bob@example.com (from users.txt) is %v, want user", got)
	}
}

func TestPostfixMapDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "new", "maps")
	config := filepath.Join(testdataDir, "example.toml")
	for range 2 { // the second run replaces the files
		code, stdout, stderr := runCmd("postfix", "-c", config, "--map-dir", dir)
		if code != 0 || stderr != "" {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		if !strings.HasPrefix(stdout, "# The map files below were written to "+dir+".\n") ||
			!strings.Contains(stdout, "transport_maps = regexp:"+dir+"/transport\n") {
			t.Errorf("stdout does not name %s:\n%s", dir, stdout)
		}
	}
	rs, err := loadConfig(config)
	if err != nil {
		t.Fatal(err)
	}
	c, err := postfix.Generate(rs, postfix.Options{MapDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != len(c.Maps) {
		t.Errorf("%s holds %d files, want %d (no temporary files left)", dir, len(entries), len(c.Maps))
	}
	for _, m := range c.Maps {
		got, err := os.ReadFile(m.Path)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != m.Content {
			t.Errorf("%s:\n%s\nwant:\n%s", m.Path, got, m.Content)
		}
		if fi, err := os.Stat(m.Path); err != nil || fi.Mode().Perm() != 0o644 {
			t.Errorf("%s: mode %v, %v", m.Path, fi.Mode(), err)
		}
	}

	// --format postconf writes the maps too and refers to them.
	code, stdout, _ := runCmd("postfix", "-c", config, "--map-dir", dir, "--format", "postconf")
	if code != 0 || !strings.Contains(stdout, "add transport_maps first regexp:"+dir+"/transport ") {
		t.Errorf("exit %d, script:\n%s", code, stdout)
	}
}

func TestVersion(t *testing.T) {
	code, stdout, _ := runCmd("version")
	if code != 0 || !strings.HasPrefix(stdout, "splitrelay ") || !strings.Contains(stdout, "(commit ") || !strings.Contains(stdout, ", go1.") {
		t.Errorf("exit %d: %q", code, stdout)
	}
	old := version
	version, commit = "1.2.3", "abc1234"
	defer func() { version, commit = old, "" }()
	if got := versionString(); !strings.HasPrefix(got, "splitrelay 1.2.3 (commit abc1234, go") {
		t.Errorf("versionString() = %q", got)
	}
}
