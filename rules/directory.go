package rules

import (
	"bufio"
	"bytes"
	"fmt"
	"slices"
	"strings"
)

// The directory says who exists on the primary system: registered users and
// group addresses. Everything else in our domains is "unrecognized".

func (l *loader) directory(f *file, rs *Ruleset) {
	for i, u := range f.Directory.Users {
		l.user(rs, u, fmt.Sprintf("directory.users[%d]", i), nil)
	}
	for i, name := range f.Directory.UsersFiles {
		path := fmt.Sprintf("directory.users_files[%d]", i)
		if l.files == nil {
			l.errorf(nil, path, "users_files cannot be read here")
			continue
		}
		data, err := l.files.ReadFile(name)
		if err != nil {
			l.errorf(nil, path, "%v", err)
			continue
		}
		sc := bufio.NewScanner(bytes.NewReader(data))
		sc.Buffer(nil, 1<<20)
		for n := 1; sc.Scan(); n++ {
			line := sc.Text()
			if c := strings.IndexByte(line, '#'); c >= 0 {
				line = line[:c]
			}
			addr := strings.TrimSpace(line)
			if addr == "" {
				continue
			}
			col := strings.Index(sc.Text(), addr) + 1
			l.user(rs, addr, path, &Error{File: name, Line: n, Col: col, Path: path})
		}
		if err := sc.Err(); err != nil {
			l.errorf(nil, path, "%s: %v", name, err)
		}
	}
	l.groups(f, rs)
}

// user adds one registered user. at, when set, is the position in a users
// file (the problem is reported there, not in the TOML).
func (l *loader) user(rs *Ruleset, s, path string, at *Error) {
	a, err := parseAddress(s)
	msg := ""
	switch {
	case err != nil:
		msg = fmt.Sprintf("%q is not an email address", s)
	case !rs.ours(a.ASCII):
		msg = fmt.Sprintf("%q is not in organization.domains", s)
	default:
		rs.users[a.Key] = true
		return
	}
	if at != nil {
		at.Msg = msg
		l.errs = append(l.errs, at)
		return
	}
	l.errorf(nil, path, "%s", msg)
}

func (l *loader) groups(f *file, rs *Ruleset) {
	names := make([]string, 0, len(f.Directory.Groups))
	for g := range f.Directory.Groups {
		names = append(names, g)
	}
	slices.Sort(names)
	direct := map[string][]string{}
	for _, g := range names {
		path := "directory.groups." + quoteKey(g)
		a, err := parseAddress(g)
		switch {
		case err != nil:
			l.errorf(nil, path, "group %q is not an email address", g)
			continue
		case !rs.ours(a.ASCII):
			l.errorf(nil, path, "group %q is not in organization.domains", g)
			continue
		case rs.users[a.Key]:
			l.errorf(ErrDuplicate, path, "%q is both a user and a group", g)
			continue
		}
		if _, dup := direct[a.Key]; dup {
			l.errorf(ErrDuplicate, path, "group %q is listed twice", g)
			continue
		}
		members := []string{}
		for i, m := range f.Directory.Groups[g] {
			ma, err := parseAddress(m)
			if err != nil {
				l.errorf(nil, fmt.Sprintf("%s[%d]", path, i), "member %q is not an email address", m)
				continue
			}
			members = append(members, ma.Key)
		}
		direct[a.Key] = members
	}
	// Groups may contain groups: flatten once, here, so evaluation is a
	// lookup. Cycles simply stop the walk.
	for g := range direct {
		seen := map[string]bool{g: true}
		var flat []string
		var walk func(string)
		walk = func(x string) {
			for _, m := range direct[x] {
				if seen[m] {
					continue
				}
				seen[m] = true
				flat = append(flat, m)
				if _, isGroup := direct[m]; isGroup {
					walk(m)
				}
			}
		}
		walk(g)
		slices.Sort(flat)
		rs.groups[g] = flat
	}
}

// account classifies a recipient in our domains.
func (rs *Ruleset) account(a Address) Account {
	k := a.Key
	if rs.users[k] {
		return User
	}
	if _, ok := rs.groups[k]; ok {
		return Group
	}
	return Unrecognized
}

// member reports whether key is in group g (directly or through nested
// groups).
func (rs *Ruleset) member(g, key string) bool {
	_, found := slices.BinarySearch(rs.groups[g], key)
	return found
}
