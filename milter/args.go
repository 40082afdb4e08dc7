package milter

import (
	"strings"
)

// rcptArgs builds the ESMTP arguments for a recipient the milter adds in
// place of (or beside) one the client gave: the client's NOTIFY, and an
// ORCPT naming the original address (the client's own ORCPT when it sent
// one). Without them the downstream server would see the routing-namespace
// form in ORCPT (generic maps do not rewrite it) and the client's DSN
// request would be lost (POSTFIX.md; RFC 3461 4.1, 4.2).
func rcptArgs(clientArgs, original string) string {
	var notify, orcpt string
	for _, a := range strings.Fields(clientArgs) {
		k, _, _ := strings.Cut(a, "=")
		switch strings.ToUpper(k) {
		case "NOTIFY":
			notify = a
		case "ORCPT":
			orcpt = a
		}
	}
	if orcpt == "" {
		orcpt = orcptParam(original) // utf8.go
	}
	if notify == "" {
		return orcpt
	}
	return notify + " " + orcpt
}

// xtext encodes s as RFC 3461 section 4 xtext: "+" followed by two
// upper-case hex digits for "+", "=", and anything outside "!" to "~".
func xtext(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '!' || c > '~' || c == '+' || c == '=' {
			b.WriteByte('+')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// sizeParam returns the SIZE= parameter of MAIL FROM (RFC 1870), 0 when
// absent or unreadable.
func sizeParam(args string) int64 {
	for _, a := range strings.Fields(args) {
		k, v, ok := strings.Cut(a, "=")
		if ok && strings.EqualFold(k, "SIZE") {
			var n int64
			for _, c := range v {
				if c < '0' || c > '9' || n > 1<<50 {
					return 0
				}
				n = n*10 + int64(c-'0')
			}
			return n
		}
	}
	return 0
}
