package rules

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files")

// dirFiles reads users_files relative to a directory, as the daemon does
// relative to the config file.
type dirFiles string

func (d dirFiles) ReadFile(name string) ([]byte, error) {
	return os.ReadFile(filepath.Join(string(d), name))
}

const testdataDir = "../testdata/rules"

func loadTestdata(t testing.TB, name string) (*Ruleset, error) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(testdataDir, name))
	if err != nil {
		t.Fatal(err)
	}
	return Load(name, data, dirFiles(testdataDir))
}

// TestGolden loads every testdata/rules/*.toml and compares the summary (or
// the exact error text, positions included) with <case>.golden.
func TestGolden(t *testing.T) {
	cases, _ := filepath.Glob(filepath.Join(testdataDir, "*.toml"))
	if len(cases) == 0 {
		t.Fatal("no test cases")
	}
	for _, c := range cases {
		name := filepath.Base(c)
		t.Run(strings.TrimSuffix(name, ".toml"), func(t *testing.T) {
			rs, err := loadTestdata(t, name)
			got := ""
			if err != nil {
				got = err.Error() + "\n"
			} else {
				for _, w := range rs.Warnings() {
					got += "warning: " + w.Error() + "\n"
				}
				got += rs.Summary() + "\n"
			}
			golden := strings.TrimSuffix(c, ".toml") + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test ./rules -update)", err)
			}
			if got != string(want) {
				t.Errorf("got:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}

func TestLoadErrorsAreTyped(t *testing.T) {
	_, err := loadTestdata(t, "errors.toml")
	var es Errors
	if !errors.As(err, &es) {
		t.Fatalf("error is %T, want Errors", err)
	}
	for _, kind := range []error{ErrUnknownKey, ErrUnknownRoute, ErrUnknownGroup, ErrDuplicate} {
		if !errors.Is(err, kind) {
			t.Errorf("errors.Is(err, %v) = false", kind)
		}
	}
	for _, e := range es {
		if e.Line == 0 && e.File == "errors.toml" {
			t.Errorf("no position: %v", e)
		}
	}
}

func TestUsersFilesNeedReader(t *testing.T) {
	_, err := Load("x.toml", []byte("[organization]\ndomains=[\"example.com\"]\n[directory]\nusers_files=[\"u.txt\"]\n"), nil)
	if err == nil || !strings.Contains(err.Error(), "x.toml:4:14: directory.users_files[0]: users_files cannot be read here") {
		t.Fatalf("got %v", err)
	}
}

// TestReferenceConfig loads the documented reference configuration that
// packages install, so the documentation cannot drift from the schema.
func TestReferenceConfig(t *testing.T) {
	data, err := os.ReadFile("../contrib/splitrelay.toml")
	if err != nil {
		t.Fatal(err)
	}
	rs, err := Load("splitrelay.toml", data, mapFiles{"/etc/splitrelay/users.txt": "erin@example.com\n"})
	if err != nil {
		t.Fatal(err)
	}
	d := decide(rs, Envelope{Sender: "p@partner.example", HeaderFrom: "p@partner.example", Recipients: []string{"zed@example.com", "sales@example.com", "erin@example.com"}})
	var got []string
	for _, r := range d.Recipients {
		got = append(got, r.Address+": "+outcome(r))
	}
	want := "zed@example.com: route legacy, sales@example.com: accept +copy archive, erin@example.com: accept"
	if strings.Join(got, ", ") != want {
		t.Errorf("got %s\nwant %s", strings.Join(got, ", "), want)
	}
}
