package devmodel

import (
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/ociboot/ociboot/nic/virtio"
)

// DefaultBase is the bus address of a Memory's first byte. It lies above
// 4 GiB so that a driver writing only the low half of a 64-bit address is
// caught.
const DefaultBase = 0x1_0000_0000

// poison fills fresh allocations: firmware pages are not zeroed either, and
// a driver that forgets to initialise ring memory should fail in tests.
const poison = 0xa5

// Memory is a simulated bus address space: one arena of Go memory handed
// out as virtio.Buffers, which the device model reaches by bus address. It
// implements virtio.DMA and is safe for concurrent use.
type Memory struct {
	mu    sync.Mutex
	base  uint64
	data  []byte
	free  []span // sorted by off, coalesced
	live  []*buffer
	bytes int
}

type span struct{ off, size int }

type buffer struct {
	m         *Memory
	off, size int
	freed     bool
}

var _ virtio.DMA = (*Memory)(nil)

// NewMemory makes an arena of size bytes at DefaultBase.
func NewMemory(size int) *Memory {
	return &Memory{base: DefaultBase, data: make([]byte, size), free: []span{{0, size}}}
}

// Alloc implements virtio.DMA: first fit, aligned in bus address space,
// contents poisoned.
func (m *Memory) Alloc(size, align int) (virtio.Buffer, error) {
	if size <= 0 || align <= 0 || align&(align-1) != 0 {
		return nil, fmt.Errorf("devmodel: bad allocation of %d bytes aligned %d", size, align)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for i, s := range m.free {
		addr := m.base + uint64(s.off)
		start := int((addr+uint64(align)-1)&^uint64(align-1)-m.base) - s.off
		if start+size > s.size {
			continue
		}
		b := &buffer{m: m, off: s.off + start, size: size}
		// Split the span into the alignment gap before and the rest after.
		var keep []span
		if start > 0 {
			keep = append(keep, span{s.off, start})
		}
		if rest := s.size - start - size; rest > 0 {
			keep = append(keep, span{b.off + size, rest})
		}
		m.free = slices.Replace(m.free, i, i+1, keep...)
		i, _ = slices.BinarySearchFunc(m.live, b.off, func(x *buffer, off int) int { return x.off - off })
		m.live = slices.Insert(m.live, i, b)
		m.bytes += size
		fresh := m.data[b.off : b.off+size]
		for j := range fresh {
			fresh[j] = poison
		}
		return b, nil
	}
	return nil, fmt.Errorf("devmodel: out of DMA memory for %d bytes aligned %d (%d of %d in use)", size, align, m.bytes, len(m.data))
}

// Allocated is the number of bytes currently allocated.
func (m *Memory) Allocated() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.bytes
}

// Buffers is the number of live allocations.
func (m *Memory) Buffers() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.live)
}

// ErrBadAddress is returned by Slice for a range outside every live
// allocation: the device model treats it as a driver bug.
var ErrBadAddress = errors.New("devmodel: DMA outside allocated memory")

// Slice is the device's view of n bytes at bus address addr. The range must
// lie inside one live allocation, so a driver handing the device a stale or
// wild address is caught instead of silently corrupting the arena.
func (m *Memory) Slice(addr uint64, n int) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if addr < m.base || n < 0 {
		return nil, fmt.Errorf("%w: %#x+%d", ErrBadAddress, addr, n)
	}
	off := addr - m.base
	i, found := slices.BinarySearchFunc(m.live, off, func(x *buffer, off uint64) int {
		switch {
		case uint64(x.off) > off:
			return 1
		case uint64(x.off+x.size) <= off:
			return -1
		}
		return 0
	})
	if !found && n == 0 && i > 0 && uint64(m.live[i-1].off+m.live[i-1].size) == off {
		found, i = true, i-1 // empty range at the very end of a buffer
	}
	if !found || off+uint64(n) > uint64(m.live[i].off+m.live[i].size) {
		return nil, fmt.Errorf("%w: %#x+%d", ErrBadAddress, addr, n)
	}
	return m.data[off : off+uint64(n) : off+uint64(n)], nil
}

func (b *buffer) Bytes() []byte {
	if b.freed {
		return nil // use after free shows up as an index panic in tests
	}
	return b.m.data[b.off : b.off+b.size : b.off+b.size]
}

func (b *buffer) Addr() uint64 { return b.m.base + uint64(b.off) }

// Free returns the buffer; freeing twice panics, as it is a driver bug.
func (b *buffer) Free() {
	m := b.m
	m.mu.Lock()
	defer m.mu.Unlock()
	if b.freed {
		panic(fmt.Sprintf("devmodel: DMA buffer %#x freed twice", b.Addr()))
	}
	b.freed = true
	i := slices.Index(m.live, b)
	m.live = slices.Delete(m.live, i, i+1)
	m.bytes -= b.size
	s := span{b.off, b.size}
	j, _ := slices.BinarySearchFunc(m.free, s.off, func(x span, off int) int { return x.off - off })
	m.free = slices.Insert(m.free, j, s)
	// Coalesce with the neighbours so the arena does not fragment over
	// many Open/Close cycles.
	if j+1 < len(m.free) && m.free[j].off+m.free[j].size == m.free[j+1].off {
		m.free[j].size += m.free[j+1].size
		m.free = slices.Delete(m.free, j+1, j+2)
	}
	if j > 0 && m.free[j-1].off+m.free[j-1].size == m.free[j].off {
		m.free[j-1].size += m.free[j].size
		m.free = slices.Delete(m.free, j, j+1)
	}
}
