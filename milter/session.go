package milter

import (
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"runtime/debug"
	"strings"
	"time"

	"github.com/splitrelay/splitrelay/milter/wire"
	"github.com/splitrelay/splitrelay/rules"
)

// session is one milter connection; Postfix uses one per SMTP session, with
// one or more transactions (MAIL FROM ... end of message) in it.
type session struct {
	s      *Server
	c      *conn // the protocol side: macros, modifications (conn.go)
	log    txlog // connection and transaction attributes
	client rules.Client
	mta    mta
	helo   heloCheck // [relay] log_bad_helo (helo.go)

	// the transaction in progress
	rules      *rules.Ruleset
	tx         *rules.Tx
	size       int64
	headerFrom []string
	dsn        dsn // dsn.go: the body of a local notice

	probe, counted bool   // see hooks.go
	limitTx        string // relay limit reservations (limits.go); "" before the first
	reserved       bool
}

// mta is the MTA at the other end, from the v macro at connect: the two
// store recipients differently (see stored).
type mta int

const (
	mtaUnknown  mta = iota
	mtaPostfix      // v = "Postfix 3.7.11"
	mtaSendmail     // v = "8.17.1.9"
)

func (s *Server) newSession(c *conn) *session {
	ss := &session{s: s, c: c}
	ss.log.l = s.log
	ss.log.conn = append(ss.log.conn, connLog(s.connSeq.Add(1)))
	return ss
}

func (ss *session) reset() {
	ss.release()
	ss.rules, ss.tx, ss.size = nil, nil, 0
	ss.headerFrom = ss.headerFrom[:0]
	ss.dsn = dsn{}
	ss.log.resetTx()
}

// Connect starts an SMTP session: the client's address and name.
func (ss *session) Connect(host, family string, port uint16, addr string) reply {
	// Unix-socket and unknown clients have no address: no relay network
	// can match them (fail closed).
	if a, err := netip.ParseAddr(addr); err == nil {
		ss.client.Addr = a.Unmap()
	}
	ss.client.Local = localSubmission(host, addr, port) // local.go
	switch v := ss.c.macro("v"); {
	case strings.HasPrefix(v, "Postfix"):
		ss.mta = mtaPostfix
	case v != "" && v[0] >= '0' && v[0] <= '9':
		ss.mta = mtaSendmail
	}
	ss.log.conn = append(ss.log.conn, slog.String(KeyClientAddr, addr), slog.String(KeyClientName, host))
	ss.connected(host, family)
	ss.log.Debug("client connected")
	return replyContinue
}

// Helo records the HELO/EHLO name; after STARTTLS the client says EHLO
// again and Postfix sends {tls_version} with it (milter_helo_macros).
func (ss *session) Helo(name string) reply {
	ss.client.Helo = name
	ss.client.TLS = ss.c.macro("{tls_version}") != ""
	ss.noteHelo(name)
	return replyContinue
}

// MailFrom starts a transaction with the rules in force now; it keeps them
// to the end even if a reload swaps them meanwhile.
func (ss *session) MailFrom(from, esmtpArgs string) reply {
	ss.reset()
	ss.rules = ss.s.rules.Load()
	if v, _ := ss.c.mac.Lookup("{tls_version}"); len(v) > 0 {
		ss.client.TLS = true
	}
	if v, _ := ss.c.mac.Lookup("{auth_authen}"); string(v) != ss.client.Auth {
		ss.client.Auth = string(v) // {auth_authen}: milter_mail_macros default
	}
	ss.dsn.nullSender = from == "" // dsn.go
	var lim rules.Limiter
	if ss.rules.Relay != nil {
		lim = txLimiter{ss}
	}
	ss.tx = ss.rules.Begin(ss.client, from, sizeParam(esmtpArgs), lim)
	ss.log.set(KeyMailFrom, from)
	ss.log.set(KeyConfigID, ss.rules.ID) // ties every decision line to the rules that made it
	if ss.client.Auth != "" {
		ss.log.set(KeyAuth, ss.client.Auth)
	}
	return replyContinue
}

// stored is the MTA's stored form of a recipient, "" when unknown.
// Postfix's {rcpt_addr} is the recipient after smtpd's extraction and
// trivial-rewrite's canonicalisation (source route, quotes and comments
// resolved, $myorigin appended: smtpd_milter.c), which is what it
// delivers to. Sendmail's {rcpt_addr} is the mailer's user part (no
// domain for local mailers), so with Sendmail the plain RCPT argument is
// preferred and {rcpt_addr} only used when it reads as an address.
func (ss *session) stored(raw string) string {
	b, _ := ss.c.mac.Lookup("{rcpt_addr}")
	if ss.mta == mtaSendmail {
		if _, ok := rules.Canonical(raw); ok {
			return raw
		}
		if _, err := rules.ParseAddress(string(b)); err != nil {
			return ""
		}
	}
	if string(b) == raw { // the usual case: no second copy
		return raw
	}
	return string(b)
}

