package sendmailtest

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/splitrelay/splitrelay/milter/postfixtest"
)

// listenSyslog binds Dir/dev/log, which the daemon's namespace sees as
// /dev/log, and collects what Sendmail logs there (syslog(3) datagrams,
// "<PRI>Mmm dd hh:mm:ss sm-mta[PID]: ...") into the instance's log and
// Dir/maillog.
func (in *Instance) listenSyslog() error {
	path := filepath.Join(in.Dir, "dev/log")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return err
	}
	if err := os.Chmod(path, 0o666); err != nil {
		c.Close()
		return err
	}
	in.sock = c
	f, err := os.Create(filepath.Join(in.Dir, "maillog"))
	if err != nil {
		c.Close()
		return err
	}
	go func() {
		defer f.Close()
		buf := make([]byte, 64*1024)
		for {
			n, err := c.Read(buf)
			if err != nil {
				return
			}
			line := string(buf[:n])
			if i := strings.IndexByte(line, '>'); strings.HasPrefix(line, "<") && i > 0 {
				line = line[i+1:]
			}
			line = strings.TrimRight(line, "\n\x00") + "\n"
			in.mu.Lock()
			in.log.WriteString(line)
			in.mu.Unlock()
			f.WriteString(line)
		}
	}()
	return nil
}

// Log returns what the daemon (and the commands the harness ran) logged
// so far.
func (in *Instance) Log() string {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.log.String()
}

// LogLines returns the log lines that contain substr, e.g. a queue ID.
func (in *Instance) LogLines(substr string) []string { return postfixtest.LinesWith(in.Log(), substr) }

// WaitLog waits until a log line matches the regular expression pattern
// and returns the matching lines; it fails the test after timeout.
func (in *Instance) WaitLog(t testing.TB, pattern string, timeout time.Duration) []string {
	t.Helper()
	return postfixtest.WaitLogOf(t, "sendmailtest", in.Log, pattern, timeout)
}
