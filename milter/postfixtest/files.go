package postfixtest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// makeTempDir creates a directory that the postfix and nobody users can
// reach: mode 0755, under a temporary directory whose every ancestor is
// searchable by others (os.TempDir if it is, else /tmp). It is not removed
// automatically; see removeTempDir.
func makeTempDir(t testing.TB, prefix string) string {
	t.Helper()
	base := os.TempDir()
	if !searchableByOthers(base) {
		base = "/tmp"
	}
	dir, err := os.MkdirTemp(base, prefix)
	if err != nil {
		t.Fatalf("postfixtest: %v", err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatalf("postfixtest: %v", err)
	}
	return dir
}

// searchableByOthers reports whether every directory from / down to dir has
// the execute bit for others.
func searchableByOthers(dir string) bool {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return false
	}
	for {
		fi, err := os.Stat(dir)
		if err != nil || fi.Mode().Perm()&0o001 == 0 {
			return false
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return true
		}
		dir = parent
	}
}

// removeTempDir removes dir, unless SPLITRELAY_E2E_KEEP=1 (RemoveTestDir).
func removeTempDir(t testing.TB, dir string) { RemoveTestDir(t, "postfixtest", dir) }

// RemoveTestDir removes a harness's directory, unless SPLITRELAY_E2E_KEEP=1.
// Processes that were just stopped may still be writing, so it tries a
// few times; a leftover directory is logged (by who), not a test failure.
// sendmailtest uses it too.
func RemoveTestDir(t testing.TB, who, dir string) {
	if os.Getenv(EnvKeep) == "1" {
		t.Logf("%s: keeping %s (%s=1)", who, dir, EnvKeep)
		return
	}
	var err error
	for range 5 {
		if err = os.RemoveAll(dir); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("%s: remove %s: %v", who, dir, err)
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// tail returns the last n lines of s.
func tail(s string, n int) string { return Tail(s, n) }

// Tail returns the last n lines of s (for failure messages; sendmailtest
// uses it too).
func Tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
