package main

import (
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

// printLoadError prints why a configuration did not load: every problem,
// one per line, FILE:LINE:COL: path: message (at priority err when w is
// the journal: ExecStartPre= runs check).
func printLoadError(w io.Writer, err error) {
	printProblems(w, errPrefix(w), err)
}
