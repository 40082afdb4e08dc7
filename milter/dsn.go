package milter

import (
	"bytes"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"sync"
)

// Delivery status notifications name the original recipient.
//
// Postfix writes the DSN for a routed recipient that the route's server
// refused with the address it delivered to, in the routing namespace:
// "<carol@example.com.legacy.splitrelay.invalid>: host ... said: ..." in its
// text and "Final-Recipient: rfc822; carol@example.com.legacy.splitrelay.invalid"
// in its delivery-status part (only Original-Recipient, from the ORCPT we
// add, is clean; POSTFIX.md). With internal_mail_filter_classes = bounce
// (generated) Postfix hands its own notices to non_smtpd_milters, so the
// milter sees the DSN as local mail with the null sender, and replaces the
// body with one where every address of the routing namespace is the
// original again (SMFIR_REPLBODY). Nothing else in the notice changes.
//
// The body is kept only for such mail: Postfix sends every message's body
// without waiting for replies (negotiate, in server.go), and of any other
// message nothing is kept.

// maxDSNBody bounds what is kept of a notice's body (Postfix's
// bounce_size_limit, 50000 bytes of the original by default, keeps them
// small); a larger one is left as it is.
const maxDSNBody = 1 << 20

// dsn is the per-transaction state of a local null-sender message.
type dsn struct {
	nullSender bool // MAIL FROM:<>
	body       bytes.Buffer
	tooBig     bool
	reading    bool // a local null-sender message: its body is kept
}

// bodyChunk is the BodyChunk hook: it keeps the body of a local
// null-sender message; of any other, nothing.
func (ss *session) bodyChunk(chunk []byte) {
	if ss.client.Local && ss.dsn.nullSender {
		d := &ss.dsn
		d.reading = true
		if d.body.Len()+len(chunk) > maxDSNBody {
			d.tooBig = true
		} else if !d.tooBig {
			d.body.Write(chunk)
		}
	}
}

// rewriteDSN is the end-of-message hook: in a local null-sender message,
// addresses in the routing namespace become the original addresses.
func (ss *session) rewriteDSN(log *txlog) error {
	d := &ss.dsn
	defer func() { *d = dsn{} }()
	if !d.reading || d.tooBig || ss.rules == nil {
		return nil
	}
	body, n := unroute(d.body.Bytes(), ss.rules.Milter.RoutingSuffix)
	if n == 0 {
		return nil
	}
	if err := ss.c.ReplaceBody(body); err != nil {
		return fmt.Errorf("replace notice body: %w", err)
	}
	log.Info("notice rewritten", slog.String(KeyAction, "unroute"),
		slog.String(KeyReason, "addresses in the routing namespace named by their original"), slog.Int("addresses", n))
	return nil
}

var unrouteRE sync.Map // routing suffix -> *regexp.Regexp

// unroute replaces every address in the routing namespace of suffix
// (local@domain.<route>.<suffix>, with or without a host label such as
// p1 or p1s2) in b by local@domain, and says how many it replaced.
func unroute(b []byte, suffix string) ([]byte, int) {
	suffix = strings.ToLower(strings.Trim(suffix, "."))
	if suffix == "" {
		return b, 0
	}
	re, ok := unrouteRE.Load(suffix)
	if !ok {
		re, _ = unrouteRE.LoadOrStore(suffix, regexp.MustCompile(
			`(?i)(@[^\s<>@;"()\[\]]+?)\.(?:p[0-9]+(?:s[0-9]+)?\.)?[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.`+
				regexp.QuoteMeta(suffix)+`\.?([^a-z0-9.-]|$)`))
	}
	n := 0
	out := re.(*regexp.Regexp).ReplaceAllFunc(b, func(s []byte) []byte {
		n++
		return re.(*regexp.Regexp).ReplaceAll(s, []byte("${1}${2}"))
	})
	return out, n
}

// copyArgs are the ESMTP arguments of a dual-delivery copy: the copy is
// ours, not the sender's, so NOTIFY=NEVER replaces the client's NOTIFY and
// a refusal by the copy's route sends the sender no failure notice for a
// recipient that was delivered (RFC 3461 4.1). Postfix logs the refusal
// (status=bounced for the routed address), and our "recipient copied" line
// names the original recipient with the same queue ID.
func copyArgs(clientArgs string) string {
	var kept []string
	for _, a := range strings.Fields(clientArgs) {
		k, _, _ := strings.Cut(a, "=")
		if !strings.EqualFold(k, "NOTIFY") {
			kept = append(kept, a)
		}
	}
	return strings.Join(append(kept, "NOTIFY=NEVER"), " ")
}
