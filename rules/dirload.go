package rules

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"unsafe"
)

// Loading the directory of the configuration file: [directory] users,
// users_files, aliases, groups and google_exports, [organization]
// domain_aliases. Positions of problems are those of the TOML key or the
// line of the file the entry came from.

// DefaultRecipientDelimiter is Gmail's subaddress separator.
const DefaultRecipientDelimiter = "+"

// maxDirWarnings bounds the warnings of one kind per source: a users file
// pasted twice gives a few lines and a count, not a million.
const maxDirWarnings = 20

// dirLoader carries the builder and the warning budget through loading.
type dirLoader struct {
	*loader
	rs     *Ruleset
	b      *dirBuilder
	warned map[string]int    // source -> warnings given
	paths  map[string]string // key -> TOML path of the aliases and groups of the file, for build warnings
}

func (l *loader) directory(f *file, rs *Ruleset) {
	l.domainAliases(f, rs)
	dl := &dirLoader{loader: l, rs: rs, warned: map[string]int{}, paths: map[string]string{}}
	dir := &Directory{delims: f.Directory.RecipientDelimiter, domainAliases: rs.domainAliases}
	for _, c := range dir.delims {
		if c == '@' || c == '"' || c == '\\' || c <= ' ' || c >= 0x7f {
			l.errorf(nil, "directory.recipient_delimiter", "%q: the delimiter must be ASCII characters other than space, @, \" and \\", dir.delims)
			break
		}
	}

	// Read every file first: the table is sized once for all of them.
	type source struct {
		name, path string
		data       []byte
	}
	var files []source
	lines := len(f.Directory.Users) + len(f.Directory.Aliases)
	for i, name := range f.Directory.UsersFiles {
		path := fmt.Sprintf("directory.users_files[%d]", i)
		if data, ok := l.readDirFile(name, path); ok {
			files = append(files, source{name, path, data})
			lines += bytes.Count(data, []byte{'@'})
		}
	}
	dl.b = newDirBuilder(lines)
	blob := 0
	for _, s := range files {
		blob += len(s.data)
	}
	dl.b.d.keys.blob = make([]byte, 0, blob)

	for i, u := range f.Directory.Users {
		path := fmt.Sprintf("directory.users[%d]", i)
		dl.user(u, path, nil)
	}
	for _, s := range files {
		dl.usersFile(s.name, s.path, s.data)
	}
	dl.groups(f)
	dl.googleExports(f)
	dl.aliases(f)
	data, warns := dl.b.build(!rs.syncedDirectory())
	for _, w := range warns {
		path := "directory"
		if p, ok := dl.paths[w.key]; ok {
			path = p
		}
		dl.warn("directory", path, nil, "%s", w.msg)
	}
	dir.layers = []*dirData{data}
	rs.dir = dir
}

// readDirFile reads a file named in the directory section.
func (l *loader) readDirFile(name, path string) ([]byte, bool) {
	if l.files == nil {
		key := path[strings.IndexByte(path, '.')+1 : strings.IndexByte(path, '[')]
		l.errorf(nil, path, "%s cannot be read here", key)
		return nil, false
	}
	data, err := l.files.ReadFile(name)
	if err != nil {
		l.errorf(nil, path, "%v", err)
		return nil, false
	}
	return data, true
}

// problem records an error at a TOML path, or at a file position.
func (dl *dirLoader) problem(kind error, path string, at *Error, format string, args ...any) {
	if at != nil {
		e := *at
		e.Msg, e.Kind = fmt.Sprintf(format, args...), kind
		dl.errs = append(dl.errs, &e)
		return
	}
	dl.errorf(kind, path, format, args...)
}

// warn records a warning (check prints it, loading goes on), at most
// maxDirWarnings per source, then a count.
func (dl *dirLoader) warn(source, path string, at *Error, format string, args ...any) {
	n := dl.warned[source]
	dl.warned[source] = n + 1
	if n > maxDirWarnings {
		return
	}
	var e Error
	if at != nil {
		e = *at
	} else {
		p := dl.ix.lookup(path)
		e = Error{File: dl.name, Line: p.line, Col: p.col, Path: path}
	}
	e.Msg = fmt.Sprintf(format, args...)
	if n == maxDirWarnings {
		e.Msg = "more warnings of this source are not shown"
	}
	dl.rs.warnings = append(dl.rs.warnings, &e)
}

// address parses a directory address that must be in our domains (or an
// alias domain).
func (dl *dirLoader) address(s, what, path string, at *Error) (Address, bool) {
	a, err := dl.b.parse(s)
	switch {
	case err != nil:
		dl.problem(nil, path, at, "%s%q is not an email address", what, s)
	case !dl.rs.ours(a.ASCII):
		dl.problem(nil, path, at, "%s%q is not in organization.domains", what, s)
	default:
		return a, true
	}
	return a, false
}

// user adds one registered user.
func (dl *dirLoader) user(s, path string, at *Error) (Address, bool) {
	a, ok := dl.address(s, "", path, at)
	if !ok {
		return a, false
	}
	switch dl.b.addUser(a) {
	case User:
		dl.warn(path, path, at, "user %q is listed twice (addresses ignore case)", s)
	case Group:
		dl.problem(ErrDuplicate, path, at, "%q is both a user and a group", s)
	case aliasEntry:
		dl.warn(path, path, at, "user %q is also an alias: the user wins", s)
	}
	return a, true
}

