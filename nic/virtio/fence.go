package virtio

import "sync/atomic"

var fenceWord uint32

// fence orders every memory access before it against every access after it,
// as the device sees them. The device is another agent (a host thread or a
// bus master), so descriptors must be visible before the avail index that
// publishes them, and the index before used.flags is read; on arm64,
// riscv64 and loong64 that takes a hardware barrier, and the store-load
// case takes one even on amd64. Go has no standalone fence, but its atomics
// are sequentially consistent: a store (release: earlier accesses stay
// before it) followed by a load (acquire: later accesses stay after it) of
// a private word cannot be reordered, so the pair is a full barrier on
// every port (XCHG on amd64; STLR then LDAR on arm64, also without LSE).
// Ring fields themselves stay plain little-endian accesses: only this
// goroutine touches them on the CPU side.
func fence() {
	atomic.StoreUint32(&fenceWord, 0)
	atomic.LoadUint32(&fenceWord)
}
