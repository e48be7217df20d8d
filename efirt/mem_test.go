package efirt

import (
	"testing"
	"unsafe"
)

// The runtime reuses pages it released with MADV_DONTNEED without clearing
// them, so they must read as zero afterwards, as on Linux.
func TestMadviseDontneedZeroes(t *testing.T) {
	buf := make([]byte, 4*pageSize)
	base := (uintptr(unsafe.Pointer(&buf[0])) + pageSize - 1) &^ (pageSize - 1)
	mem := bytesAt(base, 3*pageSize) // efirt holds the first two pages
	saved, savedN := allocs[0], nAllocs
	defer func() { allocs[0], nAllocs = saved, savedN }()
	allocs[0], nAllocs = allocation{base, 2}, 1

	for i := range mem {
		mem[i] = 0xa5
	}
	if r := madvise(base, 2*pageSize, 15); r != 0 || mem[0] != 0xa5 { // MADV_NOHUGEPAGE
		t.Fatalf("other advice: result %d, first byte %#x; want 0 and the contents kept", int(r), mem[0])
	}
	// Only pages efirt holds are cleared: the third page is not its own.
	if r := madvise(base+pageSize, 2*pageSize, madvDontneed); r != 0 {
		t.Fatalf("MADV_DONTNEED returned %d", int(r))
	}
	for i, b := range mem {
		if want := byte(0xa5); i >= pageSize && i < 2*pageSize {
			want = 0
			if b != want {
				t.Fatalf("byte %d is %#x after MADV_DONTNEED, want 0", i, b)
			}
		} else if b != want {
			t.Fatalf("byte %d outside the range is %#x, want %#x", i, b, want)
		}
	}
	if r := madvise(base+1, pageSize, madvDontneed); r != errno(einval) {
		t.Fatalf("unaligned MADV_DONTNEED returned %d, want EINVAL", int(r))
	}
}
