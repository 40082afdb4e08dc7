package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// probe is what one connection to one address of a route's host showed.
type probe struct {
	Err       error  // the connection or SMTP dialogue failed
	StartTLS  bool   // the server offered STARTTLS (or spoke implicit TLS)
	TLSErr    error  // the TLS handshake failed
	Version   string // "TLS1.3"; "" without TLS
	Cipher    string
	Leaf      *x509.Certificate
	ChainErr  error // nil: the chain verifies against the trust anchors
	NameErr   error // nil: the certificate names the host
	NameCheck bool  // NameErr is meaningful (the host is a name, not an address)
}

// prober connects to SMTP servers like Postfix's smtp(8) does for a route:
// EHLO, STARTTLS (or TLS at once on port 465), then EHLO again and QUIT.
// It verifies the certificate itself, against roots, so that it can report
// each property (CA signature, host name) separately; like Postfix by
// default (smtp_tls_servername empty) it sends no SNI.
type prober struct {
	helo    string
	roots   *x509.CertPool // nil: the system's
	timeout time.Duration  // bounds each connection, dialogue included
	now     func() time.Time
}

// run probes addr (host:port). name is the host name the certificate
// should carry ("" when the host is an IP address).
func (p *prober) run(ctx context.Context, addr, name string, implicit bool) probe {
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return probe{Err: err}
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	var res probe
	c := &smtpConn{conn: conn, r: bufio.NewReader(conn)}
	if implicit {
		res.StartTLS = true
		tc := tls.Client(conn, p.tlsConfig())
		if err := tc.HandshakeContext(ctx); err != nil {
			res.TLSErr = err
			return res
		}
		p.inspect(&res, tc.ConnectionState(), name)
		c = &smtpConn{conn: tc, r: bufio.NewReader(tc)}
		if _, err := c.expect(220); err != nil {
			res.Err = fmt.Errorf("greeting: %w", err)
			return res
		}
		if _, err := c.cmd(250, "EHLO "+p.helo); err != nil {
			res.Err = err
		}
		c.quit()
		return res
	}
	if _, err := c.expect(220); err != nil {
		res.Err = fmt.Errorf("greeting: %w", err)
		return res
	}
	ext, err := c.cmd(250, "EHLO "+p.helo)
	if err != nil {
		res.Err = err
		return res
	}
	for _, l := range ext[1:] {
		if strings.EqualFold(strings.Fields(l + " x")[0], "STARTTLS") {
			res.StartTLS = true
		}
	}
	if !res.StartTLS {
		c.quit()
		return res
	}
	if _, err := c.cmd(220, "STARTTLS"); err != nil {
		res.TLSErr = err
		return res
	}
	tc := tls.Client(conn, p.tlsConfig())
	if err := tc.HandshakeContext(ctx); err != nil {
		res.TLSErr = err
		return res
	}
	p.inspect(&res, tc.ConnectionState(), name)
	c = &smtpConn{conn: tc, r: bufio.NewReader(tc)}
	if _, err := c.cmd(250, "EHLO "+p.helo); err != nil {
		res.Err = fmt.Errorf("after STARTTLS: %w", err)
		return res
	}
	c.quit()
	return res
}

func (p *prober) tlsConfig() *tls.Config {
	// The certificate is verified in inspect, property by property.
	return &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS10} //nolint:gosec
}

// inspect records the TLS session and checks the certificate: the chain
// against the roots (no name), then the name, as Postfix's "verify" level
// with smtp_tls_verify_cert_match = hostname does.
func (p *prober) inspect(res *probe, cs tls.ConnectionState, name string) {
	res.Version = strings.ReplaceAll(tls.VersionName(cs.Version), " ", "")
	res.Cipher = tls.CipherSuiteName(cs.CipherSuite)
	if len(cs.PeerCertificates) == 0 {
		res.ChainErr = errors.New("no certificate")
		return
	}
	res.Leaf = cs.PeerCertificates[0]
	inter := x509.NewCertPool()
	for _, c := range cs.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	_, res.ChainErr = res.Leaf.Verify(x509.VerifyOptions{Roots: p.roots, Intermediates: inter, CurrentTime: p.now()})
	if name != "" {
		res.NameCheck = true
		res.NameErr = res.Leaf.VerifyHostname(name)
	}
}

// smtpConn is the client side of an SMTP dialogue, just enough for a probe.
type smtpConn struct {
	conn net.Conn
	r    *bufio.Reader
}

// expect reads one (multi-line) reply and checks its code.
func (c *smtpConn) expect(code int) ([]string, error) {
	var lines []string
	for {
		l, err := c.r.ReadString('\n')
		if err != nil {
			return lines, err
		}
		l = strings.TrimRight(l, "\r\n")
		if len(l) < 3 {
			return lines, fmt.Errorf("bad reply %q", l)
		}
		lines = append(lines, strings.TrimSpace(l[min(4, len(l)):]))
		if len(l) == 3 || l[3] != '-' {
			if got, err := strconv.Atoi(l[:3]); err != nil || got != code {
				return lines, fmt.Errorf("server said %q", l)
			}
			return lines, nil
		}
		if len(lines) > 100 {
			return lines, errors.New("reply of more than 100 lines")
		}
	}
}

// cmd sends a command and reads its reply.
func (c *smtpConn) cmd(code int, line string) ([]string, error) {
	if _, err := c.conn.Write([]byte(line + "\r\n")); err != nil {
		return nil, err
	}
	verb, _, _ := strings.Cut(line, " ")
	lines, err := c.expect(code)
	if err != nil {
		return lines, fmt.Errorf("%s: %w", verb, err)
	}
	return lines, nil
}

func (c *smtpConn) quit() { c.cmd(221, "QUIT") }

// hostPort joins an address and a port ("[2001:db8::1]:25").
func hostPort(a netip.Addr, port int) string { return netip.AddrPortFrom(a, uint16(port)).String() }
