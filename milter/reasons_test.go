package milter

import (
	"slices"
	"testing"

	"github.com/splitrelay/splitrelay/rules"
)

func TestRejectReasons(t *testing.T) {
	for _, r := range []rules.Reply{
		rules.ReplyRelayDenied, rules.ReplyInvalidCredential, rules.ReplySendingDenied, rules.ReplyStartTLS,
		rules.ReplyTooManyRcpts, rules.ReplyUserDaily, rules.ReplyOrgDaily, rules.ReplyOrgPeak,
		rules.ReplyTooBig, rules.ReplyMultiBounce, {Code: 550, Enhanced: "5.1.2"}, {Code: 550, Enhanced: "5.7.9"},
	} {
		if l := rejectLabel(r); !slices.Contains(RejectReasons, l) {
			t.Errorf("rejectLabel(%v) = %q, not in RejectReasons", r, l)
		}
	}
	for _, o := range []string{outcome(replyTempFail), outcome(replyAccept), outcome(replyWith(rules.ReplyTooBig)), outcome(reply{})} {
		if !slices.Contains(Outcomes, o) {
			t.Errorf("outcome %q not in Outcomes", o)
		}
	}
}
