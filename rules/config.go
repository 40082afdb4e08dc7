package rules

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/BurntSushi/toml"
)

// file is the TOML document as written. Values are decoded into plain
// types first; validation then reports every problem at once with its
// position (see tomlpos.go), instead of stopping at the first.
type file struct {
	Milter struct {
		Listen        string `toml:"listen"`
		RoutingSuffix string `toml:"routing_suffix"`
		DryRun        bool   `toml:"dry_run"`
	} `toml:"milter"`
	Log struct {
		Level  string `toml:"level"`
		Format string `toml:"format"`
	} `toml:"log"`
	Organization struct {
		Domains       []string          `toml:"domains"`
		DomainAliases map[string]string `toml:"domain_aliases"`
	} `toml:"organization"`
	Directory struct {
		RecipientDelimiter string              `toml:"recipient_delimiter"`
		Users              []string            `toml:"users"`
		UsersFiles         []string            `toml:"users_files"`
		GoogleExports      []string            `toml:"google_exports"`
		Aliases            map[string]string   `toml:"aliases"`
		Groups             map[string][]string `toml:"groups"`
		LDAP               fileLDAP            `toml:"ldap"`
	} `toml:"directory"`
	Routes        map[string]fileRoute `toml:"routes"`
	SplitDelivery []fileRule           `toml:"split_delivery"`
	Relay         fileRelay            `toml:"relay"`
	Metrics       fileMetrics          `toml:"metrics"`
	State         fileState            `toml:"state"`
}

type fileRelay struct {
	AllowedSenders  string        `toml:"allowed_senders"`
	RequireNetwork  bool          `toml:"require_network"`
	RequireSMTPAuth bool          `toml:"require_smtp_auth"`
	RequireTLS      bool          `toml:"require_tls"`
	LogBadHelo      bool          `toml:"log_bad_helo"`
	Networks        []fileNetwork `toml:"networks"`
	Limits          struct {
		RecipientsPerMessage      int    `toml:"recipients_per_message"`
		UserMessagesPerDay        int    `toml:"user_messages_per_day"`
		UserRecipientsPerDay      int    `toml:"user_recipients_per_day"`
		OrgRecipientsPerDay       int    `toml:"org_recipients_per_day"`
		OrgRecipientsPer10Minutes int    `toml:"org_recipients_per_10_minutes"`
		MessageSize               string `toml:"message_size"`
	} `toml:"limits"`
}

type fileNetwork struct {
	CIDR        string `toml:"cidr"`
	Description string `toml:"description"`
	Enabled     *bool  `toml:"enabled"`
}

type fileRoute struct {
	Description      string     `toml:"description"`
	Host             string     `toml:"host"`
	Port             int        `toml:"port"`
	Primary          []fileHost `toml:"primary"`
	Secondary        []fileHost `toml:"secondary"`
	MXLookup         bool       `toml:"mx_lookup"`
	RequireTLS       bool       `toml:"require_tls"`
	RequireCASigned  bool       `toml:"require_ca_signed"`
	ValidateHostname bool       `toml:"validate_hostname"`
}

type fileHost struct {
	Host string `toml:"host"`
	Port *int   `toml:"port"` // nil: DefaultPort
	Load *int   `toml:"load"` // nil: 100, allowed for a table of one host only
}

type fileRule struct {
	Name        string   `toml:"name"`
	Messages    []string `toml:"messages"`
	Accounts    []string `toml:"accounts"`
	Route       string   `toml:"route"`
	AlsoDeliver bool     `toml:"also_deliver"`
	Envelope    struct {
		Senders    []string `toml:"senders"`
		Recipients []string `toml:"recipients"`
	} `toml:"envelope"`
}

// Defaults, in one place. Each is documented on the field it fills.
const (
	DefaultListen        = "unix:/var/spool/postfix/splitrelay/milter.sock"
	DefaultRoutingSuffix = "splitrelay.invalid"
	DefaultLogLevel      = "info"
	DefaultLogFormat     = "auto"
	DefaultPort          = 25

	// Google's SMTP relay limits (seed 003).
	DefaultRecipientsPerMessage      = 100
	DefaultUserMessagesPerDay        = 10000
	DefaultUserRecipientsPerDay      = 10000
	DefaultOrgRecipientsPerDay       = 4600000
	DefaultOrgRecipientsPer10Minutes = 319444
	DefaultMessageSize               = "25MB"
)

func defaults(f *file) {
	l := &f.Relay.Limits
	l.RecipientsPerMessage = DefaultRecipientsPerMessage
	l.UserMessagesPerDay = DefaultUserMessagesPerDay
	l.UserRecipientsPerDay = DefaultUserRecipientsPerDay
	l.OrgRecipientsPerDay = DefaultOrgRecipientsPerDay
	l.OrgRecipientsPer10Minutes = DefaultOrgRecipientsPer10Minutes
	l.MessageSize = DefaultMessageSize
	f.Relay.AllowedSenders = "domain_addresses"
	f.Relay.RequireNetwork = true
	f.Milter.Listen = DefaultListen
	f.Milter.RoutingSuffix = DefaultRoutingSuffix
	f.Log.Level = DefaultLogLevel
	f.Log.Format = DefaultLogFormat
	f.Directory.RecipientDelimiter = DefaultRecipientDelimiter
	ldapDefaults(&f.Directory.LDAP)
	f.State.Dir = DefaultStateDir
	f.State.RedisUnavailable = DefaultRedisUnavailable
}