// usersFile reads one address per line, optionally followed by the
// user's aliases (separated by spaces or commas); '#' starts a comment.
func (dl *dirLoader) usersFile(name, path string, data []byte) {
	source := "file " + name
	at := &Error{File: name, Path: path} // one per file: problems copy it
	for n := 1; len(data) > 0; n++ {
		raw := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			raw, data = data[:i], data[i+1:]
		} else {
			data = nil
		}
		line := unsafe.String(unsafe.SliceData(raw), len(raw)) // data is not written again
		if c := strings.IndexByte(line, '#'); c >= 0 {
			line = line[:c]
		}
		col := 1
		var user Address
		first := true
		for line != "" {
			i := strings.IndexFunc(line, notSep)
			if i < 0 {
				break
			}
			col += i
			line = line[i:]
			j := strings.IndexFunc(line, isSep)
			if j < 0 {
				j = len(line)
			}
			word := line[:j]
			at.Line, at.Col = n, col
			if first {
				var ok bool
				if user, ok = dl.user(word, path, at); !ok {
					break
				}
				first = false
			} else {
				dl.alias(source, word, user, path, at)
			}
			col += j
			line = line[j:]
		}
	}
}

func isSep(r rune) bool  { return r == ' ' || r == '\t' || r == ',' || r == '\r' }
func notSep(r rune) bool { return !isSep(r) }

// alias adds alias -> target, both parsed in our domains already for the
// target.
func (dl *dirLoader) alias(source, s string, target Address, path string, at *Error) {
	a, ok := dl.address(s, "alias ", path, at)
	if !ok {
		return
	}
	if a.ASCII == target.ASCII && strings.EqualFold(a.Local, target.Local) {
		dl.warn(source, path, at, "alias %q names itself", s)
		return
	}
	switch dl.b.addAlias(a, target) {
	case User:
		dl.warn(source, path, at, "alias %q is also a user: the user wins", s)
	case Group:
		dl.warn(source, path, at, "alias %q is also a group: the group wins", s)
	case aliasEntry:
		dl.warn(source, path, at, "alias %q is listed twice: the first wins", s)
	}
}

func (dl *dirLoader) aliases(f *file) {
	names := make([]string, 0, len(f.Directory.Aliases))
	for a := range f.Directory.Aliases {
		names = append(names, a)
	}
	slices.Sort(names)
	for _, s := range names {
		path := "directory.aliases." + quoteKey(s)
		t, ok := dl.address(f.Directory.Aliases[s], "target ", path, nil)
		if a, err := dl.b.parse(s); err == nil {
			dl.paths[keyOf(a)] = path
		}
		if ok {
			dl.alias("directory.aliases", s, t, path, nil)
		}
	}
}

func (dl *dirLoader) groups(f *file) {
	names := make([]string, 0, len(f.Directory.Groups))
	for g := range f.Directory.Groups {
		names = append(names, g)
	}
	slices.Sort(names)
	for _, s := range names {
		path := "directory.groups." + quoteKey(s)
		a, ok := dl.address(s, "group ", path, nil)
		if !ok {
			continue
		}
		dl.paths[keyOf(a)] = path
		g, prev := dl.b.addGroup(a)
		switch prev {
		case User:
			dl.problem(ErrDuplicate, path, nil, "%q is both a user and a group", s)
			continue
		case Group:
			dl.problem(ErrDuplicate, path, nil, "group %q is listed twice", s)
			continue
		case aliasEntry:
			dl.warn(path, path, nil, "group %q is also an alias: the group wins", s)
		}
		for i, m := range f.Directory.Groups[s] {
			ma, err := dl.b.parse(m)
			if err != nil {
				dl.errorf(nil, fmt.Sprintf("%s[%d]", path, i), "member %q is not an email address", m)
				continue
			}
			dl.b.addMember(g, ma)
		}
	}
}

// domainAliases reads [organization] domain_aliases: alias domain ->
// one of organization.domains.
func (l *loader) domainAliases(f *file, rs *Ruleset) {
	rs.domainAliases = map[string]string{}
	names := make([]string, 0, len(f.Organization.DomainAliases))
	for a := range f.Organization.DomainAliases {
		names = append(names, a)
	}
	slices.Sort(names)
	for _, s := range names {
		path := "organization.domain_aliases." + quoteKey(s)
		alias, err := normalizeDomain(s)
		if err != nil || strings.HasPrefix(alias, "[") {
			l.errorf(nil, path, "%q is not a domain name", s)
			continue
		}
		primary, err := normalizeDomain(f.Organization.DomainAliases[s])
		switch {
		case err != nil:
			l.errorf(nil, path, "%q is not a domain name", f.Organization.DomainAliases[s])
		case !slices.Contains(rs.Domains, primary):
			l.errorf(nil, path, "%q is not one of organization.domains", f.Organization.DomainAliases[s])
		case rs.ours(alias):
			l.errorf(ErrDuplicate, path, "%q is already one of organization.domains (or under one)", s)
		case rs.domainAliases[alias] != "":
			l.errorf(ErrDuplicate, path, "%q is listed twice", s)
		default:
			rs.domainAliases[alias] = primary
			rs.aliasDomains = append(rs.aliasDomains, alias)
		}
	}
}
