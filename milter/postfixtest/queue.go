package postfixtest

import (
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"
)

// pollInterval is how often the Wait functions look again.
const pollInterval = 50 * time.Millisecond

// Log returns the content of the instance's log file so far ("" if none).
func (in *Instance) Log() string {
	data, _ := os.ReadFile(in.LogFile)
	return string(data)
}

// LogLines returns the log lines that contain substr, e.g. a queue ID
// followed by a colon.
func (in *Instance) LogLines(substr string) []string { return LinesWith(in.Log(), substr) }

// WaitLog waits until a log line matches the regular expression pattern and
// returns all matching lines; it fails the test after timeout.
func (in *Instance) WaitLog(t testing.TB, pattern string, timeout time.Duration) []string {
	t.Helper()
	return WaitLogOf(t, "postfixtest", in.Log, pattern, timeout)
}

// LinesWith returns the lines of log that contain substr.
func LinesWith(log, substr string) []string {
	var lines []string
	for _, line := range strings.Split(log, "\n") {
		if strings.Contains(line, substr) {
			lines = append(lines, line)
		}
	}
	return lines
}

// WaitLogOf polls log until a line matches the regular expression pattern
// and returns all matching lines; after timeout it fails the test, naming
// who and showing the log's tail. The Postfix and Sendmail harnesses share
// it.
func WaitLogOf(t testing.TB, who string, log func() string, pattern string, timeout time.Duration) []string {
	t.Helper()
	re := regexp.MustCompile(pattern)
	deadline := time.Now().Add(timeout)
	for {
		var lines []string
		for _, line := range strings.Split(log(), "\n") {
			if re.MatchString(line) {
				lines = append(lines, line)
			}
		}
		if len(lines) > 0 {
			return lines
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no log line matches %q after %v; log tail:\n%s", who, pattern, timeout, tail(log(), 30))
		}
		time.Sleep(pollInterval)
	}
}

// Queue returns `postqueue -p`: the human-readable queue listing.
func (in *Instance) Queue(t testing.TB) string {
	t.Helper()
	out, err := in.run("postqueue", "-p")
	if err != nil {
		t.Fatalf("postfixtest: %v", err)
	}
	return out
}

// QueueEntry is one message of `postqueue -j` (Postfix ≥ 3.1, showq(8)).
type QueueEntry struct {
	QueueName  string           `json:"queue_name"` // maildrop, incoming, active, deferred or hold
	QueueID    string           `json:"queue_id"`
	Sender     string           `json:"sender"`
	Recipients []QueueRecipient `json:"recipients"`
}

// QueueRecipient is a recipient still in the queue, with the reason of its
// last delivery failure, if any.
type QueueRecipient struct {
	Address     string `json:"address"`
	DelayReason string `json:"delay_reason"`
}

// QueueEntries returns the messages in the queue.
func (in *Instance) QueueEntries(t testing.TB) []QueueEntry {
	t.Helper()
	out, err := in.run("postqueue", "-j")
	if err != nil {
		t.Fatalf("postfixtest: %v", err)
	}
	entries, err := parseQueueJSON(out)
	if err != nil {
		t.Fatalf("postfixtest: %v", err)
	}
	return entries
}

func parseQueueJSON(out string) ([]QueueEntry, error) {
	var entries []QueueEntry
	for _, line := range strings.Split(out, "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		var e QueueEntry
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			return nil, fmt.Errorf("parse postqueue -j line %q: %w", line, err)
		}
		entries = append(entries, e)
	}
	return entries, nil
}

// WaitQueued waits until the message queueID is in the named queue (e.g.
// "deferred") and returns its entry; it fails the test after timeout.
func (in *Instance) WaitQueued(t testing.TB, queueID, queueName string, timeout time.Duration) QueueEntry {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		entries := in.QueueEntries(t)
		for _, e := range entries {
			if e.QueueID == queueID && e.QueueName == queueName {
				return e
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("postfixtest: %s is not in the %s queue after %v; queue: %+v", queueID, queueName, timeout, entries)
		}
		time.Sleep(pollInterval)
	}
}

// Flush runs `postqueue -f`: deliver deferred mail now, also to destinations
// Postfix had marked as dead.
func (in *Instance) Flush(t testing.TB) {
	t.Helper()
	if _, err := in.run("postqueue", "-f"); err != nil {
		t.Fatalf("postfixtest: %v", err)
	}
}

// WaitQueueEmpty waits until no message is left in any queue; it fails the
// test after timeout, showing the queue.
func (in *Instance) WaitQueueEmpty(t testing.TB, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for len(in.QueueEntries(t)) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("postfixtest: queue not empty after %v:\n%s", timeout, in.Queue(t))
		}
		time.Sleep(pollInterval)
	}
}

// WaitDeferred waits until queueID has been deferred: it is still queued
// and a recipient carries a delay reason. Unlike WaitQueued(…,
// "deferred"), it does not depend on catching the message in the deferred
// queue itself: with the instance's one-second queue_run_delay, qmgr moves
// deferred mail back to incoming and active for its retries within a
// second, and a poller can keep missing the moment it sits in deferred.
func (in *Instance) WaitDeferred(t testing.TB, queueID string, timeout time.Duration) QueueEntry {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		entries := in.QueueEntries(t)
		for _, e := range entries {
			if e.QueueID != queueID {
				continue
			}
			for _, r := range e.Recipients {
				if r.DelayReason != "" {
					return e
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("postfixtest: %s was not deferred within %v; queue: %+v", queueID, timeout, entries)
		}
		time.Sleep(pollInterval)
	}
}
