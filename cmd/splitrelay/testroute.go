package main

import (
	"context"
	"crypto/x509"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/splitrelay/splitrelay/rules"
)

const testRouteFlags = `  --resolver ADDR       DNS server to ask, host[:port] (default: the first
                        nameserver of /etc/resolv.conf)
  --ca-file FILE        trust anchors for require_ca_signed, PEM (default: the
                        system's; give Postfix's smtp_tls_CAfile if it has one)
  --timeout DURATION    bound for each connection with its SMTP dialogue, and
                        for each DNS query (default 10s)
  --helo NAME           EHLO name (default: this machine's host name)
`

// cmdTestRoute is `splitrelay test-route -c FILE ROUTE`, Google's "Test TLS
// connection" button: it resolves every host of the route as Postfix will
// (MX records with mx_lookup, then A/AAAA), connects to each address,
// says EHLO, starts TLS, and checks the certificate as the route's options
// demand. It prints one row per address and exits 1 when any address
// fails a property the route requires (or cannot be reached at all).
func cmdTestRoute(args []string, stdout, stderr io.Writer) int {
	fs, config := newFlags("test-route", "-c FILE ROUTE [--resolver ADDR] [--ca-file FILE] [--timeout DURATION] [--helo NAME]", testRouteFlags, stdout, stderr)
	resolverAddr := fs.String("resolver", "", "")
	caFile := fs.String("ca-file", "", "")
	timeout := fs.Duration("timeout", 10*time.Second, "")
	helo := fs.String("helo", "", "")
	// ROUTE may come before or after the flags.
	names, code, ok := fs.parseArgs(args)
	if !ok {
		return code
	}
	if len(names) != 1 {
		return usageError(fs, "name one route")
	}
	if *timeout <= 0 {
		return usageError(fs, "--timeout must be positive")
	}
	if *helo == "" {
		*helo, _ = os.Hostname()
		if *helo == "" {
			*helo = "localhost"
		}
	}

	rs, err := loadConfig(*config)
	if err != nil {
		printLoadError(stderr, err)
		return 1
	}
	route := rs.Routes[names[0]]
	if route == nil {
		fmt.Fprintf(stderr, "splitrelay test-route: %s has no route %q (routes: %s)\n", rs.Name, names[0], strings.Join(rs.RouteNames, ", "))
		return 1
	}
	var roots *x509.CertPool
	if *caFile != "" {
		pem, err := os.ReadFile(*caFile)
		if err != nil {
			fmt.Fprintf(stderr, "splitrelay test-route: %v\n", err)
			return 1
		}
		roots = x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pem) {
			fmt.Fprintf(stderr, "splitrelay test-route: %s holds no PEM certificate\n", *caFile)
			return 1
		}
	}
	res, err := newResolver(*resolverAddr, *timeout)
	if err != nil {
		fmt.Fprintf(stderr, "splitrelay test-route: %v\n", err)
		return 1
	}
	t := &routeTest{
		route: route, res: res,
		prober: &prober{helo: *helo, roots: roots, timeout: *timeout, now: time.Now},
	}
	rows := t.run(context.Background())
	return writeRouteTest(stdout, route, rows)
}

// routeTest tests every address of every host of one route.
type routeTest struct {
	route  *rules.Route
	res    *resolver
	prober *prober
}

// row is one line of the table: one address of one host.
type row struct {
	role, host, addr string
	p                probe
	fails, notes     []string
}

func (t *routeTest) run(ctx context.Context) []row {
	r := t.route
	var rows []row
	for i, h := range r.Order(rules.Choice{}) {
		role := "host"
		switch {
		case r.Multiple() && i < len(r.Primary):
			role = fmt.Sprintf("primary %d (%d%%)", i+1, h.Load)
		case r.Multiple():
			role = fmt.Sprintf("secondary %d (%d%%)", i-len(r.Primary)+1, h.Load)
		}
		rows = append(rows, t.host(ctx, role, h)...)
	}
	return rows
}

