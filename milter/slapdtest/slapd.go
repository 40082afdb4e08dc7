// Package slapdtest starts a private OpenLDAP slapd for tests: its own
// configuration, database and certificates in a temporary directory,
// listening on loopback ports (ldap:// with StartTLS, and ldaps://). The
// machine's own slapd service and /etc/ldap/slapd.d are never used; only
// the schema files of the Debian package are read.
//
// A reader account (ReaderDN) may read everything but, like Active
// Directory's MaxPageSize, gets at most SizeLimit entries from a search
// that is not paged: a sync that forgets paging fails against it.
package slapdtest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"
)

// EnvE2E turns a missing slapd into a test failure (`make test` sets it).
const EnvE2E = "SPLITRELAY_E2E"

// Fixed names of the test directory.
const (
	BaseDN         = "dc=example,dc=com"
	AdminDN        = "cn=admin," + BaseDN
	AdminPassword  = "admin-secret"
	ReaderDN       = "cn=reader," + BaseDN
	ReaderPassword = "reader-secret"
	// SizeLimit is the reader's limit for searches that are not paged.
	SizeLimit = 3
)

// Server is one private slapd.
type Server struct {
	// URL is ldap://127.0.0.1:PORT (StartTLS offered); LDAPSURL is
	// ldaps://127.0.0.1:PORT. CAFile is the PEM of the CA that signed the
	// server's certificate (for 127.0.0.1 and localhost).
	URL, LDAPSURL, CAFile string
	// PasswordFile holds ReaderPassword, for bind_dn/password_file.
	PasswordFile string

	t        testing.TB
	dir      string
	port     int
	tlsPort  int
	mu       sync.Mutex
	cmd      *exec.Cmd
	exited   chan struct{}
	slapdBin string
}

// Require skips the test when slapd is missing, or fails it under
// SPLITRELAY_E2E=1. Install: apt-get install slapd ldap-utils (make deps).
func Require(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("slapd")
	if err != nil {
		if _, serr := os.Stat("/usr/sbin/slapd"); serr == nil {
			p, err = "/usr/sbin/slapd", nil
		}
	}
	if err == nil {
		if _, serr := os.Stat("/etc/ldap/schema/core.schema"); serr != nil {
			err = serr
		}
	}
	if err != nil {
		msg := "slapdtest: slapd or its schema files not found (apt-get install slapd ldap-utils, or make deps)"
		if os.Getenv(EnvE2E) == "1" {
			t.Fatalf("%s (%s=1: end-to-end tests may not be skipped)", msg, EnvE2E)
		}
		t.Skipf("%s; skipping", msg)
	}
	return p
}

