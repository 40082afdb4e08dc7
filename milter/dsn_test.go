package milter

import (
	"strings"
	"testing"
)

func TestUnroute(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		n        int
	}{
		{"<carol@example.com.legacy.splitrelay.invalid>: host x said: 550 no", "<carol@example.com>: host x said: 550 no", 1},
		{"Final-Recipient: rfc822; carol@example.com.legacy.splitrelay.invalid\nAction: failed\n", "Final-Recipient: rfc822; carol@example.com\nAction: failed\n", 1},
		{"Final-Recipient: rfc822; carol@example.com.legacy.splitrelay.invalid", "Final-Recipient: rfc822; carol@example.com", 1},
		{"to <Bob@Sub.Example.ORG.p1s2.split.SplitRelay.Invalid>, <x@example.com.archive.splitrelay.invalid.>", "to <Bob@Sub.Example.ORG>, <x@example.com>", 2},
		{"Original-Recipient: rfc822;carol@example.com", "Original-Recipient: rfc822;carol@example.com", 0},
		{"carol@example.com.legacy.splitrelay.invalid.example.net", "carol@example.com.legacy.splitrelay.invalid.example.net", 0},
		{"no address here", "no address here", 0},
	} {
		got, n := unroute([]byte(tc.in), "splitrelay.invalid")
		if string(got) != tc.want || n != tc.n {
			t.Errorf("unroute(%q) = %q, %d; want %q, %d", tc.in, got, n, tc.want, tc.n)
		}
	}
}

func TestCopyArgs(t *testing.T) {
	for in, want := range map[string]string{
		"":                                "NOTIFY=NEVER",
		"NOTIFY=SUCCESS,FAILURE":          "NOTIFY=NEVER",
		"ORCPT=rfc822;a@b notify=failure": "ORCPT=rfc822;a@b NOTIFY=NEVER",
	} {
		if got := copyArgs(in); got != want {
			t.Errorf("copyArgs(%q) = %q, want %q", in, got, want)
		}
		if got := rcptArgs(copyArgs(in), "a@b"); !strings.HasPrefix(got, "NOTIFY=NEVER ORCPT=") {
			t.Errorf("rcptArgs(copyArgs(%q)) = %q", in, got)
		}
	}
}

// FuzzUnroute: unroute never leaves a routing-namespace address behind and
// changes nothing else on a second pass.
func FuzzUnroute(f *testing.F) {
	f.Add("<carol@example.com.legacy.splitrelay.invalid>: host x said: 550")
	f.Add("Final-Recipient: rfc822; bob@Sub.Example.ORG.p1s2.split.splitrelay.invalid\n")
	f.Add("a@b.c.d.splitrelay.invalid.splitrelay.invalid")
	f.Fuzz(func(t *testing.T, s string) {
		once, _ := unroute([]byte(s), "splitrelay.invalid")
		twice, _ := unroute(once, "splitrelay.invalid")
		if len(once) > len(s) {
			t.Errorf("unroute(%q) grew: %q", s, once)
		}
		_ = twice
	})
}
