package rules

import (
	"fmt"
	"slices"
	"strings"
)

// dirBuilder fills one dirData. Entries are keyed by their directory key
// (local part lower-cased, domain in its A-label form). The first entry
// for a key wins; the add methods say what was there before so the loader
// can report the duplicate where it was written.
type dirBuilder struct {
	d       *dirData
	direct  [][]uint32        // group number -> direct member numbers
	groupOf []int32           // member number -> group number when the member is a group of ours, else -1 (filled by build)
	domains map[string]string // raw domain -> A-label, so a million users do not run IDNA a million times
}

func newDirBuilder(capacity int) *dirBuilder {
	return &dirBuilder{
		d: &dirData{
			info:    make([]uint32, 0, capacity),
			keys:    newStrtab(capacity),
			targets: newStrtab(0),
			members: newStrtab(0),
		},
		domains: map[string]string{},
	}
}

// parse splits and normalises an address as ParseAddress does, with the
// domain's IDNA form cached and no allocation for the key (Key is left
// empty: the builder writes keys straight into its tables; see keyOf).
func (b *dirBuilder) parse(s string) (Address, error) {
	at := strings.LastIndexByte(s, '@')
	if strings.HasPrefix(s, "@") || at <= 0 || at == len(s)-1 || s[0] == '"' {
		return ParseAddress(s)
	}
	local, ok := unquoteLocal(s[:at])
	if !ok {
		return Address{}, errAddress
	}
	raw := strings.TrimSuffix(s[at+1:], ".")
	dom, ok := b.domains[raw]
	if !ok {
		var err error
		if dom, err = normalizeDomain(raw); err != nil {
			return Address{}, err
		}
		if len(b.domains) < 1024 {
			b.domains[strings.Clone(raw)] = dom
		}
	}
	return Address{Local: local, Domain: raw, ASCII: dom}, nil
}

// keyOf is a.Key, computed when the builder's parse left it empty.
func keyOf(a Address) string {
	if a.Key != "" {
		return a.Key
	}
	return strings.ToLower(a.Local) + "@" + a.ASCII
}

// add enters a key of the given kind; prev is the kind already there
// (External when the key is new) and i the entry number.
func (b *dirBuilder) add(a Address, kind uint32, arg uint32) (i int, prev Account) {
	from := len(b.d.keys.blob)
	b.d.keys.blob = appendKey(b.d.keys.blob, a.Local, a.ASCII)
	i, isNew := b.d.keys.addTail(from)
	if !isNew {
		switch b.d.info[i] >> kindShift {
		case entryUser:
			return i, User
		case entryGroup:
			return i, Group
		}
		return i, aliasEntry
	}
	b.d.info = append(b.d.info, kind<<kindShift|arg)
	return i, External
}

// aliasEntry is what add reports for an existing alias.
const aliasEntry Account = -1

func (b *dirBuilder) addUser(a Address) Account {
	i, prev := b.add(a, entryUser, 0)
	switch prev {
	case External:
		b.d.users++
	case aliasEntry: // a user wins over an alias, whatever the order
		b.d.info[i] = entryUser << kindShift
		b.d.users++
		b.d.aliases--
	}
	return prev
}

// addGroup enters a group; g is its number for addMember (also when it
// was already a group; -1 when the address is a user).
func (b *dirBuilder) addGroup(a Address) (g int, prev Account) {
	i, prev := b.add(a, entryGroup, uint32(len(b.direct)))
	switch prev {
	case Group:
		return int(b.d.info[i] & argMask), prev
	case aliasEntry: // a group wins over an alias, whatever the order
		b.d.info[i] = entryGroup<<kindShift | uint32(len(b.direct))
		b.d.aliases--
	case User:
		return -1, prev
	}
	b.d.groups++
	b.direct = append(b.direct, nil)
	return len(b.direct) - 1, prev
}

func (b *dirBuilder) addMember(g int, a Address) {
	mt := b.d.members
	from := len(mt.blob)
	mt.blob = appendKey(mt.blob, a.Local, a.ASCII)
	m, _ := mt.addTail(from)
	b.direct[g] = append(b.direct[g], uint32(m))
}

// addAlias enters alias -> target (a key).
func (b *dirBuilder) addAlias(alias Address, target Address) Account {
	tt := b.d.targets
	from := len(tt.blob)
	tt.blob = appendKey(tt.blob, target.Local, target.ASCII)
	t, _ := tt.addTail(from)
	_, prev := b.add(alias, entryAlias, uint32(t))
	if prev == External {
		b.d.aliases++
	}
	return prev
}

