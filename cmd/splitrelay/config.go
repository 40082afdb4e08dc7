package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/splitrelay/splitrelay/rules"
)

// defaultConfig is where the packages install the configuration.
const defaultConfig = "/etc/splitrelay/splitrelay.toml"

// loadConfig reads and validates the configuration file. Relative
// users_files are read from the configuration file's directory. A file
// that does not validate gives a rules.Errors.
func loadConfig(path string) (*rules.Ruleset, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return rules.Load(path, data, dirFiles{dir: filepath.Dir(path)})
}

// dirFiles reads the files a configuration refers to from the file system,
// relative names from dir.
type dirFiles struct{ dir string }

var _ rules.Files = dirFiles{}

func (f dirFiles) ReadFile(name string) ([]byte, error) {
	if !filepath.IsAbs(name) {
		name = filepath.Join(f.dir, name)
	}
	return os.ReadFile(name)
}

// newFlags returns a flag set for a subcommand with -c/--config, whose
// usage text is the synopsis and the flag descriptions given.
func newFlags(name, synopsis, flags string, stderr io.Writer) (*flag.FlagSet, *string) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: splitrelay %s %s\n\n", name, synopsis)
		fmt.Fprintf(fs.Output(), "  -c, --config FILE     configuration file (default %s)\n%s", defaultConfig, flags)
	}
	config := new(string)
	fs.StringVar(config, "c", defaultConfig, "")
	fs.StringVar(config, "config", defaultConfig, "")
	return fs, config
}

// parseFlags parses args; exit is the code to return when ok is false: 0
// after -h, 2 after a usage error (the flag package has printed it).
// Positional arguments are usage errors.
func parseFlags(fs *flag.FlagSet, args []string) (exit int, ok bool) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0, false
		}
		return 2, false
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "splitrelay %s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
		fs.Usage()
		return 2, false
	}
	return 0, true
}

// usageError prints a usage problem found after parsing and returns 2.
func usageError(fs *flag.FlagSet, format string, args ...any) int {
	fmt.Fprintf(fs.Output(), "splitrelay %s: %s\n", fs.Name(), fmt.Sprintf(format, args...))
	fs.Usage()
	return 2
}

// printLoadError prints why a configuration did not load: every problem,
// one per line, FILE:LINE:COL: path: message.
func printLoadError(w io.Writer, err error) {
	var es rules.Errors
	if errors.As(err, &es) {
		for _, e := range es {
			fmt.Fprintln(w, e.Error())
		}
		return
	}
	fmt.Fprintf(w, "splitrelay: %v\n", err)
}