// host resolves one host of the route and probes each of its addresses.
func (t *routeTest) host(ctx context.Context, role string, h rules.Host) []row {
	if a, err := netip.ParseAddr(h.Host); err == nil {
		return []row{t.probe(ctx, role, h.Host, "", a, h.Port)}
	}
	type named struct{ label, name string }
	names := []named{{h.Host, h.Host}}
	if t.route.MXLookup {
		mxs, err := t.res.mx(ctx, h.Host)
		if err != nil {
			return []row{{role: role, host: h.Host, addr: "-", fails: []string{err.Error()}}}
		}
		names = names[:0]
		for _, mx := range mxs {
			if mx.Name == h.Host {
				names = append(names, named{h.Host + " (no MX: the domain itself)", h.Host})
			} else {
				names = append(names, named{fmt.Sprintf("%s (MX %d of %s)", mx.Name, mx.Pref, h.Host), mx.Name})
			}
		}
	}
	var rows []row
	for _, n := range names {
		addrs, err := t.res.addrs(ctx, n.name)
		if err != nil {
			rows = append(rows, row{role: role, host: n.label, addr: "-", fails: []string{err.Error()}})
			continue
		}
		for _, a := range addrs {
			rows = append(rows, t.probe(ctx, role, n.label, n.name, a, h.Port))
		}
	}
	return rows
}

// probe connects to one address and judges what it saw against the
// route's options: the failures of required properties, and notes about
// the others.
func (t *routeTest) probe(ctx context.Context, role, label, name string, a netip.Addr, port int) row {
	r := t.route
	rw := row{role: role, host: label, addr: hostPort(a, port)}
	rw.p = t.prober.run(ctx, rw.addr, name, r.ImplicitTLS())
	p := rw.p
	needTLS := r.RequireTLS || r.ImplicitTLS()
	judge := func(required bool, what string) {
		if required {
			rw.fails = append(rw.fails, what)
		} else {
			rw.notes = append(rw.notes, what+", not required")
		}
	}
	switch {
	case !p.StartTLS && p.Err != nil:
		rw.fails = append(rw.fails, p.Err.Error())
		return rw
	case !p.StartTLS:
		judge(needTLS, "no STARTTLS")
		return rw
	case p.TLSErr != nil:
		judge(needTLS, "TLS failed: "+p.TLSErr.Error())
		return rw
	}
	if p.ChainErr != nil {
		judge(r.RequireCASigned, "certificate not signed by a trusted CA: "+p.ChainErr.Error())
	}
	if p.NameCheck && p.NameErr != nil {
		judge(r.ValidateHostname, "certificate does not name "+name)
	}
	if p.Err != nil {
		rw.fails = append(rw.fails, p.Err.Error())
	}
	return rw
}

// writeRouteTest prints the table and returns the exit code: 0 when every
// address passed every required property, 1 otherwise.
func writeRouteTest(w io.Writer, r *rules.Route, rows []row) int {
	fmt.Fprintf(w, "route %s\n", r)
	fmt.Fprintf(w, "requires: %s\n\n", requirements(r))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ROLE\tHOST\tADDRESS\tTLS\tCIPHER\tSUBJECT\tISSUER\tEXPIRES\tVERDICT")
	failed := 0
	for _, rw := range rows {
		tlsv, cipher, subj, issuer, exp := "-", "-", "-", "-", "-"
		if rw.p.Version != "" {
			tlsv, cipher = rw.p.Version, rw.p.Cipher
		} else if rw.p.StartTLS && rw.p.TLSErr != nil {
			tlsv = "failed"
		} else if rw.addr != "-" && rw.p.Err == nil {
			tlsv = "none"
		}
		if c := rw.p.Leaf; c != nil {
			subj, issuer, exp = name(c.Subject.CommonName, c.Subject.String()), name(c.Issuer.CommonName, c.Issuer.String()), c.NotAfter.UTC().Format("2006-01-02")
		}
		verdict := "ok"
		if len(rw.fails) > 0 {
			failed++
			verdict = "FAIL: " + strings.Join(rw.fails, "; ")
		}
		if len(rw.notes) > 0 {
			verdict += " (" + strings.Join(rw.notes, "; ") + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", rw.role, rw.host, rw.addr, tlsv, cipher, subj, issuer, exp, verdict)
	}
	tw.Flush()
	fmt.Fprintf(w, "\n%d of %d addresses passed.\n", len(rows)-failed, len(rows))
	if failed > 0 {
		return 1
	}
	return 0
}

// requirements lists what the route demands of each address.
func requirements(r *rules.Route) string {
	req := []string{"reachable, EHLO accepted"}
	switch {
	case r.ImplicitTLS():
		req = append(req, "implicit TLS (port 465)")
	case r.RequireTLS:
		req = append(req, "STARTTLS")
	}
	if r.RequireCASigned {
		req = append(req, "certificate signed by a trusted CA")
	}
	if r.ValidateHostname {
		req = append(req, "certificate names the host")
	}
	return strings.Join(req, ", ")
}

// name is the common name, or the whole distinguished name without one.
func name(cn, dn string) string {
	if cn != "" {
		return "CN=" + cn
	}
	if dn == "" {
		return "-"
	}
	return dn
}
