//go:build amd64 && !purego

package redact

import "unsafe"

// specialBitmapAVX2 is in bitmap_amd64.s.
//
//go:noescape
func specialBitmapAVX2(p *byte, n int, tail *byte, dst *uint64, high bool)

// fillSpecialBitmap writes the special-byte bitmap of s (see
// specialBitmap) to bm[:len(s)/64+1]; the bits of the last word past
// len(s) are left for the caller to clear.
func fillSpecialBitmap(bm []uint64, s string, high bool) {
	if !hasAVX2 {
		fillSpecialBitmapGo(bm, s, high)
		return
	}
	_ = bm[len(s)>>6]
	// The last, partial block is read from a copy (zero bytes past the
	// end: the caller clears their bits).
	var tail [64]byte
	copy(tail[:], s[len(s)&^63:])
	specialBitmapAVX2(unsafe.StringData(s), len(s), &tail[0], unsafe.SliceData(bm), high)
}
