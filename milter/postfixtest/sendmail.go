package postfixtest

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"testing"
)

// Sendmail submits m as a local program does, with the instance's
// sendmail(1) (MAIL_CONFIG names ConfigDir; postdrop writes it into the
// instance's maildrop, pickup(8) takes it from there): the mail that
// non_smtpd_milters see. It returns sendmail's output and fails the test
// if sendmail fails.
func (in *Instance) Sendmail(t testing.TB, m Mail) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	args := []string{"-C", in.ConfigDir, "-i"}
	if m.From != "" {
		args = append(args, "-f", m.From)
	} else {
		args = append(args, "-f", "<>")
	}
	args = append(args, "--")
	args = append(args, m.To...)
	cmd := exec.CommandContext(ctx, tool("sendmail"), args...)
	cmd.Env = append(os.Environ(), in.env...)
	cmd.Stdin = bytes.NewReader(m.message())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("postfixtest: sendmail %v: %v\n%s", args, err, out)
	}
	return string(out)
}
