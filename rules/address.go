package rules

import (
	"errors"
	"net/netip"
	"strings"
	"unicode/utf8"

	"golang.org/x/net/idna"
)

// Address is an envelope address parsed once into every form a check
// reads: the directory and address: filters compare Key, patterns see
// String, the relay policy and the organisation test read ASCII, and a
// routed recipient is rebuilt from Local and Domain so that it reaches the
// route's server exactly as stored (case, U-labels, subaddress kept).
//
// The MTA's stored form is what decisions are made on (PRODUCT.md): for
// Postfix the {rcpt_addr} macro, which is the recipient after smtpd's
// address extraction (angle brackets, source route, quotes and comments
// resolved) and trivial-rewrite's canonicalisation (an unqualified address
// completed with $myorigin) — see Canonical for the part we can do
// ourselves.
type Address struct {
	// Local is the local part in its internal (unquoted) form, case kept:
	// only the receiving system may fold it.
	Local string
	// Domain is the domain as stored: case and U-labels kept, no trailing
	// dot. Empty for an unqualified address.
	Domain string
	// ASCII is the domain in lower-case IDNA A-label form; address
	// literals ([192.0.2.1]) are kept, lower case.
	ASCII string
	// Key is what the directory, address: filters and unique-recipient
	// counting compare: the local part case-folded as well as the domain,
	// as Postfix lookup tables and Gmail do.
	Key string
}

// String is the form patterns see: local part as written (unquoted),
// domain normalised.
func (a Address) String() string { return a.Local + "@" + a.ASCII }

// Stored is the address in external form as the MTA stores and delivers
// it: the local part quoted when it needs to be (RFC 5321 4.1.2), the
// domain as written.
func (a Address) Stored() string { return quoteLocal(a.Local) + "@" + a.Domain }

var errAddress = errors.New("rules: not an address")

// idnaProfile maps and validates domains the way a resolver would look them
// up (UTS #46 non-transitional), giving the A-label form.
var idnaProfile = idna.New(idna.MapForLookup(), idna.BidiRule(), idna.Transitional(false))

// ParseAddress parses local@domain in external form (the local part may be
// a quoted string). A leading source route (@relay:user@domain, RFC 5321
// 4.1.2) is dropped and a trailing dot on the domain is dropped, as
// Postfix does. The domain must be a valid host name (IDNA allowed) or an
// address literal.
func ParseAddress(s string) (Address, error) {
	if strings.HasPrefix(s, "@") {
		if i := strings.IndexByte(s, ':'); i > 0 {
			s = s[i+1:]
		}
	}
	at := strings.LastIndexByte(s, '@')
	if at <= 0 || at == len(s)-1 {
		return Address{}, errAddress
	}
	local, ok := unquoteLocal(s[:at])
	if !ok {
		return Address{}, errAddress
	}
	domain := strings.TrimSuffix(s[at+1:], ".")
	ascii, err := normalizeDomain(domain)
	if err != nil {
		return Address{}, err
	}
	a := Address{Local: local, Domain: domain, ASCII: ascii}
	if s[at+1:] == ascii && s[:at] == local && strings.ToLower(local) == local {
		a.Key = s // already the key: no allocation for the common case
	} else {
		a.Key = strings.ToLower(local) + "@" + ascii
	}
	return a, nil
}

// parseAddress is ParseAddress for the engine's own callers.
func parseAddress(s string) (Address, error) { return ParseAddress(s) }

// unquoteLocal returns the internal form of a local part: a quoted string
// without its quotes and backslashes. An unquoted local part may not hold
// white space, quotes or control characters.
func unquoteLocal(l string) (string, bool) {
	if l == "" {
		return "", false
	}
	if l[0] != '"' {
		for i := 0; i < len(l); i++ {
			if c := l[i]; c <= ' ' || c == '"' || c == 0x7f {
				return "", false
			}
		}
		return l, true
	}
	if len(l) < 2 || l[len(l)-1] != '"' {
		return "", false
	}
	var b strings.Builder
	for i := 1; i < len(l)-1; i++ {
		c := l[i]
		switch {
		case c == '\\' && i+1 < len(l)-1:
			i++
			b.WriteByte(l[i])
		case c == '"' || c == '\\' || c == '\r' || c == '\n' || c == 0:
			return "", false
		default:
			b.WriteByte(c)
		}
	}
	// An empty quoted local part ("") is what Postfix's {rcpt_addr}
	// gives for RCPT TO:<@domain>: an address, if an odd one.
	return b.String(), true
}

