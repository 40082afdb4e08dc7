package milter

import (
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	gomilter "github.com/d--j/go-milter"

	"github.com/splitrelay/splitrelay/rules"
)

// session is one milter connection; Postfix uses one per SMTP session, with
// one or more transactions (MAIL FROM ... end of message) in it.
type session struct {
	s      *Server
	log    *slog.Logger // per connection
	client rules.Client

	// the transaction in progress
	rules      *rules.Ruleset
	tlog       *slog.Logger
	env        rules.Envelope // Recipients: accepted so far
	rcpts      []rcpt
	headerFrom []string
	limitTx    string // relay limit reservations (limits.go); "" before the first
	reserved   bool
}

type rcpt struct {
	addr string // without angle brackets, as received
	args string // ESMTP arguments of RCPT TO
}

var _ gomilter.Milter = (*session)(nil)

func (s *Server) newSession() *session {
	id := s.connSeq.Add(1)
	return &session{s: s, log: s.log.With(KeyConnID, strconv.FormatUint(id, 10))}
}

func (ss *session) reset() {
	ss.release()
	ss.rules, ss.tlog = nil, nil
	ss.env = rules.Envelope{Recipients: ss.env.Recipients[:0]}
	ss.rcpts, ss.headerFrom = ss.rcpts[:0], ss.headerFrom[:0]
}

func (ss *session) NewConnection(gomilter.Modifier) error { return nil }

func (ss *session) Connect(host, family string, port uint16, addr string, m gomilter.Modifier) (*gomilter.Response, error) {
	// Unix-socket and unknown clients have no address: no relay network
	// can match them (fail closed).
	if a, err := netip.ParseAddr(addr); err == nil {
		ss.client.Addr = a.Unmap()
	}
	ss.log = ss.log.With(KeyClientAddr, addr, KeyClientName, host)
	ss.log.Debug("client connected")
	return gomilter.RespContinue, nil
}

// Helo records the HELO/EHLO name; after STARTTLS the client says EHLO
// again and Postfix sends {tls_version} with it (milter_helo_macros).
func (ss *session) Helo(name string, m gomilter.Modifier) (*gomilter.Response, error) {
	ss.client.Helo = name
	ss.client.TLS = m.Get(gomilter.MacroTlsVersion) != ""
	return gomilter.RespContinue, nil
}

// MailFrom starts a transaction with the rules in force now; it keeps them
// to the end even if a reload swaps them meanwhile.
func (ss *session) MailFrom(from, esmtpArgs string, m gomilter.Modifier) (*gomilter.Response, error) {
	ss.reset()
	ss.rules = ss.s.rules.Load()
	if m.Get(gomilter.MacroTlsVersion) != "" {
		ss.client.TLS = true
	}
	ss.client.Auth = m.Get(gomilter.MacroAuthAuthen) // {auth_authen}: milter_mail_macros default
	ss.env.Client = ss.client
	ss.env.Sender = from
	ss.env.SizeParam = sizeParam(esmtpArgs)
	ss.tlog = ss.log.With(KeyMailFrom, from)
	if ss.client.Auth != "" {
		ss.tlog = ss.tlog.With(KeyAuth, ss.client.Auth)
	}
	return gomilter.RespContinue, nil
}

func (ss *session) RcptTo(addr, esmtpArgs string, m gomilter.Modifier) (resp *gomilter.Response, err error) {
	defer ss.observe("rcpt", ss.s.now())
	defer ss.recover("rcpt", &resp, &err)
	if ss.rules == nil { // RCPT without MAIL: cannot happen with Postfix
		return gomilter.RespTempFail, nil
	}
	var lim rules.Limiter
	if ss.rules.Relay != nil {
		lim = txLimiter{ss}
	}
	r := ss.rules.CheckRcpt(ss.env, addr, lim)
	if r.Action == rules.Reject {
		log := ss.txLog(m).With(KeyRcpt, addr, KeyReason, r.Reason, KeyReply, r.Reply.String(), KeyRelay, r.Relay)
		if ss.rules.Milter.DryRun {
			log.Info("recipient would be rejected", KeyAction, "reject", KeyDryRun, true)
		} else {
			log.Warn("recipient rejected", KeyAction, "reject")
			ss.s.obs.Recipient("reject", "", "")
			ss.s.obs.Rejected(rejectLabel(r.Reply))
			return gomilter.RejectWithCodeAndReason(uint16(r.Reply.Code), r.Reply.Enhanced+" "+r.Reply.Text)
		}
	} else if r.Relay {
		ss.txLog(m).Info("relay recipient accepted", KeyRcpt, addr, KeyAction, "relay", KeyReason, r.Reason)
	}
	ss.env.Recipients = append(ss.env.Recipients, addr)
	ss.rcpts = append(ss.rcpts, rcpt{addr: addr, args: esmtpArgs})
	return gomilter.RespContinue, nil
}

