package e2e

import (
	enc "encoding/binary"
	"strings"
	"testing"
	"time"

	"github.com/splitrelay/splitrelay/milter/postfixtest"
	"github.com/splitrelay/splitrelay/milter/sendmailtest"
)

// The relay policy for IPv6 clients through the real MTAs: each MTA
// listens on 127.0.0.1 and on [::1] (postfixtest and sendmailtest
// Options.IPv6), the policy allows one of the two loopback addresses
// only, and a tap on the milter socket records the connect packet each
// MTA sends for the IPv6 client.
//
// What the MTAs send for a client on ::1 (SMFIC_CONNECT: host name,
// family, port, address), measured (Debian 12, no name for ::1 in
// /etc/hosts):
//
//	Postfix 3.7.11      host "[::1]",                  family '6', address "::1"
//	Sendmail 8.17.1.9   host "[IPv6:0:0:0:0:0:0:0:1]", family '6', address "IPv6:0:0:0:0:0:0:0:1"
//
// Sendmail tags the address ({client_addr}) and writes it uncompressed.
// For 127.0.0.1 both send host "localhost", family '4', "127.0.0.1".
// milter's clientAddr strips the "IPv6:" tag and the uncompressed rest
// parses as ::1, so the network ::1/128 matches it either way; it also
// makes the logged client_addr canonical (::1 from both MTAs: before,
// Sendmail's clients were logged as client_addr=0:0:0:0:0:0:0:1 next to
// reason="client ::1 ...").

// v6Cases: which loopback address the relay network allows; the other
// one is refused.
var v6Cases = []struct {
	name             string
	cidr             string
	allowed, refused string // Mail.Source
}{
	{"v6 only", "::1/128", "::1", "127.0.0.1"},
	{"v4 only", "127.0.0.1/32", "127.0.0.1", "::1"},
}

// v6Relay is a relay policy by network alone: require_network, no SMTP
// AUTH, the one network cidr.
func v6Relay(cidr string) string {
	return relayBase + `
[relay]
require_network = true
require_smtp_auth = false
networks = [{ cidr = "` + cidr + `", description = "the one loopback client", enabled = true }]
`
}

// v6Mail is the message each client tries to relay.
func v6Mail(source, rcpt string) postfixtest.Mail {
	return postfixtest.Mail{Source: source, Helo: "app.example.com", From: "app@example.com", To: []string{rcpt}}
}

// TestE2ERelayIPv6: through Postfix, a client on the allowed loopback
// address relays to the internet sink, the other gets Google's reply.
func TestE2ERelayIPv6(t *testing.T) {
	for _, tc := range v6Cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newSiteWith(t, nil, v6Relay(tc.cidr), siteOptions{ipv6: true})
			tap := tapSocket(t, s.addr)
			s.send(v6Mail(tc.allowed, "ok@elsewhere.test"))
			tr, _ := s.pf.Send(t, v6Mail(tc.refused, "no@elsewhere.test"))
			if r := rcptReply(tr, "no@elsewhere.test"); r != "550 5.7.0 Mail relay denied" {
				t.Errorf("relay from %s: got %q, want Google's 550 5.7.0 Mail relay denied\n%s", tc.refused, r, tr)
			}
			s.landed(map[string][]string{"internet": {"ok@elsewhere.test"}})
			s.d.waitLog(t, 5*time.Second, `msg="relay recipient accepted"`, "client_addr="+tc.allowed, "rcpt=ok@elsewhere.test")
			s.d.waitLog(t, 5*time.Second, `msg="recipient rejected"`, "client_addr="+tc.refused, "rcpt=no@elsewhere.test",
				`reason="client `+tc.refused+` is not in an enabled relay network"`)
			checkConnects(t, "postfix", tap.conversations(t, 2), "::1")
		})
	}
}