func (ss *session) RcptTo(addr, esmtpArgs string) (resp reply) {
	defer ss.observe("rcpt", ss.s.now())
	defer ss.recover("rcpt", &resp)
	if ss.tx == nil { // RCPT without MAIL: cannot happen with Postfix
		return replyTempFail
	}
	stored := ss.stored(addr)
	v := ss.tx.Rcpt(rules.RcptIn{Raw: addr, Stored: stored, Args: esmtpArgs})
	ss.reportHelo(v.Relay)
	switch {
	case v.Action == rules.Reject || v.Action == rules.Defer:
		log := ss.txLog()
		attrs := []slog.Attr{slog.String(KeyRcpt, addr), slog.String(KeyStoredRcpt, stored), slog.String(KeyReason, v.Reason),
			slog.String(KeyReply, v.Reply.String()), slog.Bool(KeyRelay, v.Relay), slog.String(KeyAction, v.Action.String())}
		if ss.rules.Milter.DryRun {
			log.Info("recipient would be rejected", append(attrs, slog.Bool(KeyDryRun, true))...)
			break
		}
		log.Warn("recipient rejected", attrs...)
		ss.s.obs.Recipient(v.Action.String(), "", "")
		ss.s.obs.Rejected(rejectLabel(v.Reply))
		return replyWith(v.Reply)
	case v.Relay:
		ss.txLog().Info("relay recipient accepted", slog.String(KeyRcpt, addr), slog.String(KeyAction, "relay"), slog.String(KeyReason, v.Reason))
	}
	return replyContinue
}

// Header counts the header's size and keeps the From header's value;
// the bytes are the MTA's packet, valid only during the call.
func (ss *session) Header(name, value []byte) {
	ss.size += int64(len(name) + len(value) + 4) // "name: value\r\n"
	if len(name) == 4 && strings.EqualFold(string(name), "From") {
		ss.headerFrom = append(ss.headerFrom, strings.TrimSpace(string(value)))
	}
}

// BodyChunk counts the real size (the relay size limit) and hands the
// chunk to dsn.go, which keeps only a local notice's.
func (ss *session) BodyChunk(chunk []byte) {
	ss.size += int64(len(chunk))
	ss.bodyChunk(chunk) // dsn.go
}

func (ss *session) EndOfMessage() (resp reply) {
	defer ss.observe("eom", ss.s.now())
	defer func() {
		ss.s.obs.Message(outcome(resp))
	}()
	defer ss.recover("end of message", &resp)
	defer ss.reset()
	log := ss.txLog()
	if ss.tx == nil {
		log.Error("message without transaction state; tempfail", slog.String(KeyAction, "tempfail"))
		return replyTempFail
	}
	d := ss.tx.End(rules.Message{
		HeaderFrom: strings.Join(ss.headerFrom, ", "),
		Size:       ss.size,
		Rand:       rand.IntN, // picks the hosts of multiple-host routes by load
	})
	dry := ss.rules.Milter.DryRun
	if d.Reject != nil {
		attrs := []slog.Attr{slog.String(KeyReply, d.Reject.String()), slog.String(KeyReason, "message size over relay.limits.message_size"),
			slog.Int64(KeySize, ss.size), slog.String(KeyAction, "reject")}
		if !dry {
			log.Warn("message rejected", attrs...)
			ss.s.obs.Rejected(rejectLabel(*d.Reject))
			return replyWith(*d.Reject)
		}
		log.Info("message would be rejected", append(attrs, slog.Bool(KeyDryRun, true))...)
	}
	if err := ss.apply(log, d); err != nil {
		// Changes sent so far are discarded by Postfix with the message:
		// the client keeps it and retries. Nothing is half-routed.
		log.Error("cannot apply decision; tempfail", slog.String(KeyAction, "tempfail"), slog.String(KeyErr, err.Error()))
		return replyTempFail
	}
	if err := ss.rewriteDSN(log); err != nil { // dsn.go
		log.Error("cannot rewrite notice; tempfail", slog.String(KeyAction, "tempfail"), slog.String(KeyErr, err.Error()))
		return replyTempFail
	}
	if err := ss.commit(); err != nil {
		log.Error("relay usage of an accepted message not counted", slog.String(KeyErr, err.Error()))
	}
	return replyAccept
}

// Log messages for each action, real and dry run.
var (
	msgRouted = map[bool]string{false: "recipient routed", true: "recipient would be routed"}
	msgCopied = map[bool]string{false: "recipient copied", true: "recipient would be copied"}
	msgSender = map[bool]string{false: "sender rewritten", true: "sender would be rewritten"}
)

