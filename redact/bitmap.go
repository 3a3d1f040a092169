package redact

import "math/bits"

// useBitmap makes the validation of AppendRedacted and Event.Check find
// special bytes in strings with a bitmap of the whole document, built
// 64 bytes per word with AVX2 (see specialBitmap), instead of looking at
// each string's bytes eight at a time. Without AVX2 the bitmap costs more
// than it saves; the tests turn it on anyway, to check the portable
// path.
var useBitmap = hasAVX2

// specialBitmap returns bm, grown if needed to len(s)/64+2 words, holding
// the bitmap of the bytes of s that end a run of plain string content:
// bit j%64 of word j/64 is set if s[j] is '"', '\\' or a control
// character or, if high, at least 0x80. Past the end of s, only bit
// len(s) is set, so that a scan for the next set bit always stops; the
// last word is zero, so that any position's next 64 bits can be read
// with bitsFrom (see checker.quickStr).
func specialBitmap(bm []uint64, s string, high bool) []uint64 {
	n := len(s)>>6 + 1
	if cap(bm) < n+1 {
		bm = make([]uint64, n+1, n+1+n/4)
	}
	bm = bm[:n+1]
	fillSpecialBitmap(bm, s, high)
	end := uint(len(s)) & 63
	bm[n-1] = bm[n-1]&(1<<end-1) | 1<<end
	bm[n] = 0
	return bm
}

// fillSpecialBitmapGo is fillSpecialBitmap byte by byte.
func fillSpecialBitmapGo(bm []uint64, s string, high bool) {
	bm = bm[:len(s)>>6+1]
	clear(bm)
	for j := 0; j < len(s); j++ {
		if c := s[j]; c == '"' || c == '\\' || c < 0x20 || high && c >= 0x80 {
			bm[j>>6] |= 1 << (uint(j) & 63)
		}
	}
}

// nextBit returns the position of the first set bit of bm at or after i:
// for a special-byte bitmap (see specialBitmap), the next special byte;
// for a trigger bitmap (see trigBits), the next trigger. Both have a set
// bit at the end of their text, so that the search stops.
func nextBit(bm []uint64, i int) int {
	if m := bitsFrom(bm, i); m != 0 {
		return i + bits.TrailingZeros64(m)
	}
	// bitsFrom covered at least the rest of i's word.
	w := i>>6 + 1
	for bm[w] == 0 {
		w++
	}
	return w<<6 | bits.TrailingZeros64(bm[w])
}
