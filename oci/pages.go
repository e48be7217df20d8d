package oci

import (
	"fmt"
	"sync/atomic"
)

// Allocator hands out memory for blobs. In the loader it is UEFI
// AllocatePages; on the host, HeapAllocator.
type Allocator interface {
	// Alloc returns size bytes of zeroed memory.
	Alloc(size int64) (Pages, error)
}

// Pages is memory from an Allocator. Bytes is exactly the size asked for
// (an implementation may round its own allocation up). After Free, Bytes
// must not be used.
type Pages interface {
	Bytes() []byte
	Free()
}

// HeapAllocator allocates ordinary Go memory and counts what is live, so
// host tools and tests can see that every allocation was freed.
type HeapAllocator struct {
	live   atomic.Int64
	allocs atomic.Int64
	// Limit, when positive, fails allocations that would make more than
	// Limit bytes live (to model a machine's memory).
	Limit int64
}

// Alloc returns size bytes from the Go heap.
func (a *HeapAllocator) Alloc(size int64) (Pages, error) {
	if size < 0 || int64(int(size)) != size {
		return nil, fmt.Errorf("oci: cannot allocate %d bytes", size)
	}
	if n := a.live.Add(size); a.Limit > 0 && n > a.Limit {
		a.live.Add(-size)
		return nil, fmt.Errorf("oci: allocating %d bytes: over the %d-byte limit", size, a.Limit)
	}
	a.allocs.Add(1)
	return &heapPages{a: a, b: make([]byte, size)}, nil
}

// Live is the number of bytes allocated and not yet freed.
func (a *HeapAllocator) Live() int64 { return a.live.Load() }

// Allocs is the number of allocations made so far.
func (a *HeapAllocator) Allocs() int64 { return a.allocs.Load() }

type heapPages struct {
	a     *HeapAllocator
	b     []byte
	freed atomic.Bool
}

func (p *heapPages) Bytes() []byte { return p.b }

// Free is idempotent: teardown paths may reach a buffer twice.
func (p *heapPages) Free() {
	if p.freed.CompareAndSwap(false, true) {
		p.a.live.Add(-int64(len(p.b)))
		p.b = nil
	}
}
