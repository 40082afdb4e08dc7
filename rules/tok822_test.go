package rules

import (
	"strings"
)

// tok822 is an independent model, for tests, of how Postfix turns an RCPT
// TO argument into the address it stores: smtpd's extract_addr (one pair
// of angle brackets off, a leading source route "@a,@b:" truncated, then
// the RFC 822 tokenizer tok822_parse and tok822_internalize: quoted strings
// unquoted, comments and white space dropped) and cleanup's rewrite of
// the result (a trailing dot off the domain). It is written from Postfix's
// documentation and the measured table in testdata/address/postfix.tsv,
// not from rules' own parser, so that FuzzStoredForm can compare the two.
// ok is false when Postfix would refuse the argument (no address, or
// several) or when the model cannot tell.
func tok822(arg string) (local, domain string, ok bool) {
	internal, at, quoted, ok := tok822Internal(arg, true)
	if !ok || at < 0 || at == len(internal)-1 || at == 0 && !quoted {
		return "", "", false
	}
	return internal[:at], strings.TrimSuffix(internal[at+1:], "."), true
}

// tok822Internal is extract_addr's internal form of an RCPT argument (the
// queue file's original_recipient), the index of its '@' (-1 without
// one), and whether a quoted string was part of it.
//
// With route false it is what cleanup_del_rcpt makes of a milter's
// DeleteRecipient argument: no source route is truncated there.
func tok822Internal(arg string, route bool) (internal string, at int, quoted, ok bool) {
	s := arg
	if len(s) >= 2 && s[0] == '<' && s[len(s)-1] == '>' {
		s = s[1 : len(s)-1]
	}
	if route && strings.HasPrefix(s, "@") {
		if i := strings.IndexByte(s, ':'); i >= 0 {
			s = s[i+1:]
		}
	}
	var (
		out    strings.Builder
		tokens int
	)
	at = -1
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t':
			i++
		case c == '(':
			depth := 0
			for ; i < len(s); i++ {
				if s[i] == '\\' {
					i++
					continue
				}
				if s[i] == '(' {
					depth++
				}
				if s[i] == ')' {
					depth--
					if depth == 0 {
						i++
						break
					}
				}
			}
			if depth != 0 {
				return "", -1, false, false
			}
		case c == '"':
			i++
			for ; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' && i+1 < len(s) {
					i++
				}
				out.WriteByte(s[i])
			}
			if i >= len(s) {
				return "", -1, false, false
			}
			i++
			tokens++
			quoted = true
		case c == '@':
			if at >= 0 {
				return "", -1, false, false // a second address part: the model stops here
			}
			at = out.Len()
			out.WriteByte(c)
			i++
		case c == '.':
			out.WriteByte(c)
			i++
		case strings.IndexByte("<>,;:[]\\)", c) >= 0 || c < ' ' || c == 0x7f:
			return "", -1, false, false
		default:
			for ; i < len(s) && strings.IndexByte(" \t()<>@,;:\\\".[]", s[i]) < 0 && s[i] >= ' ' && s[i] != 0x7f; i++ {
				out.WriteByte(s[i])
			}
			tokens++
		}
	}
	if tokens == 0 && at < 0 {
		return "", -1, false, false
	}
	return out.String(), at, quoted, true
}
