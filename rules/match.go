package rules

import (
	"fmt"
	"regexp"
	"strings"
)

// Matcher is one envelope filter entry, written "address:ADDR",
// "pattern:RE2" or "group:GROUP-ADDRESS".
type Matcher struct {
	Kind  string // address | pattern | group
	Value string // as written after the prefix

	key string         // normalised address or group address
	re  *regexp.Regexp // for pattern
}

// parseMatcher parses one filter entry; group names are checked against
// the directory (groups are loaded before rules).
func (rs *Ruleset) parseMatcher(s string) (Matcher, error) {
	kind, val, ok := strings.Cut(s, ":")
	if !ok {
		return Matcher{}, fmt.Errorf("%q: want an address:, pattern: or group: entry", s)
	}
	m := Matcher{Kind: kind, Value: val}
	switch kind {
	case "address":
		a, err := parseAddress(val)
		if err != nil {
			return m, fmt.Errorf("%q is not an email address", val)
		}
		m.key = a.Key
	case "group":
		a, err := parseAddress(val)
		if err != nil {
			return m, fmt.Errorf("%q is not an email address", val)
		}
		if !rs.dir.IsGroup(a.Key) && !rs.syncedDirectory() {
			return m, &kindError{ErrUnknownGroup, fmt.Sprintf("unknown group %q: add it to [directory.groups]", val)}
		}
		m.key = a.Key
	case "pattern":
		re, err := regexp.Compile(val)
		if err != nil {
			return m, fmt.Errorf("bad pattern: %v", strings.TrimPrefix(err.Error(), "error parsing regexp: "))
		}
		m.re = re
	default:
		return m, fmt.Errorf("%q: want an address:, pattern: or group: entry", kind)
	}
	return m, nil
}

// String is the entry as written.
func (m Matcher) String() string { return m.Kind + ":" + m.Value }

// match tests one address. ok is false for the null sender and for
// addresses that do not parse; patterns still see them as written, so
// "pattern:^$" can select the null sender.
func (rs *Ruleset) match(m *Matcher, a Address, ok bool, raw string) bool {
	switch m.Kind {
	case "address":
		return ok && rs.sameAccount(m.key, a)
	case "group":
		return ok && rs.member(m.key, a)
	case "pattern":
		// Google's patterns are searched, not anchored, and are
		// case-sensitive unless they say (?i); domains are lower-cased.
		if ok {
			return m.re.MatchString(a.String())
		}
		return m.re.MatchString(raw)
	}
	return false
}

// matchAny is true for an empty filter list, else when one entry matches.
func (rs *Ruleset) matchAny(ms []Matcher, a Address, ok bool, raw string) bool {
	if len(ms) == 0 {
		return true
	}
	for i := range ms {
		if rs.match(&ms[i], a, ok, raw) {
			return true
		}
	}
	return false
}
