package rules

import (
	"bytes"
	"encoding"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// BurntSushi/toml stops at the first value whose type does not fit the
// schema and says so in Go's words ("incompatible types: TOML value has
// type string; destination has type integer"), without a column. Instead,
// when that happens, the document is decoded into plain maps, checked
// against the schema (the file struct) value by value, every misfit is
// reported at its position in plain words and removed, and the rest is
// decoded again so that every other problem is reported too.

// typeProblem is a value of the wrong type.
type typeProblem struct {
	path string // display path, as tomlpos spells it
	msg  string
}

// decodeChecked decodes data into f after removing the values whose type
// does not fit, and returns those problems. A syntax error is returned as
// err, as toml.Decode gives it.
func decodeChecked(data string, f *file) (toml.MetaData, []typeProblem, error) {
	var doc map[string]any
	if _, err := toml.Decode(data, &doc); err != nil {
		return toml.MetaData{}, nil, err
	}
	var probs []typeProblem
	checkTable(doc, reflect.TypeFor[file](), "", &probs)
	var buf bytes.Buffer
	if err := toml.NewEncoder(&buf).Encode(doc); err != nil {
		return toml.MetaData{}, probs, err
	}
	md, err := toml.Decode(buf.String(), f)
	return md, probs, err
}

// checkTable checks the keys of a table against struct type t, removing
// misfits. Keys t does not know are left for the unknown-key check.
func checkTable(m map[string]any, t reflect.Type, path string, probs *[]typeProblem) {
	for k, v := range m {
		ft, ok := fieldType(t, k)
		if !ok {
			continue
		}
		p := joinPath(path, []string{k})
		if !checkValue(v, ft, p, probs) {
			delete(m, k)
		}
	}
}

// fieldType is the type of t's field tagged name.
func fieldType(t reflect.Type, name string) (reflect.Type, bool) {
	for f := range t.Fields() {
		if n, _, _ := strings.Cut(f.Tag.Get("toml"), ","); n == name {
			return f.Type, true
		}
	}
	return nil, false
}

// checkValue reports whether v fits type t, recording the problems
// inside it; a table or map keeps its good entries, a list is kept only
// if every element fits.
func checkValue(v any, t reflect.Type, path string, probs *[]typeProblem) bool {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	bad := func() bool {
		*probs = append(*probs, typeProblem{path: path, msg: fmt.Sprintf("expected %s, not %s", want(t), describe(v))})
		return false
	}
	switch {
	case t.Kind() == reflect.Interface || reflect.PointerTo(t).Implements(tomlUnmarshaler):
		return true // decodes itself
	case reflect.PointerTo(t).Implements(textUnmarshaler) || t == reflect.TypeFor[time.Duration]():
		// text, or a number/duration BurntSushi converts
		switch v.(type) {
		case map[string]any:
			return bad()
		}
		if _, ok := toList(v); ok {
			return bad()
		}
		return true
	}
	switch t.Kind() {
	case reflect.String:
		if _, ok := v.(string); !ok {
			return bad()
		}
	case reflect.Bool:
		if _, ok := v.(bool); !ok {
			return bad()
		}
	case reflect.Int, reflect.Int64, reflect.Int32, reflect.Uint16:
		if _, ok := v.(int64); !ok {
			return bad()
		}
	case reflect.Float64:
		switch v.(type) {
		case int64, float64:
		default:
			return bad()
		}
	case reflect.Slice:
		list, ok := toList(v)
		if !ok {
			return bad()
		}
		fits := true
		for i, e := range list {
			if !checkValue(e, t.Elem(), path+"["+strconv.Itoa(i)+"]", probs) {
				fits = false
			}
		}
		return fits
	case reflect.Map:
		m, ok := v.(map[string]any)
		if !ok {
			return bad()
		}
		for k, e := range m {
			if !checkValue(e, t.Elem(), joinPath(path, []string{k}), probs) {
				delete(m, k)
			}
		}
	case reflect.Struct:
		m, ok := v.(map[string]any)
		if !ok {
			return bad()
		}
		checkTable(m, t, path, probs)
	}
	return true
}

var (
	textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()
	tomlUnmarshaler = reflect.TypeFor[toml.Unmarshaler]()
)

// toList returns the elements of a TOML array (an array of tables decodes
// as []map[string]any).
func toList(v any) ([]any, bool) {
	switch l := v.(type) {
	case []any:
		return l, true
	case []map[string]any:
		out := make([]any, len(l))
		for i, m := range l {
			out[i] = m
		}
		return out, true
	}
	return nil, false
}

// want names what type t takes, in the words of the TOML file.
func want(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "text in quotes"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int64, reflect.Int32, reflect.Uint16:
		return "a whole number"
	case reflect.Float64:
		return "a number"
	case reflect.Slice:
		return "a list [...]"
	}
	return "a table"
}

// describe names what a TOML value is, with the value when it is short.
func describe(v any) string {
	switch x := v.(type) {
	case string:
		if len(x) > 40 {
			x = x[:37] + "..."
		}
		return fmt.Sprintf("text (%q)", x)
	case int64:
		return fmt.Sprintf("a number (%d)", x)
	case float64:
		return fmt.Sprintf("a fractional number (%v)", x)
	case bool:
		return fmt.Sprintf("%v", x)
	case time.Time:
		return "a date or time"
	case map[string]any:
		return "a table"
	}
	if _, ok := toList(v); ok {
		return "a list"
	}
	return fmt.Sprintf("%T", v)
}

// ErrType is a value of the wrong type (text where a number belongs...).
var ErrType = errors.New("rules: wrong type")

// dropDerived removes the problems that only follow from a removed
// misfit (a required key reported missing because its value had the
// wrong type, its table found incomplete), keeping the type problems
// themselves.
func (l *loader) dropDerived(probs []typeProblem) {
	if len(probs) == 0 {
		return
	}
	l.errs = slices.DeleteFunc(l.errs, func(e *Error) bool {
		if e.Kind == ErrType || e.File != l.name {
			return false
		}
		for _, p := range probs {
			// a list is removed whole when one element does not fit
			removed := p.path
			for strings.HasSuffix(removed, "]") {
				removed = removed[:strings.LastIndexByte(removed, '[')]
			}
			parent := removed[:max(strings.LastIndexAny(removed, ".["), 0)]
			if e.Path == removed || e.Path == parent && parent != "" ||
				strings.HasPrefix(e.Path, removed+".") || strings.HasPrefix(e.Path, removed+"[") {
				return true
			}
		}
		return false
	})
}

// lineCol is the 1-based line and column (in runes) of byte offset off.
func lineCol(data []byte, off int) (line, col int) {
	line, col = 1, 1
	for _, r := range string(data[:off]) {
		if r == '\n' {
			line++
			col = 1
		} else {
			col++
		}
	}
	return line, col
}

// plainSyntax rewords the parser's messages where they speak Go.
func plainSyntax(msg string) string {
	msg = strings.ReplaceAll(msg, `'\n'`, "the end of the line")
	msg = strings.ReplaceAll(msg, `'\r'`, "the end of the line")
	msg = strings.ReplaceAll(msg, "expected value but found", "expected a value but found")
	if k, ok := strings.CutPrefix(msg, "Key '"); ok {
		if k, ok := strings.CutSuffix(k, "' has already been defined."); ok {
			return "defined twice: " + k + " is already defined above (a table or key may appear only once)"
		}
	}
	return strings.TrimSuffix(msg, ".")
}
