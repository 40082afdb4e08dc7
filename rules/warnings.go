package rules

import (
	"fmt"
	"slices"
	"strings"
)

// Warnings are problems that do not stop a configuration from loading:
// duplicate directory entries (after case folding and IDNA), group
// cycles, aliases that collide with users or name nothing, and rules that
// can never match. `splitrelay check` prints them and still exits 0.
func (rs *Ruleset) Warnings() Errors { return rs.warnings }

// shadowed warns about rules an earlier rule always wins against: an
// earlier rule that changes the route (not a copy) and whose conditions
// are a superset of the later rule's takes every recipient the later
// rule would. A dual-delivery rule is never shadowed (every matching copy
// is made).
func (l *loader) shadowed(rs *Ruleset) {
	for j, later := range rs.Rules {
		if later.AlsoDeliver {
			continue
		}
		for i, earlier := range rs.Rules[:j] {
			if earlier.AlsoDeliver || !earlier.covers(later) {
				continue
			}
			p := l.ix.lookup(fmt.Sprintf("split_delivery[%d].name", j))
			rs.warnings = append(rs.warnings, &Error{File: l.name, Line: p.line, Col: p.col,
				Path: fmt.Sprintf("split_delivery[%d]", j),
				Msg:  fmt.Sprintf("rule %q can never apply: rule %q (split_delivery[%d]) comes first and matches every recipient it would", later.Name, earlier.Name, i)})
			break
		}
	}
}

// covers reports whether every recipient r matches is matched by e.
func (e *Rule) covers(r *Rule) bool {
	return (!r.Messages.Inbound || e.Messages.Inbound) &&
		(!r.Messages.Internal || e.Messages.Internal) &&
		(!r.Accounts.Users || e.Accounts.Users) &&
		(!r.Accounts.Groups || e.Accounts.Groups) &&
		(!r.Accounts.Unrecognized || e.Accounts.Unrecognized) &&
		filterCovers(e.Senders, r.Senders) && filterCovers(e.Recipients, r.Recipients)
}

// filterCovers: an empty filter matches everything; otherwise every entry
// of the later filter must be in the earlier one (the same entry matches
// the same addresses). Entries are compared as written.
func filterCovers(e, r []Matcher) bool {
	if len(e) == 0 {
		return true
	}
	if len(r) == 0 {
		return false
	}
	for _, m := range r {
		if !slices.ContainsFunc(e, func(x Matcher) bool { return x.Kind == m.Kind && x.key == m.key && x.Value == m.Value }) {
			return false
		}
	}
	return true
}

// directorySummary is the Directory sentence of Summary.
func (rs *Ruleset) directorySummary() string {
	st := rs.dir.Stats()
	var b strings.Builder
	fmt.Fprintf(&b, "Directory: %s, %s, %s", plural(st.Users, "registered user"), plural(st.Groups, "group"), plural(st.Aliases, "alias"))
	if ex := rs.dir.aliasExamples(3); len(ex) > 0 {
		fmt.Fprintf(&b, " (%s", strings.Join(ex, ", "))
		if st.Aliases > len(ex) {
			b.WriteString(", ...")
		}
		b.WriteString(")")
	}
	if len(rs.aliasDomains) > 0 {
		var ds []string
		for _, a := range rs.aliasDomains {
			ds = append(ds, a+" = "+rs.domainAliases[a])
		}
		fmt.Fprintf(&b, "; alias domains %s", strings.Join(ds, ", "))
	}
	if d := rs.dir.delims; d != "" {
		fmt.Fprintf(&b, "; subaddresses after %q", d)
	} else {
		b.WriteString("; no subaddresses")
	}
	if rs.syncedDirectory() {
		b.WriteString("; more from LDAP once synced")
	}
	b.WriteString(". ")
	return b.String()
}
