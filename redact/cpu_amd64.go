//go:build amd64 && !purego

package redact

import "golang.org/x/sys/cpu"

// hasAVX2 selects the assembly kernels: the special-byte bitmap
// (bitmap_amd64.s) and the trigger bitmap (trigger_amd64.s). Tests turn
// it off to compare them with the portable code.
var hasAVX2 = cpu.X86.HasAVX2
