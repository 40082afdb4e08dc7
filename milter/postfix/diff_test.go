package postfix

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestWriteDiff compares with diff -u (GNU diffutils) on the same inputs.
func TestWriteDiff(t *testing.T) {
	if _, err := exec.LookPath("diff"); err != nil {
		t.Skip("diff not installed")
	}
	site, err := os.ReadFile(filepath.Join(goldenDir, "site", "main.cf"))
	if err != nil {
		t.Fatal(err)
	}
	s := string(site)
	cases := map[string][2]string{
		"equal":     {s, s},
		"append":    {s, s + "smtpd_milters2 = x\n"},
		"prepend":   {s, "a = b\n" + s},
		"replace":   {s, strings.Replace(s, "smtpd_milters = inet:localhost:8891", "smtpd_milters = inet:localhost:8891, { unix:x }", 1)},
		"two hunks": {s, strings.Replace(strings.Replace(s, "biff = no", "biff = yes", 1), "inet_protocols = all", "inet_protocols = ipv4", 1)},
		"remove":    {s, strings.Replace(s, "relayhost = \n", "", 1)},
		"empty":     {"", "a = b\n"},
		"to empty":  {"a = b\nc = d\n", ""},
	}
	dir := t.TempDir()
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
			os.WriteFile(a, []byte(c[0]), 0o644)
			os.WriteFile(b, []byte(c[1]), 0o644)
			want, _ := exec.Command("diff", "-u", "--label", "A", "--label", "B", a, b).Output()
			var got bytes.Buffer
			if err := WriteDiff(&got, "A", "B", []byte(c[0]), []byte(c[1])); err != nil {
				t.Fatal(err)
			}
			if got.String() != string(want) {
				t.Errorf("got:\n%s\nwant (diff -u):\n%s", got.String(), want)
			}
		})
	}
}
