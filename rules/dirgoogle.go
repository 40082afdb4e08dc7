package rules

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
)

// Google exports: [directory] google_exports names CSV files exported from
// the Google Admin console or with GAM. The format is recognised by the
// header row (names compared without case); only these columns are read,
// any others are ignored:
//
//	Admin console, Directory > Users > Download users (or the bulk update
//	template):            "Email Address [Required]"            -> users
//	Admin console, a group's members download (or the bulk member
//	upload template):     "Group Email [Required]", "Member Email" -> groups, members
//	gam print users aliases:
//	                      "primaryEmail", "aliases.N" / "aliases",
//	                      "nonEditableAliases.N" / "nonEditableAliases" -> users, aliases
//	gam print aliases:    "Alias", "Target"                     -> aliases
//	gam print group-members:
//	                      "group", "email" ("type" CUSTOMER rows skipped) -> groups, members
//	gam print groups [members] [aliases]:
//	                      "Email", "Members", "Aliases" (or .N)  -> groups, members, aliases
//
// List cells ("aliases", "Members") hold addresses separated by spaces
// (GAM's default delimiter). A row that cannot be read, or an address that
// is not one, is reported as FILE:LINE:COL with the reason.

// googleFormat is one recognised export.
type googleFormat struct {
	name string
	// need are the header names that identify the format (lower case).
	need []string
	row  func(dl *dirLoader, r *googleRow)
}

var googleFormats = []googleFormat{
	{"Admin console users", []string{"email address [required]"}, func(dl *dirLoader, r *googleRow) {
		r.user(dl, "email address [required]")
	}},
	{"Admin console users", []string{"email address"}, func(dl *dirLoader, r *googleRow) {
		r.user(dl, "email address")
	}},
	{"Admin console group members", []string{"group email [required]"}, func(dl *dirLoader, r *googleRow) {
		r.member(dl, "group email [required]", "member email")
	}},
	{"Admin console group members", []string{"group email"}, func(dl *dirLoader, r *googleRow) {
		r.member(dl, "group email", "member email")
	}},
	{"gam print users", []string{"primaryemail"}, func(dl *dirLoader, r *googleRow) {
		if u, ok := r.user(dl, "primaryemail"); ok {
			r.aliases(dl, u, "aliases", "noneditablealiases")
		}
	}},
	{"gam print aliases", []string{"alias", "target"}, func(dl *dirLoader, r *googleRow) {
		if t, ok := r.addr(dl, "target", "target "); ok {
			if c, ok := r.col["alias"]; ok && strings.TrimSpace(r.rec[c]) != "" {
				dl.alias(r.source, strings.TrimSpace(r.rec[c]), t, r.path, r.at(c))
			}
		}
	}},
	{"gam print group-members", []string{"group", "email"}, func(dl *dirLoader, r *googleRow) {
		if c, ok := r.col["type"]; ok && strings.EqualFold(r.rec[c], "CUSTOMER") {
			return // "all users in the organisation": not an address
		}
		r.member(dl, "group", "email")
	}},
	{"gam print groups", []string{"email"}, func(dl *dirLoader, r *googleRow) {
		g, ok := r.group(dl, "email")
		if !ok {
			return
		}
		if c, ok := r.col["members"]; ok {
			for _, m := range strings.Fields(r.rec[c]) {
				r.addMember(dl, g, m, c)
			}
		}
		r.aliases(dl, r.groupAddr, "aliases", "noneditablealiases")
	}},
}

// googleRow is one data row with the header's column numbers.
type googleRow struct {
	source, name, path string
	col                map[string]int // lower-case header -> column
	header             []string       // lower-case, as read
	rec                []string
	cr                 *csv.Reader
	groupAddr          Address
}

// at is the position of column c of this row.
func (r *googleRow) at(c int) *Error {
	line, col := r.cr.FieldPos(c)
	return &Error{File: r.name, Line: line, Col: col, Path: r.path}
}

// addr reads a required address column in our domains.
func (r *googleRow) addr(dl *dirLoader, name, what string) (Address, bool) {
	c := r.col[name]
	s := strings.TrimSpace(r.rec[c])
	if s == "" {
		dl.problem(nil, r.path, r.at(c), "empty %q", r.header[c])
		return Address{}, false
	}
	return dl.address(s, what, r.path, r.at(c))
}

func (r *googleRow) user(dl *dirLoader, name string) (Address, bool) {
	c := r.col[name]
	s := strings.TrimSpace(r.rec[c])
	if s == "" {
		dl.problem(nil, r.path, r.at(c), "empty %q", r.header[c])
		return Address{}, false
	}
	return dl.user(s, r.path, r.at(c))
}

