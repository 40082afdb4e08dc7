package rules

import (
	"errors"
	"fmt"
	"strings"
)

func (l *loader) rules(f *file, rs *Ruleset) {
	names := map[string]bool{}
	for i, fr := range f.SplitDelivery {
		path := fmt.Sprintf("split_delivery[%d]", i)
		r := &Rule{Name: strings.TrimSpace(fr.Name), AlsoDeliver: fr.AlsoDeliver}
		switch {
		case r.Name == "":
			l.errorf(nil, path+".name", "every rule needs a non-empty name")
		case names[r.Name]:
			l.errorf(ErrDuplicate, path+".name", "rule name %q is used twice", r.Name)
		}
		names[r.Name] = true

		if len(fr.Messages) == 0 {
			l.errorf(nil, path+".messages", "choose the messages to affect: inbound, internal or both")
		}
		for j, m := range fr.Messages {
			switch m {
			case "inbound":
				r.Messages.Inbound = true
			case "internal":
				r.Messages.Internal = true
			default:
				l.errorf(nil, fmt.Sprintf("%s.messages[%d]", path, j), "%q: want inbound or internal", m)
			}
		}
		if len(fr.Accounts) == 0 {
			l.errorf(nil, path+".accounts", "choose the account types to affect: users, groups, unrecognized")
		}
		for j, a := range fr.Accounts {
			switch a {
			case "users":
				r.Accounts.Users = true
			case "groups":
				r.Accounts.Groups = true
			case "unrecognized":
				r.Accounts.Unrecognized = true
			default:
				l.errorf(nil, fmt.Sprintf("%s.accounts[%d]", path, j), "%q: want users, groups or unrecognized", a)
			}
		}
		if fr.Route == "" {
			l.errorf(nil, path+".route", "every rule needs a route")
		} else if r.Route = rs.Routes[fr.Route]; r.Route == nil {
			l.errorf(ErrUnknownRoute, path+".route", "unknown route %q: define [routes.%s]", fr.Route, fr.Route)
		}
		r.Senders = l.matchers(rs, fr.Envelope.Senders, path+".envelope.senders")
		r.Recipients = l.matchers(rs, fr.Envelope.Recipients, path+".envelope.recipients")
		rs.Rules = append(rs.Rules, r)
	}
}

func (l *loader) matchers(rs *Ruleset, entries []string, path string) []Matcher {
	var out []Matcher
	for i, e := range entries {
		m, err := rs.parseMatcher(e)
		if err != nil {
			var kind error
			if errors.Is(err, ErrUnknownGroup) {
				kind = ErrUnknownGroup
			}
			l.errorf(kind, fmt.Sprintf("%s[%d]", path, i), "%v", err)
			continue
		}
		out = append(out, m)
	}
	return out
}

// affects reports whether the rule looks at this kind of message and
// account type.
func (r *Rule) affects(k Kind, a Account) bool {
	if k == Inbound && !r.Messages.Inbound || k == Internal && !r.Messages.Internal {
		return false
	}
	switch a {
	case User:
		return r.Accounts.Users
	case Group:
		return r.Accounts.Groups
	case Unrecognized:
		return r.Accounts.Unrecognized
	}
	return false
}
