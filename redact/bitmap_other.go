//go:build !amd64 || purego

package redact

// fillSpecialBitmap is the portable fillSpecialBitmapGo here; useBitmap
// is off by default (see bitmap.go), so only the tests use it.
func fillSpecialBitmap(bm []uint64, s string, high bool) {
	fillSpecialBitmapGo(bm, s, high)
}
