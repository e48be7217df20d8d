package devmodel

import (
	"errors"
	"testing"
)

func TestMemoryAlloc(t *testing.T) {
	m := NewMemory(1 << 16)
	a, err := m.Alloc(100, 16)
	if err != nil {
		t.Fatal(err)
	}
	b, err := m.Alloc(10, 4096)
	if err != nil {
		t.Fatal(err)
	}
	if a.Addr()%16 != 0 || b.Addr()%4096 != 0 {
		t.Errorf("addresses %#x, %#x not aligned to 16 and 4096", a.Addr(), b.Addr())
	}
	if a.Addr()>>32 == 0 {
		t.Errorf("address %#x below 4 GiB", a.Addr())
	}
	if len(a.Bytes()) != 100 || cap(a.Bytes()) != 100 || len(b.Bytes()) != 10 {
		t.Errorf("lengths %d (cap %d), %d", len(a.Bytes()), cap(a.Bytes()), len(b.Bytes()))
	}
	for i, v := range a.Bytes() {
		if v != poison {
			t.Fatalf("fresh byte %d = %#x, want poison", i, v)
		}
	}
	if m.Allocated() != 110 || m.Buffers() != 2 {
		t.Errorf("Allocated %d in %d buffers, want 110 in 2", m.Allocated(), m.Buffers())
	}
	// The device sees what the CPU wrote, through the bus address.
	a.Bytes()[42] = 7
	s, err := m.Slice(a.Addr()+42, 58)
	if err != nil || s[0] != 7 || len(s) != 58 {
		t.Fatalf("Slice = %v, %v", s[:1], err)
	}
	if _, err := m.Slice(a.Addr()+42, 59); !errors.Is(err, ErrBadAddress) {
		t.Errorf("Slice past the end of a buffer: %v", err)
	}
	if _, err := m.Slice(a.Addr()+100, 0); err != nil {
		t.Errorf("empty Slice at the end of a buffer: %v", err)
	}
	if _, err := m.Slice(DefaultBase-1, 1); !errors.Is(err, ErrBadAddress) {
		t.Errorf("Slice below the arena: %v", err)
	}
	if _, err := m.Slice(b.Addr()-1, 1); !errors.Is(err, ErrBadAddress) {
		t.Errorf("Slice in an alignment gap: %v", err)
	}
	a.Free()
	if a.Bytes() != nil {
		t.Error("Bytes after Free is not nil")
	}
	if _, err := m.Slice(a.Addr(), 1); !errors.Is(err, ErrBadAddress) {
		t.Errorf("Slice of freed memory: %v", err)
	}
	b.Free()
	if m.Allocated() != 0 || m.Buffers() != 0 {
		t.Errorf("after freeing all: %d bytes in %d buffers", m.Allocated(), m.Buffers())
	}
	// Freed space coalesces: the whole arena is one block again.
	if c, err := m.Alloc(1<<16, 1); err != nil {
		t.Errorf("whole-arena allocation after frees: %v", err)
	} else {
		c.Free()
	}
}

func TestMemoryErrors(t *testing.T) {
	m := NewMemory(4096)
	for _, tc := range []struct{ size, align int }{{0, 1}, {-1, 1}, {16, 0}, {16, 3}, {8192, 1}} {
		if _, err := m.Alloc(tc.size, tc.align); err == nil {
			t.Errorf("Alloc(%d, %d) succeeded", tc.size, tc.align)
		}
	}
	b, _ := m.Alloc(16, 1)
	b.Free()
	defer func() {
		if recover() == nil {
			t.Error("double Free did not panic")
		}
	}()
	b.Free()
}

func TestMemoryChurn(t *testing.T) {
	m := NewMemory(8 << 20)
	var live []interface{ Free() }
	for i := range 2000 {
		b, err := m.Alloc(1+i*37%5000, 1<<(i%7))
		if err != nil {
			t.Fatalf("allocation %d: %v", i, err)
		}
		live = append(live, b)
		if i%3 == 0 {
			live[i/3].Free()
			live[i/3] = nil
		}
	}
	for _, b := range live {
		if b != nil {
			b.Free()
		}
	}
	if m.Allocated() != 0 || len(m.free) != 1 {
		t.Errorf("after churn: %d bytes allocated, %d free spans", m.Allocated(), len(m.free))
	}
}
