package e2e

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/splitrelay/splitrelay/milter/postfixtest"
)

// TestE2ERealisticSite: a private Postfix configured like a production
// gateway (OpenDKIM in smtpd_milters and non_smtpd_milters =
// $smtpd_milters, a transport table of its own, virtual_alias_maps, a
// submission service whose own -o smtpd_milters= leaves splitrelay out),
// with splitrelay attached exactly as the README says. Mail is split, the
// warning about the submission service is printed, and detaching gives
// back main.cf and master.cf byte for byte, although main.cf spreads
// smtpd_recipient_restrictions, which splitrelay changes, over several
// lines with a comment inside (postconf alone would join them: detach
// restores the copy made before attaching).
func TestE2ERealisticSite(t *testing.T) {
	var virtual string
	s := newSiteFull(t, routes, config(false), "unix", nil, func(pf *postfixtest.Instance) {
		virtual = filepath.Join(pf.Dir, "virtual")
		if err := os.WriteFile(virtual, []byte("info@example.com alice@example.com\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		pf.Postconf(t, "-e",
			// OpenDKIM (not running here: accept, as its docs set it)
			"milter_default_action = accept",
			"milter_protocol = 6",
			"smtpd_milters = inet:127.0.0.1:9",
			"non_smtpd_milters = $smtpd_milters",
			"virtual_alias_maps = texthash:"+virtual,
		)
		f, err := os.OpenFile(filepath.Join(pf.ConfigDir, "main.cf"), os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		f.WriteString("\n# recipient checks, one per line\nsmtpd_recipient_restrictions =\n    permit_mynetworks,\n    # nobody else relays\n    reject_unauth_destination\n")
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		pf.Postconf(t, "-M", "submission/inet = submission inet n - n - - smtpd")
		pf.Postconf(t, "-P", "submission/inet/smtpd_milters = inet:127.0.0.1:9", "submission/inet/syslog_name = postfix/submission")
		old := time.Now().Add(-time.Minute)
		os.Chtimes(filepath.Join(pf.ConfigDir, "main.cf"), old, old)
	})
	if got := strings.TrimSpace(s.pf.Postconf(t, "-h", "smtpd_milters")); !strings.HasPrefix(got, "inet:127.0.0.1:9, { unix:splitrelay/milter.sock") {
		t.Errorf("smtpd_milters = %q: OpenDKIM's entry not kept first", got)
	}
	if got := strings.TrimSpace(s.pf.Postconf(t, "-h", "non_smtpd_milters")); got != "$smtpd_milters" {
		t.Errorf("non_smtpd_milters = %q, want the site's $smtpd_milters (which holds ours)", got)
	}
	s.send(postfixtest.Mail{From: "x@elsewhere.test", HeaderFrom: "x@elsewhere.test",
		To: []string{"alice@example.com", "carol@example.com", "info@example.com"}})
	s.pf.Sendmail(t, postfixtest.Mail{From: "cron@example.com", To: []string{"dan@example.com"}})
	// info@ is not in the directory: routed (unrecognized) before
	// Postfix's virtual alias could expand it, which only sees the
	// routed form (the alias applies to mail that stays on Postfix's
	// normal delivery)
	s.landed(map[string][]string{
		"gmail":  {"alice@example.com"},
		"legacy": {"carol@example.com", "dan@example.com", "info@example.com"},
	})

	args := []string{"postfix", "-c", s.cfgPath, "--postfix-config-dir", s.pf.ConfigDir,
		"--map-dir", filepath.Join(s.pf.Dir, "maps"), "--queue-dir", s.pf.QueueDir}
	out, err := exec.Command(s.bin, append(args, "--format", "diff")...).Output()
	if err != nil {
		t.Fatalf("--format diff: %v\n%s", err, exitStderr(err))
	}
	if !strings.Contains(string(out), "# WARNING: master.cf service submission/inet sets its own smtpd_milters") {
		t.Errorf("no warning about the submission service:\n%s", out)
	}
	script, err := exec.Command(s.bin, append(args, "--detach", "--format", "postconf")...).Output()
	if err != nil {
		t.Fatalf("--detach: %v\n%s", err, exitStderr(err))
	}
	out = []byte(s.pf.Shell(t, string(script)))
	for _, f := range []string{"main.cf", "master.cf"} {
		if !strings.Contains(string(out), "# "+f+": restored from "+filepath.Join(s.pf.ConfigDir, f)+".splitrelay-") {
			t.Errorf("detach does not say that it restored %s:\n%s", f, out)
		}
	}
	after := s.cf()
	for f, data := range s.before {
		if !bytes.Equal(after[f], data) {
			t.Errorf("%s after detach differs from before attaching:\n--- before\n%s\n--- after\n%s", f, data, after[f])
		}
	}
	s.pf.Reload(t)
	// Detached: mail flows as before splitrelay, unrouted, the site's
	// virtual alias applied.
	s.send(postfixtest.Mail{From: "x@elsewhere.test", To: []string{"erin@example.com", "info@example.com"}})
	s.landed(map[string][]string{
		"gmail":  {"alice@example.com", "erin@example.com", "alice@example.com"},
		"legacy": {"carol@example.com", "dan@example.com", "info@example.com"},
	})
}
