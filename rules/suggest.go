package rules

import (
	"strings"
	"sync"
	"unicode/utf8"
)

// Suggest returns the candidate closest to word, for a "did you mean"
// hint, or "" when none is close enough: at most one edit for words of up
// to four letters, two up to eight, three beyond. An edit inserts,
// deletes or replaces a letter or swaps two neighbours (chek -> check,
// cofnig -> config). Case is ignored. The command line uses it too.
func Suggest(word string, candidates []string) string {
	n := utf8.RuneCountInString(word)
	limit := 1
	switch {
	case n > 8:
		limit = 3
	case n > 4:
		limit = 2
	}
	best, bestD := "", limit+1
	w := strings.ToLower(word)
	for _, c := range candidates {
		if c == word {
			continue
		}
		if d := editDistance(w, strings.ToLower(c)); d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

// editDistance is the optimal string alignment distance (Levenshtein with
// adjacent transpositions) between a and b, in runes.
func editDistance(a, b string) int {
	s, t := []rune(a), []rune(b)
	// d[i][j]: distance between s[:i] and t[:j]; three rows suffice.
	prev2 := make([]int, len(t)+1)
	prev := make([]int, len(t)+1)
	cur := make([]int, len(t)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(s); i++ {
		cur[0] = i
		for j := 1; j <= len(t); j++ {
			cost := 1
			if s[i-1] == t[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && s[i-1] == t[j-2] && s[i-2] == t[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(t)]
}

// keySuggestion is the known key closest to the unknown key k at the same
// place in the schema (Keys, where "*" stands for a name the user
// chooses), or "".
func keySuggestion(k []string) string {
	if len(k) == 0 {
		return ""
	}
	seen := map[string]bool{}
	var candidates []string
	for _, p := range allKeys() {
		parts := strings.Split(p, ".")
		if len(parts) < len(k) {
			continue
		}
		match := true
		for i := range len(k) - 1 {
			if parts[i] != "*" && parts[i] != k[i] {
				match = false
				break
			}
		}
		if c := parts[len(k)-1]; match && c != "*" && !seen[c] {
			seen[c] = true
			candidates = append(candidates, c)
		}
	}
	return Suggest(k[len(k)-1], candidates)
}

// allKeys is Keys, computed once.
var allKeys = sync.OnceValue(Keys)
