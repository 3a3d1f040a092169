//go:build !amd64 || purego

package redact

// fillSpecialBitmap is the portable fillSpecialBitmapGo here; useBitmap
// is off by default (see bitmap.go), so only the tests use it.
func fillSpecialBitmap(bm []uint64, s string, high bool) {
	fillSpecialBitmapGo(bm, s, high)
}

// bitsFrom returns bits i, i+1, ... of bm as bits 0, 1, ... (64 of them,
// read from two words); bm must have a word past that of bit i.
func bitsFrom(bm []uint64, i int) uint64 {
	w, sh := i>>6, uint(i)&63
	return bm[w]>>sh | bm[w+1]<<(64-sh)
}
