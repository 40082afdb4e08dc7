package rules

import (
	"maps"
	"slices"
	"strings"
	"unsafe"
)

// Directory says who exists on the primary system: registered users, group
// addresses with their members, and aliases (alternate addresses of a user
// or group). Everything else in our domains is "unrecognized".
//
// A Directory is immutable and safe for concurrent use. The configuration
// file gives one (Ruleset.Directory); a background sync (LDAP) builds
// another with BuildDirectory, and the daemon swaps in
// rs.WithDirectory(rs.Directory().Overlay(synced)) without rebuilding the
// rules.
type Directory struct {
	// delims is [directory] recipient_delimiter: each byte separates a
	// local part from its extension, as Postfix's recipient_delimiter.
	delims string
	// domainAliases maps an alias domain to its primary domain ([organization]
	// domain_aliases), A-labels.
	domainAliases map[string]string
	layers        []*dirData
}

// dirData is one source's entries: the configuration file's, or a sync's.
type dirData struct {
	keys    *strtab  // every address: users, groups, aliases (directory keys)
	info    []uint32 // per key: kind<<28 | argument
	targets *strtab  // alias targets (keys), argument of an alias entry
	members *strtab  // every member key of every group
	gstart  []uint32 // group g's flattened members are gmem[gstart[g]:gstart[g+1]]
	gmem    []uint32 // member numbers, sorted within each group

	users, groups, aliases int
}

const (
	entryUser  = 1
	entryGroup = 2
	entryAlias = 3
	kindShift  = 28
	argMask    = 1<<kindShift - 1
)

// DirectoryStats counts a directory's entries.
type DirectoryStats struct {
	Users, Groups, Aliases, DomainAliases int
}

// Stats counts the entries of every source.
func (d *Directory) Stats() DirectoryStats {
	s := DirectoryStats{DomainAliases: len(d.domainAliases)}
	for _, l := range d.layers {
		s.Users += l.users
		s.Groups += l.groups
		s.Aliases += l.aliases
	}
	return s
}

// RecipientDelimiter is [directory] recipient_delimiter.
func (d *Directory) RecipientDelimiter() string { return d.delims }

// Overlay returns a directory with d's settings (recipient delimiter,
// domain aliases) and the entries of d, then of other: an address found in
// d is not looked up in other. Aliases may name accounts of either.
func (d *Directory) Overlay(other *Directory) *Directory {
	if other == nil {
		return d
	}
	n := *d
	n.layers = append(slices.Clip(d.layers), other.layers...)
	return &n
}

// Resolve classifies an address of our domains: local is the local part as
// written, domain its lower-case A-label domain. It applies, in order: the
// address itself; the domain alias (alice@example.net is alice@example.com);
// then the same without the subaddress extension (alice+news@ is alice@).
// An alias counts as the account it names. canonical is the directory key
// of the account found ("" for Unrecognized); it stays valid as long as d.
func (d *Directory) Resolve(local, domain string) (account Account, canonical string) {
	var buf [320]byte
	primary := d.domainAliases[domain]
	try := func(l string) (Account, string, bool) {
		k := appendKey(buf[:0], l, domain)
		if a, c, ok := d.lookup(k); ok {
			return a, c, true
		}
		if primary != "" {
			k = appendKey(buf[:0], l, primary)
			return d.lookup(k)
		}
		return Unrecognized, "", false
	}
	if a, c, ok := try(local); ok {
		return a, c
	}
	if i := strings.IndexAny(local, d.delims); d.delims != "" && i > 0 {
		if a, c, ok := try(local[:i]); ok {
			return a, c
		}
	}
	return Unrecognized, ""
}

func appendKey(dst []byte, local, domain string) []byte {
	dst = appendLower(dst, local)
	dst = append(dst, '@')
	return append(dst, domain...)
}

// lookup finds a key in the layers; an alias is followed to its account.
func (d *Directory) lookup(k []byte) (Account, string, bool) {
	s := unsafe.String(unsafe.SliceData(k), len(k))
	for _, l := range d.layers {
		i, ok := l.keys.find(s)
		if !ok {
			continue
		}
		x := l.info[i]
		switch x >> kindShift {
		case entryUser:
			return User, l.keys.at(i), true
		case entryGroup:
			return Group, l.keys.at(i), true
		}
		target := l.targets.at(int(x & argMask))
		if a, c, ok := d.account(target); ok {
			return a, c, true
		}
		return Unrecognized, "", false // an alias of nothing we know
	}
	return Unrecognized, "", false
}