// TestSendmailRelayIPv6 is TestE2ERelayIPv6 through Sendmail. Its own
// relay rules let both loopback addresses relay (Relay_ok: 127.0.0.1,
// IPv6:0:0:0:0:0:0:0:1 and IPv6:::1 "originated locally"), so every
// refusal here is the milter's, after Sendmail's "<address>... ". (The
// generated block cannot express an IPv6 network and says so; for ::1
// that does not matter.) The milter on a unix socket, for the tap.
func TestSendmailRelayIPv6(t *testing.T) {
	for _, tc := range v6Cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newSendmailSiteOn(t, nil, v6Relay(tc.cidr), sendmailtest.Options{IPv6: true}, "unix")
			tap := tapSocket(t, s.ds.addr)
			s.send(v6Mail(tc.allowed, "ok@elsewhere.test"))
			tr, _ := s.sm.Send(t, v6Mail(tc.refused, "no@elsewhere.test"))
			if r, want := smReply(tr, "no@elsewhere.test"), "550 5.7.0 <no@elsewhere.test>... Mail relay denied"; r != want {
				t.Errorf("relay from %s: got %q, want %q\n%s", tc.refused, r, want, tr)
			}
			s.landed(map[string][]string{"internet": {"ok@elsewhere.test"}})
			s.d.waitLog(t, 5*time.Second, `msg="relay recipient accepted"`, "client_addr="+tc.allowed, "rcpt=ok@elsewhere.test")
			s.d.waitLog(t, 5*time.Second, `msg="recipient rejected"`, "client_addr="+tc.refused, "rcpt=no@elsewhere.test",
				`reason="client `+tc.refused+` is not in an enabled relay network"`)
			checkConnects(t, "sendmail", tap.conversations(t, 2), "IPv6:0:0:0:0:0:0:0:1")
		})
	}
}

// checkConnects checks the connect packets of a test's two milter
// conversations: one for 127.0.0.1 (family '4'), one for ::1 (family
// '6', written as want6, a form milter's clientAddr reads as ::1).
func checkConnects(t *testing.T, mta string, convs []*conversation, want6 string) {
	t.Helper()
	got := map[byte][]string{}
	for _, cv := range convs {
		c, ok := connectOf(t, cv.mta.Bytes())
		if !ok {
			t.Errorf("%s: a milter conversation without a connect packet", mta)
			continue
		}
		t.Logf("%s connect packet: host %q, family %q, port %d, address %q", mta, c.host, c.family, c.port, c.addr)
		got[c.family] = append(got[c.family], c.addr)
	}
	if a := got['6']; len(a) != 1 || a[0] != want6 {
		t.Errorf("%s: IPv6 client addresses %q, want [%q]", mta, a, want6)
	}
	if a := got['4']; len(a) != 1 || a[0] != "127.0.0.1" {
		t.Errorf("%s: IPv4 client addresses %q, want [\"127.0.0.1\"]", mta, a)
	}
}

// connect is the client in a milter connect packet (SMFIC_CONNECT).
type connect struct {
	host   string
	family byte // '4' SMFIA_INET, '6' SMFIA_INET6, 'L' SMFIA_UNIX, 'U' SMFIA_UNKNOWN
	port   uint16
	addr   string
}

// connectOf finds the connect packet in the MTA's side of a conversation.
func connectOf(t *testing.T, b []byte) (connect, bool) {
	t.Helper()
	for len(b) >= 5 {
		n := int(enc.BigEndian.Uint32(b))
		if n < 1 || 4+n > len(b) {
			t.Fatalf("packet of %d bytes in %d", n, len(b))
		}
		code, data := b[4], b[5:4+n]
		b = b[4+n:]
		if code != 'C' {
			continue
		}
		host, rest, ok := strings.Cut(string(data), "\x00")
		if !ok || rest == "" {
			t.Fatalf("connect packet %q", data)
		}
		c := connect{host: host, family: rest[0]}
		if c.family != 'U' && len(rest) >= 3 {
			c.port = enc.BigEndian.Uint16([]byte(rest[1:3]))
			c.addr, _, _ = strings.Cut(rest[3:], "\x00")
		}
		return c, true
	}
	return connect{}, false
}
