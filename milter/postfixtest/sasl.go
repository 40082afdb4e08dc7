package postfixtest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Dovecot is a private Dovecot that only serves SASL authentication (no
// mail protocols) on a loopback TCP port, for Postfix's
// smtpd_sasl_type = dovecot. Users and passwords come from a passwd-file.
type Dovecot struct {
	Dir  string
	Port int
	cmd  *exec.Cmd
	done chan error
}

// StartDovecot starts the auth service with users (login -> password) and
// registers a cleanup that stops it by PID. Without the dovecot binary
// (Debian's dovecot-core) the test is skipped, or fails under
// SPLITRELAY_E2E=1.
func StartDovecot(t testing.TB, users map[string]string) *Dovecot {
	t.Helper()
	bin, err := lookTool("dovecot")
	if err != nil {
		missing(t, "dovecot not found (apt-get install dovecot-core, or make deps)")
	}
	dir := makeTempDir(t, "splitrelay-dovecot-")
	d := &Dovecot{Dir: dir, Port: FreePort(t)}
	var pw strings.Builder
	names := make([]string, 0, len(users))
	for u := range users {
		names = append(names, u)
	}
	slices.Sort(names)
	for _, u := range names {
		fmt.Fprintf(&pw, "%s:{PLAIN}%s\n", u, users[u])
	}
	if err := os.WriteFile(filepath.Join(dir, "passwd"), []byte(pw.String()), 0o644); err != nil {
		t.Fatalf("postfixtest: %v", err)
	}
	conf := fmt.Sprintf(`# private auth-only Dovecot for postfixtest
base_dir = %[1]s/run
state_dir = %[1]s/state
log_path = %[1]s/dovecot.log
protocols =
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
passdb {
  driver = passwd-file
  args = scheme=PLAIN %[1]s/passwd
}
userdb {
  driver = static
  args = uid=nobody gid=nogroup home=/nonexistent
}
service auth {
  inet_listener sasl {
    address = 127.0.0.1
    port = %[2]d
  }
}
`, dir, d.Port)
	confFile := filepath.Join(dir, "dovecot.conf")
	if err := os.WriteFile(confFile, []byte(conf), 0o644); err != nil {
		t.Fatalf("postfixtest: %v", err)
	}
	d.cmd = exec.Command(bin, "-F", "-c", confFile)
	logf, err := os.Create(filepath.Join(dir, "stderr.log"))
	if err != nil {
		t.Fatalf("postfixtest: %v", err)
	}
	d.cmd.Stdout, d.cmd.Stderr = logf, logf
	if err := d.cmd.Start(); err != nil {
		t.Fatalf("postfixtest: start dovecot: %v", err)
	}
	logf.Close()
	d.done = make(chan error, 1)
	go func() { d.done <- d.cmd.Wait() }()
	t.Cleanup(func() {
		d.stop(t)
		if t.Failed() {
			for _, f := range []string{"stderr.log", "dovecot.log"} {
				out, _ := os.ReadFile(filepath.Join(dir, f))
				t.Logf("postfixtest: dovecot %s:\n%s", f, tail(string(out), 40))
			}
		}
		removeTempDir(t, dir)
	})
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(d.Port))
	deadline := time.Now().Add(startTimeout)
	for {
		select {
		case err := <-d.done:
			out, _ := os.ReadFile(filepath.Join(dir, "stderr.log"))
			log, _ := os.ReadFile(filepath.Join(dir, "dovecot.log"))
			d.cmd = nil
			t.Fatalf("postfixtest: dovecot exited: %v\n%s\n%s", err, out, log)
		default:
		}
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return d
		}
		if time.Now().After(deadline) {
			t.Fatalf("postfixtest: dovecot auth does not listen on %s", addr)
		}
		time.Sleep(pollInterval)
	}
}

func (d *Dovecot) stop(t testing.TB) {
	if d.cmd == nil {
		return
	}
	_ = d.cmd.Process.Signal(os.Interrupt)
	select {
	case <-d.done:
	case <-time.After(commandTimeout):
		_ = d.cmd.Process.Kill()
		<-d.done
	}
	d.cmd = nil
}

// EnableSASL makes the instance's smtpd offer SMTP AUTH through d
// (smtpd_sasl_type = dovecot over TCP, Postfix's SASL_README) and reloads
// it.
func (in *Instance) EnableSASL(t testing.TB, d *Dovecot) {
	t.Helper()
	in.Postconf(t, "-e",
		"smtpd_sasl_auth_enable = yes",
		"smtpd_sasl_type = dovecot",
		"smtpd_sasl_path = inet:127.0.0.1:"+strconv.Itoa(d.Port),
		"smtpd_sasl_security_options = noanonymous",
	)
	in.Reload(t)
}
