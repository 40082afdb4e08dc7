package sendmailtest

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// sasl writes a private Cyrus SASL configuration for Sendmail
// (Dir/sasl2/Sendmail.conf, bound over /usr/lib/sasl2 in the daemon's
// namespace: libsasl2 looks for <app>.conf in /etc/sasl2, /etc/sasl, its
// plugin directory and /usr/lib/sasl2) and a sasldb with the users, made
// with the private root's saslpasswd2 when there is one, else the
// machine's (sasl2-bin).
func (in *Instance) sasl() error {
	db := filepath.Join(in.Dir, "sasl2", "sasldb2")
	conf := fmt.Sprintf("pwcheck_method: auxprop\nauxprop_plugin: sasldb\nsasldb_path: %s\nmech_list: PLAIN LOGIN\n", db)
	if err := os.WriteFile(filepath.Join(in.Dir, "sasl2", "Sendmail.conf"), []byte(conf), 0o644); err != nil {
		return err
	}
	bin := filepath.Join(in.root.Dir, "usr/sbin/saslpasswd2")
	if _, err := os.Stat(bin); err != nil {
		if bin, err = lookTool("saslpasswd2"); err != nil {
			return fmt.Errorf("saslpasswd2 not found (sasl2-bin; deps.sh downloads it)")
		}
	}
	users := make([]string, 0, len(in.opt.SASL))
	for u := range in.opt.SASL {
		users = append(users, u)
	}
	slices.Sort(users)
	for _, u := range users {
		// Cyrus SASL looks a login up as user@realm: a login with an @
		// is split at the last one, others are in the server's realm ($j).
		name, realm := u, Hostname
		if i := strings.LastIndexByte(u, '@'); i > 0 {
			name, realm = u[:i], u[i+1:]
		}
		if _, msg, err := runCmd(strings.NewReader(in.opt.SASL[u]), bin, "-p", "-c", "-f", db, "-u", realm, name); err != nil {
			return fmt.Errorf("saslpasswd2 %s: %v: %s", u, err, msg)
		}
	}
	return os.Chmod(db, 0o640)
}
