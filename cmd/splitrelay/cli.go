package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/splitrelay/splitrelay/rules"
)

// flags is a subcommand's flag set. Every subcommand prints its help the
// same way: `splitrelay NAME -h`, `--help` and `splitrelay help NAME`
// print "usage: splitrelay NAME SYNOPSIS", a blank line and the flags, on
// stdout, and exit 0; a usage error prints the problem (with a "did you
// mean" for a near miss) and the same help on stderr, and exits 2.
type flags struct {
	*flag.FlagSet
	stdout, stderr io.Writer
	synopsis, help string
}

const configFlagHelp = "  -c, --config FILE     configuration file (default " + defaultConfig + ")\n"

// newCommandFlags returns the flag set of a subcommand; help describes its
// flags, one "  --name ARG    text" line each (see explainFlags).
func newCommandFlags(name, synopsis, help string, stdout, stderr io.Writer) *flags {
	fs := &flags{FlagSet: flag.NewFlagSet(name, flag.ContinueOnError), stdout: stdout, stderr: stderr, synopsis: synopsis, help: help}
	// The flag package's own messages and usage are replaced by ours.
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return fs
}

// newFlags returns the flag set of a subcommand that reads the
// configuration, with -c/--config.
func newFlags(name, synopsis, help string, stdout, stderr io.Writer) (*flags, *string) {
	fs := newCommandFlags(name, synopsis, configFlagHelp+help, stdout, stderr)
	config := new(string)
	fs.StringVar(config, "c", defaultConfig, "")
	fs.StringVar(config, "config", defaultConfig, "")
	return fs, config
}

// usage prints the command's help to w.
func (fs *flags) usage(w io.Writer) {
	fmt.Fprintf(w, "usage: %s\n\n", strings.TrimSpace("splitrelay "+fs.Name()+" "+fs.synopsis))
	if fs.help == "" {
		fmt.Fprintln(w, "  (no flags)")
		return
	}
	fmt.Fprint(w, fs.help)
}

// parseFlags parses args, which may not hold positional arguments; exit
// is the code to return when ok is false: 0 after -h, 2 after a usage
// error (printed).
func parseFlags(fs *flags, args []string) (exit int, ok bool) {
	rest, exit, ok := fs.parseArgs(args)
	if ok && len(rest) > 0 {
		return usageError(fs, "unexpected argument %q", rest[0]), false
	}
	return exit, ok
}

// parseArgs parses flags and positional arguments in any order ("--"
// ends the flags) and returns the positional ones.
func (fs *flags) parseArgs(args []string) (positional []string, exit int, ok bool) {
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				fs.usage(fs.stdout)
				return nil, 0, false
			}
			return nil, usageError(fs, "%s", fs.explain(err)), false
		}
		if fs.NArg() == 0 {
			return positional, 0, true
		}
		rest := fs.Args()
		if len(args) > len(rest) && args[len(args)-len(rest)-1] == "--" {
			return append(positional, rest...), 0, true
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
}

// explain rewords the flag package's errors: an unknown flag is named as
// it would be written, with the closest known flag.
func (fs *flags) explain(err error) string {
	msg := err.Error()
	name, unknown := strings.CutPrefix(msg, "flag provided but not defined: -")
	if !unknown {
		return msg
	}
	var known []string
	fs.VisitAll(func(f *flag.Flag) { known = append(known, f.Name) })
	sort.Strings(known)
	msg = "unknown flag " + dashed(name)
	if s := rules.Suggest(name, known); s != "" {
		msg += "; did you mean " + dashed(s) + "?"
	}
	return msg
}

// dashed is a flag as the help spells it: -c, --config.
func dashed(name string) string {
	if len(name) == 1 {
		return "-" + name
	}
	return "--" + name
}

// usageError prints a usage problem and the command's help on stderr and
// returns 2.
func usageError(fs *flags, format string, args ...any) int {
	fmt.Fprintf(fs.stderr, "splitrelay %s: %s\n\n", fs.Name(), fmt.Sprintf(format, args...))
	fs.usage(fs.stderr)
	return 2
}
