//go:build !linux

package consent

import "unsafe"

func adviseHuge(b unsafe.Pointer, size uintptr) {}
