package demo

import "strings"

// markChanges returns after with every span that differs from before
// wrapped in open/close markers. The redaction engine guarantees that bytes
// outside replaced spans are identical, so a token-level longest common
// subsequence recovers the replaced spans exactly enough for display.
func markChanges(before, after, open, close string) string {
	a, b := tokens(before), tokens(after)
	// lcs[i][j] = length of the LCS of a[i:] and b[j:].
	lcs := make([][]int, len(a)+1)
	for i := range lcs {
		lcs[i] = make([]int, len(b)+1)
	}
	for i := len(a) - 1; i >= 0; i-- {
		for j := len(b) - 1; j >= 0; j-- {
			if a[i] == b[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	var out strings.Builder
	changed := false
	flip := func(c bool) {
		if c != changed {
			if c {
				out.WriteString(open)
			} else {
				out.WriteString(close)
			}
			changed = c
		}
	}
	i, j := 0, 0
	for j < len(b) {
		switch {
		case i < len(a) && a[i] == b[j]:
			flip(false)
			out.WriteString(b[j])
			i, j = i+1, j+1
		case i < len(a) && lcs[i+1][j] >= lcs[i][j+1]:
			i++ // a token of before that is gone
		default:
			flip(true)
			out.WriteString(b[j])
			j++
		}
	}
	flip(false)
	return out.String()
}

// tokens splits s into words and single punctuation/space characters, so
// that a replaced value inside a JSON string lines up with its neighbours.
func tokens(s string) []string {
	var out []string
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '"' || c == ' ' || c == ',' || c == ':' || c == '{' || c == '}' || c == '[' || c == ']' || c == '\\' {
			if start < i {
				out = append(out, s[start:i])
			}
			out = append(out, s[i:i+1])
			start = i + 1
		}
	}
	if start < len(s) {
		out = append(out, s[start:])
	}
	return out
}
