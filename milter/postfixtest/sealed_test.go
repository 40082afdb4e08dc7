package postfixtest_test

import (
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/splitrelay/splitrelay/milter/postfixtest"
)

// TestSealed checks that `make test` really hides the machine's Postfix
// configuration (contrib/scripts/test.sh), so a test that reaches for it
// fails on every machine instead of passing where a main.cf happens to
// exist. Under make test (SPLITRELAY_E2E=1) the seal must be on.
func TestSealed(t *testing.T) {
	sealed := os.Getenv("SPLITRELAY_SEALED")
	if sealed == "" {
		if os.Getenv(postfixtest.EnvE2E) == "1" {
			t.Fatal("SPLITRELAY_E2E=1 without SPLITRELAY_SEALED: run the suite through contrib/scripts/test.sh (make test)")
		}
		t.Skip("not run by make test: the machine's configuration is not sealed")
	}
	// A Postfix command without a configuration of its own must die.
	dir := os.Getenv("MAIL_CONFIG")
	if dir == "" {
		t.Fatal("MAIL_CONFIG is not set")
	}
	if _, err := os.Stat(filepath.Join(dir, "main.cf")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("MAIL_CONFIG=%s has a main.cf (%v): the seal must be empty", dir, err)
	}
	postmap, err := exec.LookPath("postmap")
	if err != nil {
		postmap = "/usr/sbin/postmap"
	}
	out, err := exec.Command(postmap, "-q", "x", "regexp:/dev/null").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "main.cf") {
		t.Errorf("a bare postmap worked (%v): %s", err, out)
	}
	if sealed != "namespace" {
		return
	}
	for _, f := range []string{"/etc/postfix/main.cf", "/etc/postfix/master.cf"} {
		if _, err := os.Stat(f); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s is visible inside the sealed namespace (%v)", f, err)
		}
	}
	if ents, err := os.ReadDir("/etc/mail"); err == nil && len(ents) > 0 {
		t.Errorf("/etc/mail is not empty inside the sealed namespace: %d entries", len(ents))
	}
}