// apply turns the decision into recipient changes, logging one line per
// routed or copied recipient and one summary line for the message.
func (ss *session) apply(log *txlog, d rules.Decision) error {
	dry := ss.rules.Milter.DryRun
	added := map[string]bool{}
	var routed, copies int
	for _, r := range d.Recipients {
		switch r.Action {
		case rules.Reject, rules.Defer: // refused at RCPT already; in dry run, left alone
			continue
		case rules.Reroute:
			routed++
			if err := ss.via(log, d, r, r.Route, r.Choice, r.Rule, "route", added); err != nil {
				return err
			}
		default:
			ss.s.obs.Recipient("accept", "", "")
			if len(r.Copies) == 0 {
				log.Debug("recipient accepted", slog.String(KeyRcpt, r.Address), slog.String(KeyAction, "accept"),
					slog.String(KeyAccount, r.Account.String()), slog.String(KeyReason, r.Reason))
			}
		}
		for _, c := range r.Copies {
			copies++
			if err := ss.via(log, d, r, c.Route, c.Choice, c.Rule, "copy", added); err != nil {
				return err
			}
		}
	}
	if d.SenderRewritten {
		log.Info(msgSender[dry],
			slog.String(KeyNewMailFrom, d.Sender), slog.String(KeyReason, d.SenderReason), slog.String(KeyAction, "rewrite_sender"))
		if !dry {
			if err := ss.c.ChangeFrom(d.Sender); err != nil {
				return fmt.Errorf("change sender to %s: %w", d.Sender, err)
			}
		}
	}
	// One summary line per message; at info level only when no
	// per-recipient line above already tells the story (one line per
	// routed message, not two: log volume is CPU on a busy gateway).
	level := slog.LevelInfo
	if routed+copies > 0 || d.SenderRewritten {
		level = slog.LevelDebug
	}
	if log.enabled(level) {
		log.log(level, "message decided", slog.String(KeyKind, d.Kind.String()), slog.String(KeyReason, d.KindReason), slog.Bool(KeyRelay, d.Relay),
			slog.Int(KeyRcpts, len(d.Recipients)), slog.Int(KeyRouted, routed), slog.Int(KeyCopies, copies), slog.Bool(KeyDryRun, dry))
	}
	return nil
}

// via sends recipient r through route (action "route": instead of normal
// delivery; "copy": in addition to it), logging and counting it; in dry
// run it only logs.
func (ss *session) via(log *txlog, d rules.Decision, r rules.Recipient, route *rules.Route, choice rules.Choice, rule, action string, added map[string]bool) error {
	to := ss.rules.RoutedAddress(r.Addr, route, choice)
	dry := ss.rules.Milter.DryRun
	ss.s.obs.Recipient(action, route.Name, rule)
	msg := msgCopied[dry]
	if action == "route" {
		msg = msgRouted[dry]
	}
	if log.enabled(slog.LevelInfo) {
		log.Info(msg, slog.String(KeyRcpt, r.Address), slog.String(KeyRoutedRcpt, to), slog.String(KeyRoute, route.Name),
			slog.String(KeyHost, route.Chosen(choice).String()), slog.String(KeyRule, rule), slog.String(KeyAction, action),
			slog.String(KeyAccount, r.Account.String()), slog.String(KeyKind, d.Kind.String()))
	}
	if dry {
		return nil
	}
	if action == "route" {
		// Postfix matches a deletion against the recipient as smtpd
		// first stored it (rules.Original). Every recipient deleted this
		// way has the same stored form, hence the same decision.
		del := rules.Original(r.Address)
		if err := ss.c.DeleteRecipient(del); err != nil {
			return fmt.Errorf("delete recipient %s: %w", del, err)
		}
	} else {
		r.Args = copyArgs(r.Args) // dsn.go: NOTIFY=NEVER
	}
	return ss.add(added, to, r)
}

// add adds a routing-namespace recipient once per message, carrying the
// original recipient's NOTIFY and ORCPT.
func (ss *session) add(added map[string]bool, to string, r rules.Recipient) error {
	if added[to] {
		return nil
	}
	added[to] = true
	if err := ss.c.AddRecipient(to, rcptArgs(r.Args, r.Address)); err != nil {
		return fmt.Errorf("add recipient %s: %w", to, err)
	}
	return nil
}

// txLog is the transaction logger, with the queue ID once Postfix has sent
// it (macro i: from the second RCPT on, and at DATA and end of message).
func (ss *session) txLog() *txlog {
	if id, _ := ss.c.mac.Lookup("i"); len(id) > 0 && string(id) != ss.log.get(KeyQueueID) {
		ss.log.set(KeyQueueID, string(id))
	}
	return &ss.log
}

// recover turns a panic in a callback into a tempfail for this message and
// a logged stack: one bad message must not take down the daemon or be
// accepted undecided.
func (ss *session) recover(stage string, resp *reply) {
	if p := recover(); p != nil {
		ss.log.Error("internal error; tempfail", slog.String(KeyStage, stage), slog.String(KeyAction, "tempfail"),
			slog.String(KeyErr, fmt.Sprint(p)), slog.String(KeyStack, string(debug.Stack())))
		*resp = replyTempFail
	}
}

// observe reports a callback's duration.
func (ss *session) observe(stage string, start time.Time) {
	if ss.probe {
		return
	}
	ss.s.obs.Callback(stage, ss.s.now().Sub(start))
}

// Abort ends the transaction without end of message.
func (ss *session) Abort() { ss.reset() }

// Cleanup ends the session.
func (ss *session) Cleanup() {
	ss.release()
	ss.closed()
}

// outcome labels an end-of-message response for the Observer.
func outcome(r reply) string {
	switch r.code {
	case wire.RespAccept:
		return "accept"
	case wire.RespReplyCode, wire.RespReject:
		return "reject"
	}
	return "tempfail"
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
