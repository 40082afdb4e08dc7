// Package routetest is the test world of route tests (test-route's unit
// tests and the route end-to-end suite): a CA issuing certificates, SMTP
// servers with chosen TLS, a DNS server on loopback. It is not part of the
// splitrelay binary.
package routetest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/miekg/dns"
)

// Test doubles for routes: a certificate authority made in the test, SMTP
// servers with and without TLS (emersion/go-smtp: smtp-sink has no TLS),
// and a DNS server (miekg/dns). Everything listens on loopback only.

// CA is a certificate authority generated for one test.
type CA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	PEM  []byte // the CA certificate
}

// Fixed validity, so that golden output does not change with the date.
var (
	certNotBefore = time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	certNotAfter  = time.Date(2099, 12, 31, 0, 0, 0, 0, time.UTC)
)

func NewCA(t testing.TB) *CA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "splitrelay test CA"},
		NotBefore:             certNotBefore,
		NotAfter:              certNotAfter,
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &CA{cert: cert, key: key, PEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// WriteFile writes the CA certificate to dir/ca.pem, readable by all (the
// postfix user reads it as smtp_tls_CAfile).
func (ca *CA) WriteFile(t testing.TB, dir string) string {
	t.Helper()
	f := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(f, ca.PEM, 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}

// Leaf issues a server certificate for the DNS names; a nil ca makes it
// self-signed.
func (ca *CA) Leaf(t testing.TB, names ...string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: names[0]},
		DNSNames:     names,
		NotBefore:    certNotBefore,
		NotAfter:     certNotAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	parent, signer := tmpl, key
	if ca != nil {
		parent, signer = ca.cert, ca.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, signer)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// SMTPServer is a downstream SMTP server that accepts every transaction
// and records its recipients.
type SMTPServer struct {
	Addr string
	srv  *smtp.Server
	ln   net.Listener

	mu    sync.Mutex
	rcpts []string // RCPT TO of completed transactions, in order
	tls   []bool   // per completed transaction: over TLS
}

// ServerTLS says how an SMTPServer speaks TLS.
type ServerTLS struct {
	Cert     *tls.Certificate // nil: no TLS
	Implicit bool             // TLS from the first byte (port 465 style) instead of STARTTLS
}

// StartSMTP starts a server on addr ("127.0.0.1:0" for any port) and
// stops it when the test ends.
func StartSMTP(t testing.TB, addr, name string, st ServerTLS) *SMTPServer {
	t.Helper()
	s := &SMTPServer{}
	s.srv = smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		_, isTLS := c.TLSConnectionState()
		return &smtpSession{s: s, tls: isTLS}, nil
	}))
	s.srv.Domain = name
	s.srv.ReadTimeout, s.srv.WriteTimeout = 30*time.Second, 30*time.Second
	s.srv.MaxRecipients = 1000
	var ln net.Listener
	var err error
	for deadline := time.Now().Add(5 * time.Second); ; {
		// the port may have just been freed by a server stopped a moment ago
		if ln, err = net.Listen("tcp", addr); err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	if st.Cert != nil {
		cfg := &tls.Config{Certificates: []tls.Certificate{*st.Cert}}
		if st.Implicit {
			ln = tls.NewListener(ln, cfg)
		} else {
			s.srv.TLSConfig = cfg
		}
	}
	s.ln, s.Addr = ln, ln.Addr().String()
	go s.srv.Serve(ln)
	t.Cleanup(s.Stop)
	return s
}

// Stop closes the listener and every connection.
func (s *SMTPServer) Stop() { s.srv.Close() }

// Rcpts returns the recipients received so far.
func (s *SMTPServer) Rcpts() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.rcpts...)
}

// AllTLS reports whether every completed transaction came over TLS.
func (s *SMTPServer) AllTLS() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, x := range s.tls {
		if !x {
			return false
		}
	}
	return true
}

type smtpSession struct {
	s     *SMTPServer
	tls   bool
	rcpts []string
}

func (ss *smtpSession) Reset()                               { ss.rcpts = nil }
func (ss *smtpSession) Logout() error                        { return nil }
func (ss *smtpSession) Mail(string, *smtp.MailOptions) error { return nil }
func (ss *smtpSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	ss.rcpts = append(ss.rcpts, to)
	return nil
}
func (ss *smtpSession) Data(r io.Reader) error {
	if _, err := io.Copy(io.Discard, r); err != nil {
		return err
	}
	ss.s.mu.Lock()
	defer ss.s.mu.Unlock()
	ss.s.rcpts = append(ss.s.rcpts, ss.rcpts...)
	ss.s.tls = append(ss.s.tls, ss.tls)
	return nil
}

// DNSServer answers from a fixed set of records, over UDP and TCP on one
// loopback port.
type DNSServer struct {
	Addr string
}

// StartDNS serves records (zone-file lines, e.g. "example.net. MX 10
// mx1.example.net."); any other name is NXDOMAIN, any other type of a
// known name is an empty answer.
func StartDNS(t testing.TB, records ...string) *DNSServer {
	t.Helper()
	byName := map[string][]dns.RR{}
	for _, r := range records {
		rr, err := dns.NewRR(r)
		if err != nil {
			t.Fatalf("record %q: %v", r, err)
		}
		n := dns.CanonicalName(rr.Header().Name)
		byName[n] = append(byName[n], rr)
	}
	h := dns.HandlerFunc(func(w dns.ResponseWriter, req *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(req)
		q := req.Question[0]
		rrs, ok := byName[dns.CanonicalName(q.Name)]
		if !ok {
			m.Rcode = dns.RcodeNameError
		}
		for _, rr := range rrs {
			if rr.Header().Rrtype == q.Qtype {
				m.Answer = append(m.Answer, rr)
			}
		}
		w.WriteMsg(m)
	})
	// The same port for UDP and TCP: the UDP one is free, the TCP one may
	// be another process's; try a few.
	var (
		pc  net.PacketConn
		ln  net.Listener
		err error
	)
	for range 20 {
		if pc, err = net.ListenPacket("udp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		if ln, err = net.Listen("tcp", pc.LocalAddr().String()); err == nil {
			break
		}
		pc.Close()
	}
	if err != nil {
		t.Fatal(err)
	}
	udp := &dns.Server{PacketConn: pc, Handler: h}
	tcp := &dns.Server{Listener: ln, Handler: h}
	go udp.ActivateAndServe()
	go tcp.ActivateAndServe()
	t.Cleanup(func() { udp.Shutdown(); tcp.Shutdown() })
	return &DNSServer{Addr: pc.LocalAddr().String()}
}