// loader collects problems while a file is validated.
type loader struct {
	name  string
	md    toml.MetaData
	ix    *posIndex
	files Files
	errs  Errors
}

// errorf records a problem at path's position.
func (l *loader) errorf(kind error, path, format string, args ...any) {
	p := l.ix.lookup(path)
	l.errs = append(l.errs, &Error{File: l.name, Line: p.line, Col: p.col, Path: path, Msg: fmt.Sprintf(format, args...), Kind: kind})
}

// Load parses and validates a configuration. name is used in error
// messages; files reads users_files (nil: users_files are refused). On
// failure the error is an Errors holding every problem found.
func Load(name string, data []byte, files Files) (*Ruleset, error) {
	var f file
	defaults(&f)
	md, err := toml.Decode(string(data), &f)
	var probs []typeProblem
	if err != nil && !errors.As(err, new(toml.ParseError)) {
		// a value of the wrong type: find them all (typecheck.go)
		f = file{}
		defaults(&f)
		md, probs, err = decodeChecked(string(data), &f)
	}
	if err != nil {
		return nil, Errors{syntaxError(name, data, err)}
	}
	idf := newIDFiles(data, files)
	l := &loader{name: name, md: md, ix: indexPositions(string(data)), files: files}
	if files != nil {
		l.files = idf
	}
	for _, p := range probs {
		l.errorf(ErrType, p.path, "%s", p.msg)
	}
	l.unknownKeys()
	rs := l.build(&f)
	l.dropDerived(probs)
	if len(l.errs) > 0 {
		l.sort()
		return nil, l.errs
	}
	rs.ID = idf.id()
	return rs, nil
}

// syntaxError turns a decoder error into an Error with its position, in
// plainer words than the parser's.
func syntaxError(name string, data []byte, err error) *Error {
	var pe toml.ParseError
	if errors.As(err, &pe) {
		line, col := pe.Position.Line, pe.Position.Col
		if s := pe.Position.Start; s >= 0 && s < len(data) {
			line, col = lineCol(data, s)
		}
		path := pe.LastKey
		if strings.Contains(pe.Message, "table name") {
			path = "" // the last key read is not the table being named
		}
		msg := plainSyntax(pe.Message)
		if rest, ok := strings.CutPrefix(msg, "defined twice: "); ok {
			msg = rest
			if path != "" {
				msg = "already defined above (a table or key may appear only once)"
			}
		}
		return &Error{File: name, Line: line, Col: col, Path: path, Msg: msg}
	}
	return &Error{File: name, Msg: err.Error()}
}

// unknownKeys reports every key the schema does not know, at each place it
// occurs, with the closest known key: a typo must never silently disable a
// rule. A misspelt table is one problem, not one per key in it.
func (l *loader) unknownKeys() {
	undecoded := l.md.Undecoded()
	inUnknownTable := func(k toml.Key) bool {
		for _, o := range undecoded {
			if len(o) < len(k) && sameKey(o, k[:len(o)]) {
				return true
			}
		}
		return false
	}
	for _, k := range undecoded {
		if inUnknownTable(k) {
			continue
		}
		msg, s := "unknown key", keySuggestion(k)
		if isTable(undecoded, k) {
			msg = "unknown table"
			if s != "" {
				s = "[" + strings.Join(append(slices.Clone(k[:len(k)-1]), s), ".") + "]"
			}
		}
		if s != "" {
			msg += "; did you mean " + s + "?"
		}
		found := false
		for _, e := range l.ix.entries {
			if !e.elem && sameKey(e.keys, k) {
				l.errs = append(l.errs, &Error{File: l.name, Line: e.key.line, Col: e.key.col, Path: e.path, Msg: msg, Kind: ErrUnknownKey})
				found = true
			}
		}
		if !found {
			l.errorf(ErrUnknownKey, k.String(), "%s", msg)
		}
	}
}

// isTable reports whether k has keys of its own among keys.
func isTable(keys []toml.Key, k toml.Key) bool {
	for _, o := range keys {
		if len(o) > len(k) && sameKey(k, o[:len(k)]) {
			return true
		}
	}
	return false
}

func sameKey(a []string, b toml.Key) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// sort orders problems by position so the output reads like the file;
// problems in files it refers to (users_files) come after.
func (l *loader) sort() {
	slices.SortStableFunc(l.errs, func(a, b *Error) int {
		if a.File != b.File {
			if a.File == l.name {
				return -1
			}
			if b.File == l.name {
				return 1
			}
			return strings.Compare(a.File, b.File)
		}
		return cmp.Or(cmp.Compare(a.Line, b.Line), cmp.Compare(a.Col, b.Col))
	})
}
