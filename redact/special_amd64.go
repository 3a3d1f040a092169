//go:build amd64 && !purego

package redact

import (
	"unsafe"

	"golang.org/x/sys/cpu"
)

var hasAVX2 = cpu.X86.HasAVX2

// specialBlocksAVX2 is in special_amd64.s.
//
//go:noescape
func specialBlocksAVX2(p *byte, n int, high bool) int

// specialBlocks returns the offset of the first byte of s that is '"',
// '\\' or a control character or, if high, at least 0x80, looking only at
// the whole 32-byte blocks of s; if there is none, the length of those
// blocks. It looks at nothing (returns 0) without AVX2: the caller's
// portable loop then does all the work.
func specialBlocks(s string, high bool) int {
	if !hasAVX2 || len(s) < 32 {
		return 0
	}
	return specialBlocksAVX2(unsafe.StringData(s), len(s), high)
}
