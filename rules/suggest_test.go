package rules

import "testing"

func TestSuggest(t *testing.T) {
	commands := []string{"run", "reload", "check", "explain", "postfix", "test-route", "version", "help"}
	tests := []struct {
		word       string
		candidates []string
		want       string
	}{
		{"chek", commands, "check"},
		{"chekc", commands, "check"},
		{"explian", commands, "explain"},
		{"postifx", commands, "postfix"},
		{"testroute", commands, "test-route"},
		{"verison", commands, "version"},
		{"rn", commands, "run"},
		{"frobnicate", commands, ""},
		{"xyz", commands, ""},
		{"cofnig", []string{"config", "c", "pid", "timeout"}, "config"},
		{"directroy", []string{"milter", "log", "organization", "directory", "routes"}, "directory"},
		{"Directory", []string{"directory"}, "directory"},
		{"directory", []string{"directory"}, ""}, // not unknown
	}
	for _, tc := range tests {
		if got := Suggest(tc.word, tc.candidates); got != tc.want {
			t.Errorf("Suggest(%q) = %q, want %q", tc.word, got, tc.want)
		}
	}
}

func TestEditDistance(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"", "", 0}, {"a", "", 1}, {"", "ab", 2}, {"check", "check", 0},
		{"chek", "check", 1}, {"cofnig", "config", 1}, {"ab", "ba", 1},
		{"kitten", "sitting", 3}, {"héllo", "hello", 1},
	}
	for _, tc := range tests {
		if got := editDistance(tc.a, tc.b); got != tc.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
}

func TestKeySuggestion(t *testing.T) {
	tests := []struct {
		key  []string
		want string
	}{
		{[]string{"directroy"}, "directory"},
		{[]string{"routes", "legacy", "hots"}, "host"},
		{[]string{"split_delivery", "acounts"}, "accounts"},
		{[]string{"relay", "limits", "message_sise"}, "message_size"},
		{[]string{"milter", "lisen"}, "listen"},
		{[]string{"milter", "zzzzzz"}, ""},
	}
	for _, tc := range tests {
		if got := keySuggestion(tc.key); got != tc.want {
			t.Errorf("keySuggestion(%q) = %q, want %q", tc.key, got, tc.want)
		}
	}
}