func (ss *session) Data(gomilter.Modifier) (*gomilter.Response, error) {
	return gomilter.RespContinue, nil
}

func (ss *session) Header(name, value string, m gomilter.Modifier) (*gomilter.Response, error) {
	ss.env.Size += int64(len(name) + len(value) + 4) // "name: value\r\n"
	if strings.EqualFold(name, "From") {
		ss.headerFrom = append(ss.headerFrom, strings.TrimSpace(value))
	}
	return gomilter.RespContinue, nil
}

func (ss *session) Headers(gomilter.Modifier) (*gomilter.Response, error) {
	return gomilter.RespContinue, nil
}

// BodyChunk counts the real size; the body is only sent (without replies)
// when the relay size limit is configured.
func (ss *session) BodyChunk(chunk []byte, _ gomilter.Modifier) (*gomilter.Response, error) {
	ss.env.Size += int64(len(chunk))
	return gomilter.RespContinue, nil
}

func (ss *session) Unknown(string, gomilter.Modifier) (*gomilter.Response, error) {
	return gomilter.RespContinue, nil
}

func (ss *session) EndOfMessage(m gomilter.Modifier) (resp *gomilter.Response, err error) {
	defer ss.observe("eom", ss.s.now())
	defer func() {
		ss.s.obs.Message(outcome(resp))
	}()
	defer ss.recover("end of message", &resp, &err)
	defer ss.reset()
	log := ss.txLog(m)
	if ss.rules == nil {
		log.Error("message without transaction state; tempfail", KeyAction, "tempfail")
		return gomilter.RespTempFail, nil
	}
	env := ss.env
	env.HeaderFrom = strings.Join(ss.headerFrom, ", ")
	env.Rand = rand.IntN // picks the hosts of multiple-host routes by load
	d := ss.rules.Decide(env)
	dry := ss.rules.Milter.DryRun
	if d.Reject != nil {
		log := log.With(KeyReply, d.Reject.String(), KeyReason, "message size over relay.limits.message_size", "size_bytes", max(env.Size, env.SizeParam))
		if !dry {
			log.Warn("message rejected", KeyAction, "reject")
			ss.s.obs.Rejected(rejectLabel(*d.Reject))
			return gomilter.RejectWithCodeAndReason(uint16(d.Reject.Code), d.Reject.Enhanced+" "+d.Reject.Text)
		}
		log.Info("message would be rejected", KeyAction, "reject", KeyDryRun, true)
	}
	if !dry {
		for _, r := range d.Recipients {
			if r.Action == rules.Reject {
				// Accepted at RCPT TO, refused now: the rules cannot
				// disagree with themselves, so something is wrong; keep
				// the mail with the client rather than guess.
				log.Error("recipient accepted at RCPT TO is refused at end of message; tempfail",
					KeyRcpt, r.Address, KeyReason, r.Reason, KeyAction, "tempfail")
				return gomilter.RespTempFail, nil
			}
		}
	}
	if err := ss.apply(m, log, d); err != nil {
		// Changes sent so far are discarded by Postfix with the message:
		// the client keeps it and retries. Nothing is half-routed.
		log.Error("cannot apply decision; tempfail", KeyAction, "tempfail", KeyErr, err)
		return gomilter.RespTempFail, nil
	}
	if err := ss.commit(); err != nil {
		log.Error("relay usage of an accepted message not counted", KeyErr, err)
	}
	return gomilter.RespAccept, nil
}

// Log messages for each action, real and dry run.
var (
	msgRouted = map[bool]string{false: "recipient routed", true: "recipient would be routed"}
	msgCopied = map[bool]string{false: "recipient copied", true: "recipient would be copied"}
	msgSender = map[bool]string{false: "sender rewritten", true: "sender would be rewritten"}
)

// apply turns the decision into recipient changes, logging one line per
// routed or copied recipient and one summary line for the message.
func (ss *session) apply(m gomilter.Modifier, log *slog.Logger, d rules.Decision) error {
	dry := ss.rules.Milter.DryRun
	added := map[string]bool{}
	var routed, copies int
	for i, r := range d.Recipients {
		orig := ss.rcpts[i]
		switch r.Action {
		case rules.Reject: // refused at RCPT already; in dry run, left alone
			continue
		case rules.Reroute:
			routed++
			if err := ss.via(m, log, d, r, r.Route, r.Choice, r.Rule, "route", orig, added); err != nil {
				return err
			}
		default:
			ss.s.obs.Recipient("accept", "", "")
			if len(r.Copies) == 0 {
				log.Debug("recipient accepted", KeyRcpt, r.Address, KeyAction, "accept", KeyAccount, r.Account.String(), KeyReason, r.Reason)
			}
		}
		for _, c := range r.Copies {
			copies++
			if err := ss.via(m, log, d, r, c.Route, c.Choice, c.Rule, "copy", orig, added); err != nil {
				return err
			}
		}
	}
	if d.SenderRewritten {
		log.Info(msgSender[dry],
			KeyNewMailFrom, d.Sender, KeyReason, d.SenderReason, KeyAction, "rewrite_sender")
		if !dry {
			if err := m.ChangeFrom(d.Sender, ""); err != nil {
				return fmt.Errorf("change sender to %s: %w", d.Sender, err)
			}
		}
	}
	log.Info("message decided", KeyKind, d.Kind.String(), KeyReason, d.KindReason, KeyRelay, d.Relay,
		KeyRcpts, len(d.Recipients), KeyRouted, routed, KeyCopies, copies, KeyDryRun, dry)
	return nil
}

