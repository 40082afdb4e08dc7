package sendmailtest

import (
	"os"
	"strings"
	"testing"
	"time"
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
func removeTempDir(t testing.TB, dir string) {
	if os.Getenv(EnvKeep) == "1" {
		t.Logf("sendmailtest: keeping %s (%s=1)", dir, EnvKeep)
		return
	}
	var err error
	for range 5 {
		if err = os.RemoveAll(dir); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("sendmailtest: remove %s: %v", dir, err)
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
