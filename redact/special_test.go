package redact

import (
	"math/rand/v2"
	"strings"
	"testing"
)

// specialRef is specialBlocks byte by byte.
func specialRef(s string, high bool) int {
	n := len(s) &^ 31
	for i := 0; i < n; i++ {
		c := s[i]
		if c == '"' || c == '\\' || c < 0x20 || high && c >= 0x80 {
			return i
		}
	}
	return n
}

// TestSpecialBlocks checks the AVX2 kernel (where the CPU has it) against
// the byte-by-byte definition: every length up to 200, every position of
// one special byte of each kind, and random bytes.
func TestSpecialBlocks(t *testing.T) {
	check := func(s string) {
		t.Helper()
		for _, high := range []bool{false, true} {
			got := specialBlocks(s, high)
			if !hasAVX2 || len(s) < 32 {
				if got != 0 {
					t.Fatalf("specialBlocks(%q, %v) = %d without the fast path, want 0", s, high, got)
				}
				continue
			}
			if want := specialRef(s, high); got != want {
				t.Fatalf("specialBlocks(%q, %v) = %d, want %d", s, high, got, want)
			}
		}
	}
	for n := 0; n <= 200; n++ {
		plain := strings.Repeat("a", n)
		check(plain)
		for p := 0; p < n; p++ {
			for _, c := range []byte{'"', '\\', 0, 0x1f, 0x20, 0x7f, 0x80, 0xff, '!', ']'} {
				b := []byte(plain)
				b[p] = c
				check(string(b))
			}
		}
	}
	r := rand.New(rand.NewPCG(5, 6))
	for range 20000 {
		b := make([]byte, r.IntN(300))
		for i := range b {
			b[i] = byte(0x20 + r.IntN(0x60)) // printable ASCII
			if r.IntN(200) == 0 {
				b[i] = byte(r.IntN(256))
			}
		}
		check(string(b))
	}
	t.Logf("AVX2 fast path: %v", hasAVX2)
}
