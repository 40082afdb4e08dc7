package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/x509"
	"fmt"
	"github.com/splitrelay/splitrelay/cmd/splitrelay/internal/routetest"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// routeWorld is a DNS server and the CA for test-route cases.
type routeWorld struct {
	t      *testing.T
	ca     *routetest.CA
	caFile string
	dns    *routetest.DNSServer
	dir    string
}

func newRouteWorld(t *testing.T, records ...string) *routeWorld {
	dir := t.TempDir()
	ca := routetest.NewCA(t)
	return &routeWorld{t: t, ca: ca, caFile: ca.WriteFile(t, dir), dns: routetest.StartDNS(t, records...), dir: dir}
}

// run writes config (with {{PORT}} replaced) and runs test-route on route.
func (w *routeWorld) run(config string, port int, route string, extra ...string) (stdout, stderr string, code int) {
	w.t.Helper()
	cfg := filepath.Join(w.dir, "splitrelay.toml")
	config = "[organization]\ndomains = [\"example.com\"]\n\n" + strings.ReplaceAll(config, "{{PORT}}", strconv.Itoa(port))
	if err := os.WriteFile(cfg, []byte(config), 0o644); err != nil {
		w.t.Fatal(err)
	}
	args := append([]string{"test-route", "-c", cfg, route, "--resolver", w.dns.Addr, "--ca-file", w.caFile, "--helo", "gw.example.com"}, extra...)
	var out, errb bytes.Buffer
	code = dispatch(args, &out, &errb)
	return out.String(), errb.String(), code
}

// freePortOn returns a port free on every one of the loopback addresses.
func freePortOn(t *testing.T, ips ...string) int {
	t.Helper()
	for range 20 {
		ln, err := net.Listen("tcp", ips[0]+":0")
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ok := true
		for _, ip := range ips[1:] {
			l2, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(port)))
			if err != nil {
				ok = false
				break
			}
			l2.Close()
		}
		ln.Close()
		if ok {
			return port
		}
	}
	t.Fatal("no port free on every address")
	return 0
}

// normalize replaces the test's port (always five digits: an ephemeral
// port, so the columns keep their width) by PORT, for golden files.
func normalize(s string, port int) string {
	return strings.ReplaceAll(s, strconv.Itoa(port), "PORT")
}

// TestTestRouteMX: MX lookup through a DNS server on loopback; one MX host
// has a certificate from the test CA naming it, the other offers no TLS.
func TestTestRouteMX(t *testing.T) {
	w := newRouteWorld(t,
		"example.net. 60 IN MX 10 mx1.example.net.",
		"example.net. 60 IN MX 20 mx2.example.net.",
		"mx1.example.net. 60 IN A 127.0.0.1",
		"mx2.example.net. 60 IN A 127.0.0.2",
	)
	port := freePortOn(t, "127.0.0.1", "127.0.0.2")
	cert := w.ca.Leaf(t, "mx1.example.net")
	routetest.StartSMTP(t, fmt.Sprintf("127.0.0.1:%d", port), "mx1.example.net", routetest.ServerTLS{Cert: &cert})
	routetest.StartSMTP(t, fmt.Sprintf("127.0.0.2:%d", port), "mx2.example.net", routetest.ServerTLS{})
	out, errOut, code := w.run(`
[routes.archive]
host = "example.net"
port = {{PORT}}
mx_lookup = true
require_tls = true
require_ca_signed = true
validate_hostname = true
`, port, "archive")
	if code != 1 || errOut != "" {
		t.Errorf("exit %d, stderr %q; want 1 (mx2 has no TLS)", code, errOut)
	}
	golden(t, "../../testdata/cmd/test-route-mx.golden", normalize(out, port))
}

// TestTestRouteTables: the multiple-host form, every host tested: a
// CA-signed certificate that names its host, a self-signed one, and a
// CA-signed one for another name.
func TestTestRouteTables(t *testing.T) {
	w := newRouteWorld(t,
		"a.example.net. 60 IN A 127.0.0.1",
		"b.example.net. 60 IN A 127.0.0.3",
		"c.example.net. 60 IN A 127.0.0.4",
	)
	port := freePortOn(t, "127.0.0.1", "127.0.0.3", "127.0.0.4")
	a, b, c := w.ca.Leaf(t, "a.example.net"), (*routetest.CA)(nil).Leaf(t, "b.example.net"), w.ca.Leaf(t, "other.example.net")
	routetest.StartSMTP(t, fmt.Sprintf("127.0.0.1:%d", port), "a", routetest.ServerTLS{Cert: &a})
	routetest.StartSMTP(t, fmt.Sprintf("127.0.0.3:%d", port), "b", routetest.ServerTLS{Cert: &b})
	routetest.StartSMTP(t, fmt.Sprintf("127.0.0.4:%d", port), "c", routetest.ServerTLS{Cert: &c})
	const config = `
[routes.legacy]
primary = [{ host = "a.example.net", port = {{PORT}}, load = 70 }, { host = "b.example.net", port = {{PORT}}, load = 30 }]
secondary = [{ host = "c.example.net", port = {{PORT}} }]
require_tls = true
`
	out, _, code := w.run(config+"require_ca_signed = true\nvalidate_hostname = true\n", port, "legacy")
	if code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	golden(t, "../../testdata/cmd/test-route-tables.golden", normalize(out, port))

	// require_tls alone: every host passes; what is not required is noted.
	out, _, code = w.run(config, port, "legacy")
	if code != 0 || !strings.Contains(out, "3 of 3 addresses passed") || !strings.Contains(out, "not required") {
		t.Errorf("require_tls only: exit %d\n%s", code, out)
	}
}

