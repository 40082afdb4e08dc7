package rules

import (
	"errors"
	"fmt"
	"strings"
)

// ErrUnknownRoute and friends let callers test for a kind of problem with
// errors.Is on an *Error.
var (
	ErrUnknownKey   = errors.New("rules: unknown key")
	ErrUnknownRoute = errors.New("rules: unknown route")
	ErrUnknownGroup = errors.New("rules: unknown group")
	ErrDuplicate    = errors.New("rules: duplicate")
	ErrUnsupported  = errors.New("rules: not supported yet")
)

// Error is one configuration problem at a position in a file.
type Error struct {
	File      string
	Line, Col int    // 1-based; 0 when unknown
	Path      string // TOML key path, e.g. routes.legacy.port
	Msg       string
	Kind      error // one of the Err* sentinels, or nil
}

// Error formats the problem as FILE:LINE:COL: path: message, the form
// editors and `splitrelay check` users jump to.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d:%d", e.Line, max(e.Col, 1))
	}
	b.WriteString(": ")
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

func (e *Error) Unwrap() error { return e.Kind }

// Errors is every problem found in a configuration, in file order.
type Errors []*Error

// Error is all problems, one per line.
func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap lets errors.Is and errors.As look at every problem.
func (es Errors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

// kindError is a message that errors.Is can match against a sentinel.
type kindError struct {
	kind error
	msg  string
}

func (e *kindError) Error() string { return e.msg }
func (e *kindError) Unwrap() error { return e.kind }
