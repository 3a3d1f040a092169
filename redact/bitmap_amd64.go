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

// bitsFrom returns bits i, i+1, ... of bm as bits 0, 1, ...: at least the
// 57 of them that one unaligned eight-byte read holds (64 - i%8), the
// rest zero. (The words are little-endian in memory, so byte k of bm holds
// bits 8k to 8k+7.) bm must have a word past that of bit i, as the
// special-byte and trigger bitmaps do.
func bitsFrom(bm []uint64, i int) uint64 {
	_ = bm[i>>6+1] // the eight bytes read are in this word and the one before
	return *(*uint64)(unsafe.Add(unsafe.Pointer(unsafe.SliceData(bm)), i>>3)) >> (uint(i) & 7)
}