// account finds a user or group (not an alias) by key in any layer.
func (d *Directory) account(k string) (Account, string, bool) {
	for _, l := range d.layers {
		if i, ok := l.keys.find(k); ok {
			switch l.info[i] >> kindShift {
			case entryUser:
				return User, l.keys.at(i), true
			case entryGroup:
				return Group, l.keys.at(i), true
			}
		}
	}
	return Unrecognized, "", false
}

// Member reports whether addrKey (a directory key, e.g. the canonical
// account Resolve returned) is a member of group groupKey, directly or
// through nested groups.
func (d *Directory) Member(groupKey, addrKey string) bool {
	for _, l := range d.layers {
		i, ok := l.keys.find(groupKey)
		if !ok || l.info[i]>>kindShift != entryGroup {
			continue
		}
		m, ok := l.members.find(addrKey)
		if !ok {
			return false
		}
		g := l.info[i] & argMask
		_, found := slices.BinarySearch(l.gmem[l.gstart[g]:l.gstart[g+1]], uint32(m))
		return found
	}
	return false
}

// IsGroup reports whether key is a group address (not an alias of one).
func (d *Directory) IsGroup(key string) bool {
	a, _, ok := d.account(key)
	return ok && a == Group
}

// Directory returns the directory the rules decide with.
func (rs *Ruleset) Directory() *Directory { return rs.dir }

// WithDirectory returns a shallow copy of rs that decides with d: swapping
// a synced directory in does not rebuild the rules.
func (rs *Ruleset) WithDirectory(d *Directory) *Ruleset {
	c := *rs
	c.dir = d
	return &c
}

// resolve classifies a parsed recipient in our domains. canonical is set
// when the account's key differs from the address's own (an alias, a
// subaddress, an alias domain).
func (rs *Ruleset) resolve(a Address) (Account, string) {
	acc, c := rs.dir.Resolve(a.Local, a.ASCII)
	if c != "" && c == a.Key {
		c = ""
	}
	return acc, c
}

// registered returns the key of the registered user a parsed address is
// (itself, or through an alias, subaddress or alias domain).
func (rs *Ruleset) registered(a Address) (string, bool) {
	acc, c := rs.dir.Resolve(a.Local, a.ASCII)
	return c, acc == User
}

// member reports whether a parsed address, or the account it reaches
// (identity), is in group g.
func (rs *Ruleset) member(g string, a Address) bool {
	k := a.Key
	if rs.dir.Member(g, k) {
		return true
	}
	c := rs.dir.identity(a.Local, a.ASCII)
	return c != k && rs.dir.Member(g, c)
}

// sameAccount is the address: filter test: the address itself, or an
// address that reaches the same account (an alias of it, a subaddress, the
// same local part in an alias domain). A filter written with a subaddress
// matches only that subaddress.
func (rs *Ruleset) sameAccount(filterKey string, a Address) bool {
	k := a.Key
	if k == filterKey {
		return true
	}
	at := strings.LastIndexByte(filterKey, '@')
	fl, fd := filterKey[:at], filterKey[at+1:]
	d := rs.dir
	if d.delims != "" && strings.ContainsAny(fl, d.delims) {
		return false
	}
	return d.identity(fl, fd) == d.identity(a.Local, a.ASCII)
}

// identity is the account an address reaches, or for an address the
// directory does not know, its key without extension in its primary
// domain.
func (d *Directory) identity(local, domain string) string {
	if _, c := d.Resolve(local, domain); c != "" {
		return c
	}
	if i := strings.IndexAny(local, d.delims); d.delims != "" && i > 0 {
		local = local[:i]
	}
	if p := d.domainAliases[domain]; p != "" {
		domain = p
	}
	return strings.ToLower(local) + "@" + domain
}

// aliasExamples lists up to n aliases of the first source as "alias ->
// account", in the order they were loaded.
func (d *Directory) aliasExamples(n int) []string {
	var out []string
	for _, l := range d.layers[:min(len(d.layers), 1)] {
		for i, x := range l.info {
			if len(out) == n {
				break
			}
			if x>>kindShift == entryAlias {
				k := l.keys.at(i)
				at := strings.LastIndexByte(k, '@')
				if _, c := d.Resolve(k[:at], k[at+1:]); c != "" {
					out = append(out, k+" -> "+c)
				} else {
					out = append(out, k+" -> (nothing)")
				}
			}
		}
	}
	return out
}

// DomainAliases returns [organization] domain_aliases: alias domain ->
// primary domain, A-labels. Alias domains are ours, like Domains (an MTA
// integration must accept mail for them too).
func (rs *Ruleset) DomainAliases() map[string]string {
	return maps.Clone(rs.domainAliases)
}
