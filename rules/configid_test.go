package rules

import (
	"errors"
	"testing"
)

func TestConfigID(t *testing.T) {
	const conf = "[organization]\ndomains = [\"example.com\"]\n[directory]\nusers_files = [\"u.txt\"]\n"
	id := func(conf, users string) string {
		t.Helper()
		rs, err := Load("t.toml", []byte(conf), mapFiles{"u.txt": users})
		if err != nil {
			t.Fatal(err)
		}
		if len(rs.ID) != IDLen {
			t.Fatalf("id %q is not %d hex digits", rs.ID, IDLen)
		}
		return rs.ID
	}
	base := id(conf, "alice@example.com\n")
	tests := []struct {
		name        string
		conf, users string
		same        bool
	}{
		{"same contents", conf, "alice@example.com\n", true},
		{"users file changed", conf, "bob@example.com\n", false},
		{"config changed", conf + "# comment\n", "alice@example.com\n", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := id(tc.conf, tc.users); (got == base) != tc.same {
				t.Errorf("id %s vs %s: same = %v, want %v", got, base, got == base, tc.same)
			}
		})
	}
	// A refused file has no id; loading never leaks a half-built one.
	if _, err := Load("t.toml", []byte("[organization]\ndomains = 1\n"), nil); !errors.As(err, new(Errors)) {
		t.Errorf("bad file: %v", err)
	}
}
