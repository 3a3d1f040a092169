//go:build !amd64 || purego

package redact

// hasAVX2 is false off amd64 (and with the purego tag): there is no
// assembly fast path to use.
const hasAVX2 = false

// specialBlocks is the AVX2 fast path of checker.str (see
// special_amd64.go); here the portable loop does all the work.
func specialBlocks(s string, high bool) int { return 0 }
