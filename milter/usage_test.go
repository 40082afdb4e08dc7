package milter

import (
	"testing"
	"time"
)

func TestUsageRollingWindows(t *testing.T) {
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	u := newUsage(func() time.Time { return now })
	v := view{u}
	u.record("alice@example.com", []string{"a@x.test", "b@x.test"})
	now = now.Add(5 * time.Minute)
	u.record("alice@example.com", []string{"a@x.test"})
	u.record("", []string{"c@x.test"})
	if n := v.UserMessages("alice@example.com"); n != 2 {
		t.Errorf("user messages = %d, want 2", n)
	}
	if n, seen := v.UserRecipients("alice@example.com", "a@x.test"); n != 2 || !seen {
		t.Errorf("unique recipients = %d %v, want 2 true", n, seen)
	}
	if d, ten := v.OrgRecipients(); d != 4 || ten != 4 {
		t.Errorf("org = %d/%d, want 4/4", d, ten)
	}
	now = now.Add(6 * time.Minute) // first message is 11 minutes old
	if d, ten := v.OrgRecipients(); d != 4 || ten != 2 {
		t.Errorf("after 11 min: org = %d/%d, want 4/2", d, ten)
	}
	now = now.Add(24*time.Hour - 8*time.Minute) // first message is 24h03 old, second 23h58
	if n := v.UserMessages("alice@example.com"); n != 1 {
		t.Errorf("after 24h: user messages = %d, want 1", n)
	}
	if n, seen := v.UserRecipients("alice@example.com", "b@x.test"); n != 1 || seen {
		t.Errorf("after 24h: b still counted (%d %v)", n, seen)
	}
	if d, _ := v.OrgRecipients(); d != 2 {
		t.Errorf("after 24h: org day = %d, want 2", d)
	}
}
