package sendmailtest

import (
	"os"
	"testing"

	"github.com/splitrelay/splitrelay/milter/postfixtest"
)

// makeTempDir creates the instance directory, mode 0755 (the mail user
// runs the deferral program, and Sendmail checks the path's permissions).
func makeTempDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "splitrelay-sendmail-")
	if err != nil {
		t.Fatalf("sendmailtest: %v", err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatalf("sendmailtest: %v", err)
	}
	return dir
}

// removeTempDir removes dir unless SPLITRELAY_E2E_KEEP=1.
func removeTempDir(t testing.TB, dir string) { postfixtest.RemoveTestDir(t, "sendmailtest", dir) }

// tail returns the last n lines of s.
func tail(s string, n int) string { return postfixtest.Tail(s, n) }
