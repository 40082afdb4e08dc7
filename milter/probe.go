package milter

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	gomilter "github.com/d--j/go-milter"
)

// Probe is one milter round trip against a listening splitrelay, as
// Postfix would make it: negotiation, connect, HELO, MAIL FROM:<> and RCPT
// TO:<postmaster@domain>, whose reply proves that every callback before it
// ran, then abort. It changes nothing: there is no end of message, and the
// session (ProbeHost, unknown address family) is left out of the counts.
// The systemd watchdog is only fed while it succeeds.
func Probe(ctx context.Context, network, addr, domain string) error {
	timeout := 10 * time.Second
	if d, ok := ctx.Deadline(); ok {
		timeout = time.Until(d)
	}
	if timeout <= 0 {
		return context.DeadlineExceeded
	}
	c := gomilter.NewClient(network, addr,
		gomilter.WithDialer(&net.Dialer{Timeout: timeout}),
		gomilter.WithReadTimeout(timeout), gomilter.WithWriteTimeout(timeout),
		gomilter.WithAction(gomilter.OptAction(Actions)))
	s, err := c.Session(nil)
	if err != nil {
		return fmt.Errorf("probe %s: %w", c, err)
	}
	defer s.Close()
	step := func(what string, act *gomilter.Action, err error) error {
		if err != nil {
			return fmt.Errorf("probe %s: %s: %w", c, what, err)
		}
		if act == nil {
			return fmt.Errorf("probe %s: %s: no reply", c, what)
		}
		return nil
	}
	act, err := s.Conn(ProbeHost, gomilter.FamilyUnknown, 0, "")
	if err := step("connect", act, err); err != nil {
		return err
	}
	act, err = s.Helo(ProbeHost)
	if err := step("helo", act, err); err != nil {
		return err
	}
	act, err = s.Mail("", "")
	if err := step("mail", act, err); err != nil {
		return err
	}
	act, err = s.Rcpt("postmaster@"+domain, "")
	if err := step("rcpt", act, err); err != nil {
		return err
	}
	if act.Type == gomilter.ActionTempFail {
		// a recipient in our domains is only tempfailed by an internal
		// error (logged with its stack) or lost transaction state
		return errors.New("probe: rcpt tempfailed")
	}
	if err := s.Abort(nil); err != nil {
		return fmt.Errorf("probe %s: abort: %w", c, err)
	}
	return nil
}

// ProbeAddr is where to probe a listener: its own address, with an
// unspecified IP (0.0.0.0, ::, which Go listens on for both IPv4 and
// IPv6) replaced by 127.0.0.1.
func ProbeAddr(ln net.Listener) (network, addr string) {
	a := ln.Addr()
	if ta, ok := a.(*net.TCPAddr); ok && ta.IP.IsUnspecified() {
		return "tcp", (&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: ta.Port}).String()
	}
	return a.Network(), a.String()
}
