package consent

import (
	"syscall"
	"unsafe"
)

// adviseHuge asks the kernel to back the 2 MiB-aligned interior of b with
// transparent huge pages (effective when THP is in "madvise" or "always"
// mode). Random lookups in a large table otherwise spend most of their time
// in TLB misses, which are expensive under virtualization. It must be called
// before b is first written; errors are ignored (it is only advice).
func adviseHuge(b unsafe.Pointer, size uintptr) {
	const huge = 2 << 20
	start := (uintptr(b) + huge - 1) &^ (huge - 1)
	end := (uintptr(b) + size) &^ (huge - 1)
	if end <= start {
		return
	}
	syscall.Syscall(syscall.SYS_MADVISE, start, end-start, 14 /* MADV_HUGEPAGE */)
}
