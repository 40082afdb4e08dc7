package postfix

import (
	"fmt"
	"io"
	"strings"
)

// WriteDiff writes a unified diff (diff -u, three lines of context) of
// before and after, naming them a and b; nothing when they are equal.
// main.cf and master.cf have hundreds of lines at most, so a plain
// longest-common-subsequence table is enough.
func WriteDiff(w io.Writer, a, b string, before, after []byte) error {
	x, y := lines(string(before)), lines(string(after))
	n, m := len(x), len(y)
	// lcs[i][j]: length of the LCS of x[i:] and y[j:]
	lcs := make([][]int32, n+1)
	for i := range lcs {
		lcs[i] = make([]int32, m+1)
	}
	for i := n - 1; i >= 0; i-- {
		for j := m - 1; j >= 0; j-- {
			if x[i] == y[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	type op struct {
		kind byte // ' ', '-', '+'
		text string
		i, j int // line numbers (0-based) in x and y before this op
	}
	var ops []op
	i, j := 0, 0
	for i < n || j < m {
		switch {
		case i < n && j < m && x[i] == y[j]:
			ops = append(ops, op{' ', x[i], i, j})
			i++
			j++
		case i < n && (j == m || lcs[i+1][j] >= lcs[i][j+1]):
			ops = append(ops, op{'-', x[i], i, j})
			i++
		default:
			ops = append(ops, op{'+', y[j], i, j})
			j++
		}
	}
	const context = 3
	header := false
	for k := 0; k < len(ops); {
		if ops[k].kind == ' ' {
			k++
			continue
		}
		// a hunk: from context lines before k to context lines after the
		// last change that is at most 2*context equal lines from the next
		start := max(0, k-context)
		end := k
		for end < len(ops) {
			if ops[end].kind != ' ' {
				end++
				continue
			}
			run := end
			for run < len(ops) && ops[run].kind == ' ' {
				run++
			}
			if run == len(ops) || run-end > 2*context {
				end = min(end+context, len(ops))
				break
			}
			end = run
		}
		if !header {
			fmt.Fprintf(w, "--- %s\n+++ %s\n", a, b)
			header = true
		}
		var na, nb int
		for _, o := range ops[start:end] {
			if o.kind != '+' {
				na++
			}
			if o.kind != '-' {
				nb++
			}
		}
		fmt.Fprintf(w, "@@ -%s +%s @@\n", hunkRange(ops[start].i, na), hunkRange(ops[start].j, nb))
		for _, o := range ops[start:end] {
			if _, err := fmt.Fprintf(w, "%c%s\n", o.kind, o.text); err != nil {
				return err
			}
		}
		k = end
	}
	return nil
}

// hunkRange is "start,count" as diff -u writes it (1-based; an empty range
// starts at the line before).
func hunkRange(start, count int) string {
	if count == 0 {
		return fmt.Sprintf("%d,0", start)
	}
	if count == 1 {
		return fmt.Sprint(start + 1)
	}
	return fmt.Sprintf("%d,%d", start+1, count)
}

func lines(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(strings.TrimSuffix(s, "\n"), "\n")
}
