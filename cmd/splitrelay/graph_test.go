package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestHarnessNotInProduct keeps the test harnesses of real MTAs (like
// net/http/httptest, packages of their own) out of the daemon's import
// graph: the binary must not carry code that starts Postfix or Sendmail.
func TestHarnessNotInProduct(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	for pkg := range strings.Lines(string(out)) {
		pkg = strings.TrimSpace(pkg)
		if strings.HasPrefix(pkg, "github.com/splitrelay/splitrelay/") && strings.HasSuffix(pkg, "test") {
			t.Errorf("the splitrelay binary imports the test harness %s", pkg)
		}
	}
}