// group enters the group of column name (rows repeat it: not a duplicate).
func (r *googleRow) group(dl *dirLoader, name string) (int, bool) {
	a, ok := r.addr(dl, name, "group ")
	if !ok {
		return 0, false
	}
	g, prev := dl.b.addGroup(a)
	switch prev {
	case User:
		dl.problem(ErrDuplicate, r.path, r.at(r.col[name]), "%q is both a user and a group", r.rec[r.col[name]])
		return 0, false
	case aliasEntry:
		dl.warn(r.source, r.path, r.at(r.col[name]), "group %q is also an alias: the group wins", r.rec[r.col[name]])
	}
	r.groupAddr = a
	return g, true
}

func (r *googleRow) member(dl *dirLoader, groupCol, memberCol string) {
	g, ok := r.group(dl, groupCol)
	if !ok {
		return
	}
	if c, ok := r.col[memberCol]; ok && strings.TrimSpace(r.rec[c]) != "" {
		r.addMember(dl, g, strings.TrimSpace(r.rec[c]), c)
	}
}

func (r *googleRow) addMember(dl *dirLoader, g int, s string, c int) {
	m, err := dl.b.parse(s)
	if err != nil {
		dl.problem(nil, r.path, r.at(c), "member %q is not an email address", s)
		return
	}
	dl.b.addMember(g, m)
}

// aliases reads every column named after one of names, alone or with a
// ".N" suffix; a cell may hold several addresses separated by spaces.
func (r *googleRow) aliases(dl *dirLoader, target Address, names ...string) {
	for c, h := range r.header {
		base, _, _ := strings.Cut(h, ".")
		if !slices.Contains(names, base) {
			continue
		}
		for _, s := range strings.Fields(r.rec[c]) {
			if a, err := dl.b.parse(s); err == nil && !dl.rs.ours(a.ASCII) {
				// Google lists addresses in its own test domains
				// (nonEditableAliases) and in domains not configured
				// here: nothing routes there.
				if base == "aliases" {
					dl.warn(r.source, r.path, r.at(c), "alias %q is not in organization.domains: ignored", s)
				}
				continue
			}
			dl.alias(r.source, s, target, r.path, r.at(c))
		}
	}
}

// googleExport loads one export file.
func (dl *dirLoader) googleExport(name, path string, data []byte) {
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")) // spreadsheets write a BOM
	cr := csv.NewReader(bytes.NewReader(data))
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = true
	header, err := cr.Read()
	if err != nil {
		if err == io.EOF {
			err = errors.New("empty file")
		}
		dl.csvError(name, path, err)
		return
	}
	r := &googleRow{source: "file " + name, name: name, path: path, col: map[string]int{}, cr: cr}
	for i, h := range header {
		h = strings.ToLower(strings.TrimSpace(h))
		r.header = append(r.header, h)
		if _, dup := r.col[h]; !dup {
			r.col[h] = i
		}
	}
	var format *googleFormat
	for i := range googleFormats {
		f := &googleFormats[i]
		if !slices.ContainsFunc(f.need, func(n string) bool { _, ok := r.col[n]; return !ok }) {
			format = f
			break
		}
	}
	if format == nil {
		dl.problem(nil, path, &Error{File: name, Line: 1, Col: 1, Path: path},
			"not a Google export this version reads: the header needs \"Email Address [Required]\", \"Group Email [Required]\", \"primaryEmail\", \"Alias\" and \"Target\", \"group\" and \"email\", or \"Email\"")
		return
	}
	errs := 0
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			return
		}
		if err != nil {
			dl.csvError(name, path, err)
			if errs++; errs == maxDirWarnings {
				dl.problem(nil, path, &Error{File: name, Path: path}, "too many unreadable rows; the rest of the file is skipped")
				return
			}
			continue
		}
		if len(rec) < len(header) {
			line, _ := cr.FieldPos(0)
			dl.problem(nil, path, &Error{File: name, Line: line, Col: 1, Path: path},
				"the row has %d fields, the header %d (%s export)", len(rec), len(header), format.name)
			continue
		}
		r.rec = rec
		format.row(dl, r)
	}
}

// csvError reports a CSV syntax problem at its position.
func (dl *dirLoader) csvError(name, path string, err error) {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		dl.problem(nil, path, &Error{File: name, Line: pe.Line, Col: pe.Column, Path: path}, "%v", pe.Err)
		return
	}
	dl.problem(nil, path, &Error{File: name, Path: path}, "%v", err)
}

// googleExports loads [directory] google_exports.
func (dl *dirLoader) googleExports(f *file) {
	for i, name := range f.Directory.GoogleExports {
		path := fmt.Sprintf("directory.google_exports[%d]", i)
		if data, ok := dl.readDirFile(name, path); ok {
			dl.googleExport(name, path, data)
		}
	}
}