// quoteLocal is the external form of an internal local part: as is when it
// is a dot-string of atext (RFC 5321 4.1.2; UTF-8 allowed, RFC 6531),
// else a quoted string, as Postfix's quote_821_local does.
func quoteLocal(l string) string {
	if dotString(l) {
		return l
	}
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(l); i++ {
		if c := l[i]; c == '"' || c == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(l[i])
	}
	b.WriteByte('"')
	return b.String()
}

func dotString(l string) bool {
	if l == "" || l[0] == '.' || l[len(l)-1] == '.' || strings.Contains(l, "..") {
		return false
	}
	for i := 0; i < len(l); i++ {
		c := l[i]
		if c >= 0x80 || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			strings.IndexByte("!#$%&'*+-/=?^_`{|}~.", c) >= 0 {
			continue
		}
		return false
	}
	return utf8.ValidString(l)
}

// Canonical is our own reading of an RCPT TO argument (angle brackets
// already removed) in the form Postfix's smtpd would store it, for when
// the MTA does not tell us ({rcpt_addr} missing) and for explain: a source
// route is dropped and the address must be a plain local@domain (a dot-atom
// or quoted local part, no comments or white space outside quotes). ok is
// false for anything else — comments, groups, several addresses, an
// unqualified address (whose completion depends on the MTA's $myorigin):
// the caller must not guess its stored form.
func Canonical(raw string) (a Address, ok bool) {
	s := raw
	if strings.HasPrefix(s, "@") {
		i := strings.IndexByte(s, ':')
		if i < 0 {
			return Address{}, false
		}
		s = s[i+1:]
	}
	if s == "" || strings.ContainsAny(s, "()<>,;\r\n\t") {
		return Address{}, false
	}
	if s[0] != '"' && strings.ContainsAny(s, " \"\\") {
		return Address{}, false
	}
	a, err := ParseAddress(s)
	if err != nil || s[0] != '"' && !dotString(a.Local) {
		// An unquoted local part must be a dot-atom: anything else
		// (RFC 822 specials, empty atoms) Postfix's tokenizer reads its
		// own way.
		return Address{}, false
	}
	return a, true
}

// Original is the form of an RCPT argument that Postfix records as the
// recipient's original address (the queue file's original_recipient) up
// to the quoting and comments its tokenizer resolves: the argument with a
// leading source route truncated, as smtpd's extract_addr does. A milter's
// DeleteRecipient is matched against that record after the same
// tokenizing (cleanup_milter.c cleanup_del_rcpt), so deleting Original(raw)
// removes exactly the recipients whose stored form is raw's: no other.
// (Deleting the {rcpt_addr} form instead misses <zed>, <x@ours.> and
// upper-case addresses; deleting raw misses source routes: measured,
// testdata/address/postfix.tsv.)
func Original(raw string) string {
	if strings.HasPrefix(raw, "@") {
		if i := strings.IndexByte(raw, ':'); i > 0 {
			return raw[i+1:]
		}
	}
	return raw
}

// normalizeDomain returns the lower-case A-label form of a domain name, or
// an address literal ([192.0.2.1], [IPv6:2001:db8::1]) unchanged but lower
// case.
func normalizeDomain(d string) (string, error) {
	d = strings.TrimSuffix(d, ".")
	if d == "" {
		return "", errors.New("rules: empty domain")
	}
	if strings.HasPrefix(d, "[") && strings.HasSuffix(d, "]") {
		lit := strings.TrimPrefix(strings.ToLower(d[1:len(d)-1]), "ipv6:")
		if _, err := netip.ParseAddr(lit); err != nil {
			return "", errors.New("rules: bad address literal")
		}
		return strings.ToLower(d), nil
	}
	if isASCIILower(d) {
		if !validHostname(d) {
			return "", errors.New("rules: not a valid domain name")
		}
		return d, nil
	}
	a, err := idnaProfile.ToASCII(d)
	if err != nil {
		return "", err
	}
	a = strings.ToLower(a)
	if !validHostname(a) {
		return "", errors.New("rules: not a valid domain name")
	}
	return a, nil
}

// isASCIILower reports whether d needs no IDNA mapping: lower-case ASCII
// letters, digits, '-', '_' and '.', with no label starting "xn--" (an
// A-label still needs validating).
func isASCIILower(d string) bool {
	for i := 0; i < len(d); i++ {
		c := d[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			return false
		}
	}
	return !strings.HasPrefix(d, "xn--") && !strings.Contains(d, ".xn--")
}

// validHostname checks LDH labels of at most 63 octets, 253 in all.
func validHostname(h string) bool {
	if h == "" || len(h) > 253 {
		return false
	}
	for label := range strings.SplitSeq(h, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// underDomain reports whether d is dom or a subdomain of it.
func underDomain(d, dom string) bool {
	return d == dom || strings.HasSuffix(d, "."+dom)
}