// find looks a key up in the entries added so far.
func (b *dirBuilder) find(k string) (kind uint32, arg uint32, ok bool) {
	i, ok := b.d.keys.find(k)
	if !ok {
		return 0, 0, false
	}
	x := b.d.info[i]
	return x >> kindShift, x & argMask, true
}

// build resolves alias chains, flattens nested groups (members that are
// aliases count as the account they name) and returns the data with
// problems worth a warning: group cycles and, with strict, aliases that
// name no account of this source.
func (b *dirBuilder) build(strict bool) (*dirData, []dirWarning) {
	d := b.d
	var warns []dirWarning
	// Aliases of aliases: point them at the account.
	for i := range d.info {
		if d.info[i]>>kindShift != entryAlias {
			continue
		}
		t := d.targets.at(int(d.info[i] & argMask))
		for hops := 0; hops < 8; hops++ {
			kind, arg, ok := b.find(t)
			if !ok || kind != entryAlias {
				if !ok && strict {
					warns = append(warns, dirWarning{d.keys.at(i), fmt.Sprintf("alias %s names %s, which is neither a user nor a group: ignored", d.keys.at(i), t)})
				}
				break
			}
			d.info[i] = entryAlias<<kindShift | arg
			t = d.targets.at(int(arg))
		}
	}
	// Member numbers that are groups (or aliases of groups or users).
	nm := d.members.len()
	b.groupOf = make([]int32, nm)
	canon := make([]int32, nm) // member -> member number of its account, for aliases
	for m := 0; m < nm; m++ {
		b.groupOf[m], canon[m] = -1, -1
		kind, arg, ok := b.find(d.members.at(m))
		if !ok {
			continue
		}
		if kind == entryAlias {
			t := d.targets.at(int(arg))
			c, _ := d.members.add(t)
			canon[m] = int32(c)
			kind, arg, ok = b.find(t)
			if !ok {
				continue
			}
		}
		if kind == entryGroup {
			b.groupOf[m] = int32(arg)
		}
	}
	for m := nm; m < d.members.len(); m++ { // targets added above
		b.groupOf = append(b.groupOf, -1)
		canon = append(canon, -1)
		if kind, arg, ok := b.find(d.members.at(m)); ok && kind == entryGroup {
			b.groupOf[m] = int32(arg)
		}
	}
	// Flatten each group once, so evaluation is a binary search.
	d.gstart = make([]uint32, 1, len(b.direct)+1)
	seen := make([]int, d.members.len()) // generation stamp per member
	cycles := map[int]bool{}
	for g := range b.direct {
		start := len(d.gmem)
		gen := g + 1
		var walk func(x int, path []int)
		walk = func(x int, path []int) {
			for _, m := range b.direct[x] {
				ms := []int32{int32(m)}
				if c := canon[m]; c >= 0 {
					ms = append(ms, c)
				}
				for _, mm := range ms {
					sub := int(b.groupOf[mm])
					if sub >= 0 && slices.Contains(path, sub) {
						if sub == g && !cycles[g] {
							for _, x := range path {
								cycles[x] = true
							}
							warns = append(warns, dirWarning{groupName(d, b, g), "group " + groupName(d, b, g) + " contains itself" + cycleText(d, b, append(path, g))})
						}
						continue
					}
					if seen[mm] == gen {
						continue
					}
					seen[mm] = gen
					d.gmem = append(d.gmem, uint32(mm))
					if sub >= 0 {
						walk(sub, append(path, sub))
					}
				}
			}
		}
		walk(g, []int{g})
		slices.Sort(d.gmem[start:])
		d.gstart = append(d.gstart, uint32(len(d.gmem)))
	}
	d.keys.compact()
	if cap(d.info)-len(d.info) > len(d.info)/8+1024 {
		d.info = slices.Clone(d.info)
	}
	d.gmem = slices.Clip(d.gmem)
	b.direct, b.groupOf = nil, nil
	return d, warns
}

// dirWarning is a problem found when the entries are put together, about
// the entry key.
type dirWarning struct{ key, msg string }

// groupName is the address of group number g.
func groupName(d *dirData, b *dirBuilder, g int) string {
	for i, x := range d.info {
		if x>>kindShift == entryGroup && int(x&argMask) == g {
			return d.keys.at(i)
		}
	}
	return "?"
}

// cycleText shows the chain of groups that leads back to the first one.
func cycleText(d *dirData, b *dirBuilder, path []int) string {
	if len(path) <= 2 && path[0] == path[len(path)-1] {
		return ""
	}
	names := make([]string, len(path))
	for i, g := range path {
		names[i] = groupName(d, b, g)
	}
	return " (" + strings.Join(names, " -> ") + ")"
}
