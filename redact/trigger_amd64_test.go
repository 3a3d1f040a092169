//go:build amd64 && !purego

package redact

// nextTriggerScalar is nextTrigger without its AVX2 path.
func nextTriggerScalar(tab *[256]uint64, t []byte, i int) int {
	defer func(v bool) { hasAVX2 = v }(hasAVX2)
	hasAVX2 = false
	return nextTrigger(tab, t, i)
}
