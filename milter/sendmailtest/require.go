package sendmailtest

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/splitrelay/splitrelay/milter/postfixtest"
)

// EnvCache overrides CacheDir.
const EnvCache = "SPLITRELAY_SENDMAIL_CACHE"

// DefaultCacheDir is where contrib/scripts/deps.sh downloads the Sendmail
// packages: outside the source tree, which CI requires to stay clean.
const DefaultCacheDir = "/var/cache/splitrelay-test/sendmail"

// Packages are the Debian packages the private root is made of.
var Packages = []string{"sendmail-bin", "sendmail-base", "sendmail-cf", "m4", "libwrap0"}

// OptionalPackages are unpacked too when they were downloaded: sasl2-bin
// has saslpasswd2, for Options.SASL.
var OptionalPackages = []string{"sasl2-bin"}

// commandTimeout bounds every command the package runs.
const commandTimeout = 30 * time.Second

// CacheDir is the directory holding the downloaded packages.
func CacheDir() string {
	if d := os.Getenv(EnvCache); d != "" {
		return d
	}
	return DefaultCacheDir
}

// Root is the unpacked private Sendmail.
type Root struct {
	Dir      string // dpkg -x of every package
	Sendmail string // the sendmail binary, copied without setgid
	M4       string
	Makemap  string
	CFDir    string // Dir/usr/share/sendmail/cf, relocated
	LibDir   string // LD_LIBRARY_PATH for the binaries
}

var tools = []string{"dpkg", "unshare", "mount", "hostname", "sh"}

var rootOnce = sync.OnceValues(prepareRoot)

// Require skips the test when the private Sendmail cannot run here (not
// root, packages not downloaded, tools missing), and fails it instead when
// SPLITRELAY_E2E=1. It also requires what milter/postfixtest needs for
// sinks and clients.
func Require(t testing.TB) *Root {
	t.Helper()
	postfixtest.Require(t)
	var err error
	if os.Geteuid() != 0 {
		err = errors.New("sendmailtest: a private Sendmail needs root (namespaces, port binding, queue ownership)")
	}
	if err == nil {
		for _, name := range tools {
			if _, e := lookTool(name); e != nil {
				err = fmt.Errorf("sendmailtest: %s not found", name)
				break
			}
		}
	}
	var r *Root
	if err == nil {
		r, err = rootOnce()
	}
	if err != nil {
		if os.Getenv(postfixtest.EnvE2E) == "1" {
			t.Fatalf("%v (%s=1: end-to-end tests may not be skipped)", err, postfixtest.EnvE2E)
		}
		t.Skipf("%v; skipping (set %s=1 to make this a failure)", err, postfixtest.EnvE2E)
	}
	return r
}

// prepareRoot unpacks the cached packages into CacheDir/root-<versions>,
// once per set of package versions; concurrent test binaries race on the
// final rename, and the loser uses the winner's root.
func prepareRoot() (*Root, error) {
	cache := CacheDir()
	var debs []string
	for _, p := range Packages {
		m, _ := filepath.Glob(filepath.Join(cache, p+"_*.deb"))
		if len(m) == 0 {
			return nil, fmt.Errorf("sendmailtest: no %s package in %s (run contrib/scripts/deps.sh as root, or make deps)", p, cache)
		}
		debs = append(debs, m[len(m)-1])
	}
	for _, p := range OptionalPackages {
		if m, _ := filepath.Glob(filepath.Join(cache, p+"_*.deb")); len(m) > 0 {
			debs = append(debs, m[len(m)-1])
		}
	}
	var id []string
	for _, d := range debs {
		id = append(id, strings.TrimSuffix(filepath.Base(d), ".deb"))
	}
	dir := filepath.Join(cache, "root-"+shortHash(strings.Join(id, " ")))
	r := rootAt(dir)
	if _, err := os.Stat(r.Sendmail); err == nil {
		return r, nil
	}
	tmp, err := os.MkdirTemp(cache, ".root-")
	if err != nil {
		return nil, fmt.Errorf("sendmailtest: %w", err)
	}
	defer os.RemoveAll(tmp)
	for _, d := range debs {
		if out, err := exec.Command("dpkg", "-x", d, tmp).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("sendmailtest: dpkg -x %s: %v: %s", d, err, out)
		}
	}
	if err := relocate(filepath.Join(tmp, "usr/share/sendmail/cf"), "/usr/share/sendmail/cf", filepath.Join(dir, "usr/share/sendmail/cf")); err != nil {
		return nil, err
	}
	// Without setgid: the loader honours LD_LIBRARY_PATH only then.
	bin, err := os.ReadFile(filepath.Join(tmp, "usr/libexec/sendmail/sendmail"))
	if err != nil {
		return nil, fmt.Errorf("sendmailtest: %w", err)
	}
	if err := os.WriteFile(filepath.Join(tmp, "sendmail"), bin, 0o755); err != nil {
		return nil, fmt.Errorf("sendmailtest: %w", err)
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return nil, fmt.Errorf("sendmailtest: %w", err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		if _, e := os.Stat(r.Sendmail); e == nil {
			return r, nil // another test binary was faster
		}
		return nil, fmt.Errorf("sendmailtest: %w", err)
	}
	return r, nil
}

func rootAt(dir string) *Root {
	return &Root{
		Dir:      dir,
		Sendmail: filepath.Join(dir, "sendmail"),
		M4:       filepath.Join(dir, "usr/bin/m4"),
		Makemap:  filepath.Join(dir, "usr/libexec/sendmail/makemap"),
		CFDir:    filepath.Join(dir, "usr/share/sendmail/cf"),
		LibDir:   filepath.Join(dir, "usr/lib/x86_64-linux-gnu") + ":" + filepath.Join(dir, "lib/x86_64-linux-gnu"),
	}
}

// relocate replaces from by to in every file under dir (the m4 files that
// include each other by absolute path).
func relocate(dir, from, to string) error {
	return filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if s := string(data); strings.Contains(s, from) {
			return os.WriteFile(p, []byte(strings.ReplaceAll(s, from, to)), 0o644)
		}
		return nil
	})
}

func shortHash(s string) string {
	var h uint32 = 2166136261
	for i := 0; i < len(s); i++ {
		h ^= uint32(s[i])
		h *= 16777619
	}
	return fmt.Sprintf("%08x", h)
}

func lookTool(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/sbin", "/usr/bin", "/sbin", "/bin"} {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", exec.ErrNotFound
}