// Start starts a slapd with the base entry and the reader account; it is
// stopped when the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	s := &Server{t: t, dir: t.TempDir(), slapdBin: Require(t)}
	if err := os.MkdirAll(filepath.Join(s.dir, "data"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := s.writeCerts(); err != nil {
		t.Fatal(err)
	}
	s.PasswordFile = filepath.Join(s.dir, "reader.password")
	if err := os.WriteFile(s.PasswordFile, []byte(ReaderPassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		s.port, s.tlsPort = freePort(t), freePort(t)
		if err = s.start(); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("slapdtest: %v", err)
	}
	t.Cleanup(s.Stop)
	s.Add(BaseDN, map[string][]string{"objectClass": {"dcObject", "organization"}, "dc": {"example"}, "o": {"Example"}})
	s.Add(ReaderDN, map[string][]string{"objectClass": {"person", "simpleSecurityObject"}, "cn": {"reader"}, "sn": {"reader"}, "userPassword": {ReaderPassword}})
	return s
}

func freePort(t testing.TB) int {
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// schema adds proxyAddresses (Active Directory's attribute, same OID) as
// an auxiliary class, so tests can write AD-style entries.
const schema = `attributetype ( 1.2.840.113556.1.2.210 NAME 'proxyAddresses'
	EQUALITY caseIgnoreMatch SUBSTR caseIgnoreSubstringsMatch
	SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 )
objectclass ( 1.3.6.1.4.1.4203.666.100.1 NAME 'splitrelayMailbox' SUP top AUXILIARY
	MAY ( proxyAddresses $ mail ) )
`

func (s *Server) config() string {
	return fmt.Sprintf(`include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include %[1]s/ad.schema
modulepath /usr/lib/ldap
moduleload back_mdb
pidfile %[1]s/slapd.pid
argsfile %[1]s/slapd.args
TLSCACertificateFile %[1]s/ca.pem
TLSCertificateFile %[1]s/server.pem
TLSCertificateKeyFile %[1]s/server.key
database mdb
maxsize 4294967296
suffix "%[2]s"
rootdn "%[3]s"
rootpw %[4]s
directory %[1]s/data
index objectClass eq
access to * by * read
limits dn.exact="%[5]s" size.soft=%[6]d size.hard=%[6]d size.prtotal=unlimited
`, s.dir, BaseDN, AdminDN, AdminPassword, ReaderDN, SizeLimit)
}

// start runs slapd in the foreground (-d 0) and waits until it answers.
func (s *Server) start() error {
	if err := os.WriteFile(filepath.Join(s.dir, "ad.schema"), []byte(schema), 0o644); err != nil {
		return err
	}
	conf := filepath.Join(s.dir, "slapd.conf")
	if err := os.WriteFile(conf, []byte(s.config()), 0o600); err != nil {
		return err
	}
	s.URL = "ldap://127.0.0.1:" + strconv.Itoa(s.port)
	s.LDAPSURL = "ldaps://127.0.0.1:" + strconv.Itoa(s.tlsPort)
	log, err := os.OpenFile(filepath.Join(s.dir, "slapd.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer log.Close()
	cmd := exec.Command(s.slapdBin, "-d", "0", "-f", conf, "-h", s.URL+"/ "+s.LDAPSURL+"/")
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	s.mu.Lock()
	s.cmd, s.exited = cmd, exited
	s.mu.Unlock()
	deadline := time.Now().Add(20 * time.Second)
	for {
		select {
		case <-exited:
			out, _ := os.ReadFile(filepath.Join(s.dir, "slapd.log"))
			return fmt.Errorf("slapd exited before answering: %s", lastLines(string(out), 10))
		default:
		}
		if c, err := ldap.DialURL(s.URL, ldap.DialWithDialer(&net.Dialer{Timeout: time.Second})); err == nil {
			err = c.Bind(AdminDN, AdminPassword)
			c.Close()
			if err == nil {
				return nil
			}
		}
		if time.Now().After(deadline) {
			s.Stop()
			return errors.New("slapd did not answer within 20s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// Stop stops slapd (SIGTERM to its PID, then SIGKILL after 10 s); the data
// stays for Restart.
func (s *Server) Stop() {
	s.mu.Lock()
	cmd, exited := s.cmd, s.exited
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Signal(os.Interrupt)
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		<-exited
	}
}

// Restart starts slapd again on the same ports with the same data.
func (s *Server) Restart() {
	s.t.Helper()
	if err := s.start(); err != nil {
		s.t.Fatalf("slapdtest: restart: %v", err)
	}
}

// Load adds the entries of an LDIF file offline with slapadd (a million
// entries in a minute, where Add would take an hour): slapd is stopped,
// the entries added, slapd started again.
func (s *Server) Load(ldif string) {
	s.t.Helper()
	s.Stop()
	slapadd := filepath.Join(filepath.Dir(s.slapdBin), "slapadd")
	if _, err := os.Stat(slapadd); err != nil {
		slapadd = "slapadd"
	}
	out, err := exec.Command(slapadd, "-q", "-f", filepath.Join(s.dir, "slapd.conf"), "-l", ldif).CombinedOutput()
	if err != nil {
		s.t.Fatalf("slapdtest: slapadd: %v\n%s", err, out)
	}
	s.Restart()
}

// conn binds as the administrator.
func (s *Server) conn() *ldap.Conn {
	s.t.Helper()
	c, err := ldap.DialURL(s.URL, ldap.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}))
	if err != nil {
		s.t.Fatalf("slapdtest: dial: %v", err)
	}
	if err := c.Bind(AdminDN, AdminPassword); err != nil {
		c.Close()
		s.t.Fatalf("slapdtest: bind: %v", err)
	}
	return c
}

// Add adds an entry.
func (s *Server) Add(dn string, attrs map[string][]string) {
	s.t.Helper()
	c := s.conn()
	defer c.Close()
	req := ldap.NewAddRequest(dn, nil)
	for _, k := range sortedKeys(attrs) {
		req.Attribute(k, attrs[k])
	}
	if err := c.Add(req); err != nil {
		s.t.Fatalf("slapdtest: add %s: %v", dn, err)
	}
}

// Delete removes an entry.
func (s *Server) Delete(dn string) {
	s.t.Helper()
	c := s.conn()
	defer c.Close()
	if err := c.Del(ldap.NewDelRequest(dn, nil)); err != nil {
		s.t.Fatalf("slapdtest: delete %s: %v", dn, err)
	}
}

// Replace sets an attribute of an entry to values (none: removes it).
func (s *Server) Replace(dn, attr string, values ...string) {
	s.t.Helper()
	c := s.conn()
	defer c.Close()
	req := ldap.NewModifyRequest(dn, nil)
	req.Replace(attr, values)
	if err := c.Modify(req); err != nil {
		s.t.Fatalf("slapdtest: modify %s: %v", dn, err)
	}
}

func sortedKeys(m map[string][]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j] < out[j-1]; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}

// writeCerts makes a CA and a server certificate for 127.0.0.1/localhost.
func (s *Server) writeCerts() error {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	ca := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "slapdtest CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		return err
	}
	caCert, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	srv := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, srv, caCert, &key.PublicKey, caKey)
	if err != nil {
		return err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	s.CAFile = filepath.Join(s.dir, "ca.pem")
	for name, block := range map[string]*pem.Block{
		"ca.pem":     {Type: "CERTIFICATE", Bytes: caDER},
		"server.pem": {Type: "CERTIFICATE", Bytes: der},
		"server.key": {Type: "PRIVATE KEY", Bytes: keyDER},
	} {
		if err := os.WriteFile(filepath.Join(s.dir, name), pem.EncodeToMemory(block), 0o600); err != nil {
			return err
		}
	}
	return nil
}

// TLSConfig trusts the server's CA, for clients in tests.
func (s *Server) TLSConfig() *tls.Config {
	pool := x509.NewCertPool()
	data, _ := os.ReadFile(s.CAFile)
	pool.AppendCertsFromPEM(data)
	return &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}
}
