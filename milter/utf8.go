package milter

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// orcptParam is the ORCPT parameter naming original: type rfc822 with
// xtext for an ASCII address (RFC 3461 4.2), type utf-8 with the
// utf-8-addr-unitext encoding for an internationalised one (RFC 6533 3):
// UTF-8 kept as is, and "+", "=", "\", controls and space written
// \x{HEX}. An rfc822 ORCPT cannot carry a UTF-8 address (servers refuse
// its xtext-encoded bytes: "501 5.5.4 Malformed ORCPT parameter value").
func orcptParam(original string) string {
	if isASCII(original) {
		return "ORCPT=rfc822;" + xtext(original)
	}
	var b strings.Builder
	b.WriteString("ORCPT=utf-8;")
	for _, r := range original {
		if r == '+' || r == '=' || r == '\\' || r <= ' ' || r == 0x7f || r == utf8.RuneError {
			fmt.Fprintf(&b, `\x{%X}`, r)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}
