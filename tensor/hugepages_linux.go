//go:build linux

package tensor

import (
	"runtime"
	"syscall"
	"unsafe"
)

const (
	hugePageBytes = 2 << 20
	madvHugepage  = 14 // MADV_HUGEPAGE
	madvCollapse  = 25 // MADV_COLLAPSE (Linux 6.1)
)

// AdviseHugePages asks Linux to back the memory of s with 2 MiB transparent huge pages, for
// slices that decoding streams through every token (weights, KV caches). Reading 60 MB per
// token through 4 KiB pages costs a TLB miss every 4 KiB and restarts the hardware
// prefetchers' page-bounded streams; Whisper tiny decoded 10–15% faster with its decoder
// weights on huge pages (1.93 against 2.17 and 1.73 against 2.06 ms per token in two
// interleaved runs; 2-core EPYC VM, THP in "madvise" mode, the default of many
// distributions). Its KV caches (a few MiB each, read as 192 KiB runs) measured no change.
//
// The advice covers the 2 MiB-aligned blocks that overlap s, so up to 2 MiB on either side
// (other Go heap memory) goes along. With collapse set, memory already in use is also moved
// onto huge pages now (MADV_COLLAPSE: a copy, ~3 ms per MiB); otherwise only pages faulted in
// later are. Advice is best effort: errors (old kernels, THP off) are ignored, and other
// systems have a no-op.
func AdviseHugePages[E any](s []E, collapse bool) {
	if len(s) == 0 {
		return
	}
	var e E
	p := uintptr(unsafe.Pointer(unsafe.SliceData(s)))
	lo := p &^ (hugePageBytes - 1)
	hi := (p + uintptr(len(s))*unsafe.Sizeof(e) + hugePageBytes - 1) &^ (hugePageBytes - 1)
	syscall.Syscall(syscall.SYS_MADVISE, lo, hi-lo, madvHugepage)
	if collapse {
		syscall.Syscall(syscall.SYS_MADVISE, lo, hi-lo, madvCollapse)
	}
	runtime.KeepAlive(s)
}
