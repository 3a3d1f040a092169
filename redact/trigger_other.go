//go:build !amd64 || purego

package redact

// trigKern is the data of the AVX2 path of nextTrigger (see
// trigger_amd64.go); here there is none.
type trigKern struct{}

// trigKernel returns nil: nextTrigger always takes the scalar loop.
func trigKernel(tab *[256]uint64) *trigKern { return nil }

// trigFillAVX2 is never called: trigKernel returns nil.
func trigFillAVX2(k *trigKern, p *byte, n int, trig, sec *uint64) { panic("unreachable") }
