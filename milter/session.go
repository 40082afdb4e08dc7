package milter

import (
	"fmt"
	"log/slog"
	"math/rand/v2"
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
	client string

	// the transaction in progress
	rules      *rules.Ruleset
	tlog       *slog.Logger
	sender     string
	rcpts      []rcpt
	headerFrom []string
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
	ss.rules, ss.tlog, ss.sender = nil, nil, ""
	ss.rcpts, ss.headerFrom = ss.rcpts[:0], ss.headerFrom[:0]
}

func (ss *session) NewConnection(gomilter.Modifier) error { return nil }

func (ss *session) Connect(host, family string, port uint16, addr string, m gomilter.Modifier) (*gomilter.Response, error) {
	ss.client = addr
	ss.log = ss.log.With(KeyClientAddr, addr, KeyClientName, host)
	ss.log.Debug("client connected")
	return gomilter.RespContinue, nil
}

func (ss *session) Helo(string, gomilter.Modifier) (*gomilter.Response, error) {
	return gomilter.RespContinue, nil
}

func (ss *session) MailFrom(from, esmtpArgs string, m gomilter.Modifier) (*gomilter.Response, error) {
	ss.reset()
	ss.rules = ss.s.rules.Load()
	ss.sender = from
	ss.tlog = ss.log.With(KeyMailFrom, from)
	return gomilter.RespContinue, nil
}

func (ss *session) RcptTo(addr, esmtpArgs string, m gomilter.Modifier) (resp *gomilter.Response, err error) {
	defer ss.observe("rcpt", ss.s.now())
	defer ss.recover("rcpt", &resp, &err)
	if ss.rules == nil { // RCPT without MAIL: cannot happen with Postfix
		return gomilter.RespTempFail, nil
	}
	if reply, reason, ok := ss.rules.CheckRecipient(addr); !ok {
		log := ss.txLog(m).With(KeyRcpt, addr, KeyReason, reason, KeyReply, reply.String())
		if ss.rules.Milter.DryRun {
			log.Info("recipient would be rejected", KeyAction, "reject", KeyDryRun, true)
		} else {
			log.Warn("recipient rejected", KeyAction, "reject")
			ss.s.obs.Recipient("reject", "", "")
			ss.s.obs.Rejected("routing_namespace")
			return gomilter.RejectWithCodeAndReason(uint16(reply.Code), reply.Enhanced+" "+reply.Text)
		}
	}
	ss.rcpts = append(ss.rcpts, rcpt{addr: addr, args: esmtpArgs})
	return gomilter.RespContinue, nil
}

func (ss *session) Data(gomilter.Modifier) (*gomilter.Response, error) {
	return gomilter.RespContinue, nil
}

func (ss *session) Header(name, value string, m gomilter.Modifier) (*gomilter.Response, error) {
	if strings.EqualFold(name, "From") {
		ss.headerFrom = append(ss.headerFrom, strings.TrimSpace(value))
	}
	return gomilter.RespContinue, nil
}

func (ss *session) Headers(gomilter.Modifier) (*gomilter.Response, error) {
	return gomilter.RespContinue, nil
}

func (ss *session) BodyChunk([]byte, gomilter.Modifier) (*gomilter.Response, error) {
	return gomilter.RespSkip, nil
}

func (ss *session) Unknown(string, gomilter.Modifier) (*gomilter.Response, error) {
	return gomilter.RespContinue, nil
}

func (ss *session) EndOfMessage(m gomilter.Modifier) (resp *gomilter.Response, err error) {
	defer ss.observe("eom", ss.s.now())
	defer func() {
		ss.s.obs.Message(map[bool]string{true: "accept", false: "tempfail"}[resp == gomilter.RespAccept])
	}()
	defer ss.recover("end of message", &resp, &err)
	defer ss.reset()
	log := ss.txLog(m)
	if ss.rules == nil {
		log.Error("message without transaction state; tempfail", KeyAction, "tempfail")
		return gomilter.RespTempFail, nil
	}
	env := rules.Envelope{Sender: ss.sender, HeaderFrom: strings.Join(ss.headerFrom, ", ")}
	env.Rand = rand.IntN // picks the hosts of multiple-host routes by load
	for _, r := range ss.rcpts {
		env.Recipients = append(env.Recipients, r.addr)
	}
	d := ss.rules.Decide(env)
	if err := ss.apply(m, log, d); err != nil {
		// Changes sent so far are discarded by Postfix with the message:
		// the client keeps it and retries. Nothing is half-routed.
		log.Error("cannot apply decision; tempfail", KeyAction, "tempfail", KeyErr, err)
		return gomilter.RespTempFail, nil
	}
	return gomilter.RespAccept, nil
}

// apply turns the decision into recipient changes, logging one line per
// routed or copied recipient and one summary line for the message.
func (ss *session) apply(m gomilter.Modifier, log *slog.Logger, d rules.Decision) error {
	rs := ss.rules
	dry := rs.Milter.DryRun
	verb := map[bool]string{false: "recipient routed", true: "recipient would be routed"}
	copyVerb := map[bool]string{false: "recipient copied", true: "recipient would be copied"}
	added := map[string]bool{}
	var routed, copies int
	for i, r := range d.Recipients {
		orig := ss.rcpts[i]
		switch r.Action {
		case rules.Reject: // refused at RCPT already; in dry run, left alone
			continue
		case rules.Reroute:
			to := rs.RoutedAddress(r.Address, r.Route, r.Choice)
			if to == "" {
				return fmt.Errorf("no routed form for %q", r.Address)
			}
			routed++
			ss.s.obs.Recipient("route", r.Route.Name, r.Rule)
			log.Info(verb[dry], KeyRcpt, r.Address, KeyRoutedRcpt, to, KeyRoute, r.Route.Name,
				KeyHost, r.Route.Chosen(r.Choice).String(), KeyRule, r.Rule, KeyAction, "route", KeyAccount, r.Account.String(), KeyKind, d.Kind.String())
			if !dry {
				if err := m.DeleteRecipient(orig.addr); err != nil {
					return fmt.Errorf("delete recipient %s: %w", orig.addr, err)
				}
				if err := ss.add(m, added, to, orig); err != nil {
					return err
				}
			}
		default:
			ss.s.obs.Recipient("accept", "", "")
			if len(r.Copies) == 0 {
				log.Debug("recipient accepted", KeyRcpt, r.Address, KeyAction, "accept", KeyAccount, r.Account.String(), KeyReason, r.Reason)
			}
		}
		for _, c := range r.Copies {
			to := rs.RoutedAddress(r.Address, c.Route, c.Choice)
			if to == "" {
				return fmt.Errorf("no routed form for %q", r.Address)
			}
			copies++
			ss.s.obs.Recipient("copy", c.Route.Name, c.Rule)
			log.Info(copyVerb[dry], KeyRcpt, r.Address, KeyRoutedRcpt, to, KeyRoute, c.Route.Name,
				KeyHost, c.Route.Chosen(c.Choice).String(), KeyRule, c.Rule, KeyAction, "copy", KeyAccount, r.Account.String(), KeyKind, d.Kind.String())
			if !dry {
				if err := ss.add(m, added, to, orig); err != nil {
					return err
				}
			}
		}
	}
	log.Info("message decided", KeyKind, d.Kind.String(), KeyReason, d.KindReason,
		KeyRcpts, len(d.Recipients), KeyRouted, routed, KeyCopies, copies, KeyDryRun, dry)
	return nil
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

func (ss *session) Cleanup(gomilter.Modifier) {}