// via sends recipient r through route (action "route": instead of normal
// delivery; "copy": in addition to it), logging and counting it; in dry
// run it only logs.
func (ss *session) via(m gomilter.Modifier, log *slog.Logger, d rules.Decision, r rules.Recipient, route *rules.Route, choice rules.Choice, rule, action string, orig rcpt, added map[string]bool) error {
	to := ss.rules.RoutedAddress(r.Address, route, choice)
	if to == "" {
		return fmt.Errorf("no routed form for %q", r.Address)
	}
	dry := ss.rules.Milter.DryRun
	ss.s.obs.Recipient(action, route.Name, rule)
	msg := msgCopied[dry]
	if action == "route" {
		msg = msgRouted[dry]
	}
	log.Info(msg, KeyRcpt, r.Address, KeyRoutedRcpt, to, KeyRoute, route.Name, KeyHost, route.Chosen(choice).String(),
		KeyRule, rule, KeyAction, action, KeyAccount, r.Account.String(), KeyKind, d.Kind.String())
	if dry {
		return nil
	}
	if action == "route" {
		if err := m.DeleteRecipient(orig.addr); err != nil {
			return fmt.Errorf("delete recipient %s: %w", orig.addr, err)
		}
	}
	return ss.add(m, added, to, orig)
}

// add adds a routing-namespace recipient once per message, carrying the
// original recipient's NOTIFY and ORCPT.
func (ss *session) add(m gomilter.Modifier, added map[string]bool, to string, orig rcpt) error {
	if added[to] {
		return nil
	}
	added[to] = true
	if err := m.AddRecipient(to, rcptArgs(orig.args, orig.addr)); err != nil {
		return fmt.Errorf("add recipient %s: %w", to, err)
	}
	return nil
}

// txLog is the transaction logger with the queue ID once Postfix has sent
// it (macro i: from the second RCPT on, and at DATA and end of message).
func (ss *session) txLog(m gomilter.Modifier) *slog.Logger {
	log := ss.tlog
	if log == nil {
		log = ss.log
	}
	if id := m.Get(gomilter.MacroQueueId); id != "" {
		return log.With(KeyQueueID, id)
	}
	return log
}

// recover turns a panic in a callback into a tempfail for this message and
// a logged stack: one bad message must not take down the daemon or be
// accepted undecided.
func (ss *session) recover(stage string, resp **gomilter.Response, err *error) {
	if p := recover(); p != nil {
		ss.log.Error("internal error; tempfail", "stage", stage, KeyAction, "tempfail", KeyErr, fmt.Sprint(p), KeyStack, string(debug.Stack()))
		*resp, *err = gomilter.RespTempFail, nil
	}
}

// observe reports a callback's duration.
func (ss *session) observe(stage string, start time.Time) {
	ss.s.obs.Callback(stage, ss.s.now().Sub(start))
}

func (ss *session) Abort(gomilter.Modifier) error {
	ss.reset()
	return nil
}

func (ss *session) Cleanup(gomilter.Modifier) { ss.release() }

// outcome labels an end-of-message response for the Observer.
func outcome(r *gomilter.Response) string {
	switch {
	case r == gomilter.RespAccept:
		return "accept"
	case r == gomilter.RespTempFail || r == nil:
		return "tempfail"
	}
	return "reject"
}

// rejectLabel is a stable metrics label for a reply.
func rejectLabel(r rules.Reply) string {
	switch r {
	case rules.ReplyRelayDenied:
		return "relay_denied"
	case rules.ReplyInvalidCredential:
		return "invalid_credentials"
	case rules.ReplySendingDenied:
		return "sending_denied"
	case rules.ReplyStartTLS:
		return "tls_required"
	case rules.ReplyTooManyRcpts:
		return "too_many_recipients"
	case rules.ReplyUserDaily:
		return "user_daily_limit"
	case rules.ReplyOrgDaily:
		return "org_daily_limit"
	case rules.ReplyOrgPeak:
		return "org_peak_limit"
	case rules.ReplyTooBig:
		return "message_size"
	case rules.ReplyMultiBounce:
		return "multi_recipient_bounce"
	}
	if r.Enhanced == "5.1.2" {
		return "routing_namespace"
	}
	return "other"
}
