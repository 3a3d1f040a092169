//go:build !amd64 || purego

package redact

// nextTriggerScalar is nextTrigger, which has no AVX2 path here.
func nextTriggerScalar(tab *[256]uint64, t []byte, i int) int { return nextTrigger(tab, t, i) }
