package sendmailtest

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// Queued returns the IDs of the messages in the queue (one qf file each).
func (in *Instance) Queued(t testing.TB) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(in.Dir, "mqueue"))
	if err != nil {
		t.Fatalf("sendmailtest: %v", err)
	}
	var ids []string
	for _, e := range entries {
		if id, ok := strings.CutPrefix(e.Name(), "qf"); ok {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

// QueueFile returns the control file (qf) of a queued message, "" if the
// message is not in the queue.
func (in *Instance) QueueFile(t testing.TB, id string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(in.Dir, "mqueue", "qf"+id))
	if err != nil {
		return ""
	}
	return string(data)
}

// WaitQueueEmpty waits until every message has left the queue (delivered
// or bounced); it fails the test after timeout.
func (in *Instance) WaitQueueEmpty(t testing.TB, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ids := in.Queued(t)
		if len(ids) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("sendmailtest: queue not empty after %v: %v\nlog tail:\n%s", timeout, ids, tail(in.Log(), 30))
		}
		time.Sleep(pollInterval)
	}
}

// WaitDeferred waits until the log says that a recipient of message id
// was deferred, and requires the message to be still queued; it returns
// the deferral lines.
func (in *Instance) WaitDeferred(t testing.TB, id string, timeout time.Duration) []string {
	t.Helper()
	lines := in.WaitLog(t, regexp.QuoteMeta(id)+`: .*stat=Deferred`, timeout)
	if in.QueueFile(t, id) == "" {
		t.Fatalf("sendmailtest: %s deferred but not in the queue:\n%s", id, strings.Join(in.LogLines(id), "\n"))
	}
	return lines
}

// Flush runs the queue once in the foreground (sendmail -q).
func (in *Instance) Flush(t testing.TB) {
	t.Helper()
	if out, err := in.run("-q"); err != nil {
		t.Fatalf("sendmailtest: sendmail -q: %v: %s", err, out)
	}
}

var queuedRE = regexp.MustCompile(`(?m)^<[-~]  250 2\.0\.0 (\S+) Message accepted for delivery`)

// QueueID returns the queue ID from a client transcript ("250 2.0.0 ID
// Message accepted for delivery").
func QueueID(transcript string) (string, bool) {
	m := queuedRE.FindStringSubmatch(transcript)
	if m == nil {
		return "", false
	}
	return m[1], true
}