// TestTestRouteFailures: what cannot be resolved, reached or spoken to
// fails, within the timeout; a route without TLS options passes a server
// without TLS.
func TestTestRouteFailures(t *testing.T) {
	w := newRouteWorld(t, "plain.example.net. 60 IN A 127.0.0.1", "silent.example.net. 60 IN A 127.0.0.1")
	plain := routetest.StartSMTP(t, "127.0.0.1:0", "plain", routetest.ServerTLS{})
	_, pp, _ := net.SplitHostPort(plain.Addr)
	port, _ := strconv.Atoi(pp)

	out, _, code := w.run("[routes.r]\nhost = \"plain.example.net\"\nport = {{PORT}}\n", port, "r")
	if code != 0 || !strings.Contains(out, "none") || !strings.Contains(out, "ok (no STARTTLS, not required)") {
		t.Errorf("no TLS options, plain server: exit %d\n%s", code, out)
	}
	out, _, code = w.run("[routes.r]\nhost = \"plain.example.net\"\nport = {{PORT}}\nrequire_tls = true\n", port, "r")
	if code != 1 || !strings.Contains(out, "FAIL: no STARTTLS") {
		t.Errorf("require_tls, plain server: exit %d\n%s", code, out)
	}
	out, _, code = w.run("[routes.r]\nhost = \"nx.example.net\"\n", 0, "r")
	if code != 1 || !strings.Contains(out, "NXDOMAIN") {
		t.Errorf("unknown host: exit %d\n%s", code, out)
	}
	closed := freePortOn(t, "127.0.0.1")
	out, _, code = w.run("[routes.r]\nhost = \"127.0.0.1\"\nport = {{PORT}}\n", closed, "r")
	if code != 1 || !strings.Contains(out, "connection refused") {
		t.Errorf("closed port: exit %d\n%s", code, out)
	}

	// A server that accepts and never speaks: bounded by --timeout.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	silent := ln.Addr().(*net.TCPAddr).Port
	start := time.Now()
	out, _, code = w.run("[routes.r]\nhost = \"silent.example.net\"\nport = {{PORT}}\n", silent, "r", "--timeout", "300ms")
	if code != 1 || !strings.Contains(out, "timeout") || time.Since(start) > 5*time.Second {
		t.Errorf("silent server: exit %d after %v\n%s", code, time.Since(start), out)
	}

	// Usage and configuration errors.
	if _, errOut, code := w.run("[routes.r]\nhost = \"h.example.net\"\n", 0, "nosuch"); code != 1 || !strings.Contains(errOut, `no route "nosuch"`) {
		t.Errorf("unknown route: exit %d, %q", code, errOut)
	}
	var o, e bytes.Buffer
	if code := dispatch([]string{"test-route", "-c", "x.toml"}, &o, &e); code != 2 || !strings.Contains(e.String(), "name one route") {
		t.Errorf("no route: exit %d, %q", code, e.String())
	}
}

func certPool(t *testing.T, ca *routetest.CA) *x509.CertPool {
	t.Helper()
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(ca.PEM) {
		t.Fatal("bad CA PEM")
	}
	return p
}

// TestProbeImplicitTLS: on port 465 routes the prober speaks TLS at once.
func TestProbeImplicitTLS(t *testing.T) {
	ca := routetest.NewCA(t)
	cert := ca.Leaf(t, "smtps.example.net")
	s := routetest.StartSMTP(t, "127.0.0.1:0", "smtps", routetest.ServerTLS{Cert: &cert, Implicit: true})
	p := &prober{helo: "gw.example.com", timeout: 5 * time.Second, now: time.Now}
	p.roots = certPool(t, ca)
	res := p.run(context.Background(), s.Addr, "smtps.example.net", true)
	if res.Err != nil || res.TLSErr != nil || res.ChainErr != nil || res.NameErr != nil || res.Version == "" {
		t.Errorf("implicit TLS probe: %+v", res)
	}
	// The same server probed as STARTTLS fails: it does not speak first.
	res = (&prober{helo: "x", timeout: 500 * time.Millisecond, now: time.Now}).run(context.Background(), s.Addr, "", false)
	if res.Err == nil {
		t.Errorf("STARTTLS probe of an implicit TLS server succeeded: %+v", res)
	}
}

// FuzzSMTPReply: the probe's reply parser never panics, never reads past
// the first complete reply, and bounds multi-line replies.
func FuzzSMTPReply(f *testing.F) {
	for _, s := range []string{"220 mx ESMTP\r\n", "250-mx\r\n250-STARTTLS\r\n250 SIZE\r\n", "250", "25", "250-\r\n", "abc\r\n", "250 ok\r\n221 bye\r\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c := &smtpConn{r: bufio.NewReader(bytes.NewReader(data))}
		lines, err := c.expect(250)
		if len(lines) > 101 {
			t.Fatalf("%d lines accepted", len(lines))
		}
		if err == nil && len(lines) == 0 {
			t.Fatal("success without a reply line")
		}
	})
}
