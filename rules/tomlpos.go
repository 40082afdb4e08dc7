package rules

import (
	"strconv"
	"strings"
)

// BurntSushi/toml reports positions for syntax errors only; its MetaData does
// not expose where a key was defined. Validation happens after decoding (so
// that every problem is reported at once, not just the first), and each
// problem must still say FILE:LINE:COL. positions is that missing index: a
// light scan of an already valid TOML document that records where every key,
// array element and inline-table key starts.

// pos is a 1-based line and column.
type pos struct{ line, col int }

// keyPos is one key occurrence.
type keyPos struct {
	keys []string // key pieces without array indexes, as toml.Key
	path string   // display path with indexes: split_delivery[1].route
	at   pos      // where the value starts
	key  pos      // where the key starts (the header, for a table)
	elem bool     // an array element, not a key
}

type posIndex struct {
	byPath  map[string]pos
	entries []keyPos
}

// lookup returns the position of path or of its nearest known parent.
func (ix *posIndex) lookup(path string) pos {
	for path != "" {
		if p, ok := ix.byPath[path]; ok {
			return p
		}
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			break
		}
		path = path[:i]
	}
	return pos{}
}

type tomlScanner struct {
	src       string
	i         int
	line, col int
	ix        *posIndex
	aot       map[string]int // array-of-tables header -> current index
	keyAt     pos            // start of the key whose value is being read
}

func indexPositions(src string) *posIndex {
	s := &tomlScanner{src: src, line: 1, col: 1, ix: &posIndex{byPath: map[string]pos{}}, aot: map[string]int{}}
	s.document()
	return s.ix
}

func (s *tomlScanner) eof() bool { return s.i >= len(s.src) }

func (s *tomlScanner) peek() byte {
	if s.eof() {
		return 0
	}
	return s.src[s.i]
}

func (s *tomlScanner) next() {
	if s.eof() {
		return
	}
	if s.src[s.i] == '\n' {
		s.line++
		s.col = 1
	} else if s.src[s.i]&0xC0 != 0x80 { // count runes, not bytes
		s.col++
	}
	s.i++
}

func (s *tomlScanner) here() pos { return pos{s.line, s.col} }

// skipSpace skips blanks, and newlines and comments when nl is true.
func (s *tomlScanner) skipSpace(nl bool) {
	for !s.eof() {
		switch c := s.peek(); {
		case c == ' ' || c == '\t' || c == '\r':
			s.next()
		case c == '#':
			for !s.eof() && s.peek() != '\n' {
				s.next()
			}
		case c == '\n' && nl:
			s.next()
		default:
			return
		}
	}
}

func (s *tomlScanner) skipLine() {
	for !s.eof() && s.peek() != '\n' {
		s.next()
	}
}

func (s *tomlScanner) record(keys []string, path string, at, keyAt pos) {
	k := append([]string(nil), keys...)
	s.ix.entries = append(s.ix.entries, keyPos{keys: k, path: path, at: at, key: keyAt, elem: strings.HasSuffix(path, "]")})
	if _, dup := s.ix.byPath[path]; !dup {
		s.ix.byPath[path] = at
	}
}

func (s *tomlScanner) document() {
	var table []string
	tablePath := ""
	for guard := 0; !s.eof() && guard < len(s.src)+1; guard++ {
		s.skipSpace(true)
		if s.eof() {
			return
		}
		start := s.i
		at := s.here()
		if s.peek() == '[' {
			s.next()
			arr := s.peek() == '['
			if arr {
				s.next()
			}
			s.skipSpace(false)
			table = s.key()
			joined := strings.Join(table, ".")
			if arr {
				if n, ok := s.aot[joined]; ok {
					s.aot[joined] = n + 1
				} else {
					s.aot[joined] = 0
				}
			}
			tablePath = s.displayPath(table)
			s.record(table, tablePath, at, at)
			s.skipLine()
			continue
		}
		keys := s.key()
		s.skipSpace(false)
		if s.peek() == '=' {
			s.next()
			s.skipSpace(false)
			full := append(append([]string(nil), table...), keys...)
			s.keyAt = at
			s.value(full, joinPath(tablePath, keys))
		}
		if s.i == start { // malformed: never loop forever
			s.next()
		}
		s.skipLine()
	}
}

