package manifest

import (
	"unicode"
	"unicode/utf8"
)

// suggest returns the known key closest to key when it is close enough to
// be a likely typo, or "".
func suggest(key string, known []string) string {
	limit := 2
	n := utf8.RuneCountInString(key)
	if n <= 4 {
		limit = 1
	}
	best, bestDist := "", limit+1
	for _, k := range known {
		// Lengths further apart than the limit cannot be close enough.
		if diff := utf8.RuneCountInString(k) - n; diff > limit || -diff > limit {
			continue
		}
		if d := levenshtein(key, k); d < bestDist {
			best, bestDist = k, d
		}
	}
	return best
}

// levenshtein is the edit distance between a and b, in runes and ignoring
// case, counting a swap of two neighbouring characters as one edit
// (optimal string alignment), the commonest typo.
func levenshtein(a, b string) int {
	var bufA, bufB [64]rune
	ra, rb := appendRunes(bufA[:0], a), appendRunes(bufB[:0], b)
	var rows [3][65]int
	var prev2, prev, cur []int
	if len(rb) < 64 {
		prev2, prev, cur = rows[0][:len(rb)+1], rows[1][:len(rb)+1], rows[2][:len(rb)+1]
	} else {
		prev2, prev, cur = make([]int, len(rb)+1), make([]int, len(rb)+1), make([]int, len(rb)+1)
	}
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(rb)]
}

func appendRunes(buf []rune, s string) []rune {
	for _, r := range s {
		buf = append(buf, unicode.ToLower(r))
	}
	return buf
}