// displayPath adds the current array-of-tables indexes to a header key.
func (s *tomlScanner) displayPath(keys []string) string {
	var b strings.Builder
	for n := range keys {
		if n > 0 {
			b.WriteByte('.')
		}
		b.WriteString(quoteKey(keys[n]))
		if idx, ok := s.aot[strings.Join(keys[:n+1], ".")]; ok {
			b.WriteString("[")
			b.WriteString(strconv.Itoa(idx))
			b.WriteString("]")
		}
	}
	return b.String()
}

func joinPath(prefix string, keys []string) string {
	parts := make([]string, 0, len(keys)+1)
	if prefix != "" {
		parts = append(parts, prefix)
	}
	for _, k := range keys {
		parts = append(parts, quoteKey(k))
	}
	return strings.Join(parts, ".")
}

// quoteKey quotes a key piece that is not a bare key, as toml.Key does.
func quoteKey(k string) string {
	if k == "" {
		return `""`
	}
	for _, c := range k {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return `"` + strings.ReplaceAll(k, `"`, `\"`) + `"`
		}
	}
	return k
}

// key reads a dotted key: bare or quoted pieces separated by dots.
func (s *tomlScanner) key() []string {
	var keys []string
	for !s.eof() {
		s.skipSpace(false)
		switch s.peek() {
		case '"', '\'':
			keys = append(keys, s.str())
		default:
			start := s.i
			for !s.eof() {
				c := s.peek()
				if c == '.' || c == '=' || c == ']' || c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '#' || c == ',' || c == '}' {
					break
				}
				s.next()
			}
			keys = append(keys, s.src[start:s.i])
		}
		s.skipSpace(false)
		if s.peek() != '.' {
			return keys
		}
		s.next()
	}
	return keys
}

// str reads a basic, literal or multi-line string and returns its content
// (escapes are kept as written; keys with escapes are rare).
func (s *tomlScanner) str() string {
	q := s.peek()
	triple := strings.HasPrefix(s.src[s.i:], strings.Repeat(string(q), 3))
	n := 1
	if triple {
		n = 3
	}
	for range n {
		s.next()
	}
	start := s.i
	for !s.eof() {
		c := s.peek()
		if c == '\\' && q == '"' {
			s.next()
			s.next()
			continue
		}
		if c == q && (!triple || strings.HasPrefix(s.src[s.i:], strings.Repeat(string(q), 3))) {
			end := s.i
			for range n {
				s.next()
			}
			// a multi-line string may end with up to two extra quotes
			for triple && s.peek() == q {
				s.next()
				end++
			}
			return s.src[start:end]
		}
		if c == '\n' && !triple {
			break
		}
		s.next()
	}
	return s.src[start:s.i]
}

// value records path at the value's start and descends into arrays and
// inline tables.
func (s *tomlScanner) value(keys []string, path string) {
	keyAt := s.keyAt
	if strings.HasSuffix(path, "]") { // an array element: its own start
		keyAt = s.here()
	}
	s.record(keys, path, s.here(), keyAt)
	switch s.peek() {
	case '"', '\'':
		s.str()
	case '[':
		s.next()
		for n := 0; !s.eof(); n++ {
			s.skipSpace(true)
			if s.peek() == ']' {
				s.next()
				return
			}
			before := s.i
			s.value(keys, path+"["+strconv.Itoa(n)+"]")
			s.skipSpace(true)
			if s.peek() == ',' {
				s.next()
			} else if s.i == before {
				s.next()
			}
		}
	case '{':
		s.next()
		for !s.eof() {
			s.skipSpace(true)
			if s.peek() == '}' {
				s.next()
				return
			}
			before := s.i
			subAt := s.here()
			sub := s.key()
			s.skipSpace(false)
			if s.peek() == '=' {
				s.next()
				s.skipSpace(false)
				s.keyAt = subAt
				s.value(append(append([]string(nil), keys...), sub...), joinPath(path, sub))
			}
			s.skipSpace(true)
			if s.peek() == ',' {
				s.next()
			} else if s.i == before {
				s.next()
			}
		}
	default:
		for !s.eof() {
			c := s.peek()
			if c == ',' || c == ']' || c == '}' || c == '\n' || c == '#' {
				return
			}
			s.next()
		}
	}
}
