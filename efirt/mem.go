package efirt

// Memory comes from the firmware's AllocatePages (EfiLoaderData) below
// 64 GiB, the runtime's heapAddrBits. Every allocation is recorded so that
// munmap can return any page range and exit can hand everything back.

const (
	memLimit      = 1 << 36 // heapAddrBits = 36
	maxAllocs     = 2048
	protNone      = 0
	mapFixed      = 0x10
	mapAnonymous  = 0x20
	mapFixedNoRep = 0x100000
	madvDontneed  = 4
)

type allocation struct{ base, pages uintptr }

var (
	allocs   [maxAllocs]allocation
	nAllocs  int
	memPages uintptr // pages currently held, for reports
	memPeak  uintptr
)

func mmap(addr, length, prot, flags, fd uintptr) uintptr {
	if flags&mapAnonymous == 0 {
		return errno(enodev)
	}
	if length == 0 {
		return errno(einval)
	}
	pages := (length + pageSize - 1) / pageSize
	if flags&(mapFixed|mapFixedNoRep) != 0 {
		if addr%pageSize != 0 {
			return errno(einval)
		}
		// The runtime maps over ranges it reserved earlier; a fresh
		// anonymous mapping reads as zero.
		if owned(addr, pages) {
			clear(bytesAt(addr, pages*pageSize))
			return addr
		}
		if base, ok := allocatePages(allocAddress, addr, pages); ok {
			return base
		}
		return errno(enomem)
	}
	// A hint is honoured when the firmware can give exactly that range.
	if addr != 0 && addr%pageSize == 0 && addr+pages*pageSize <= memLimit {
		if base, ok := allocatePages(allocAddress, addr, pages); ok {
			return base
		}
	}
	if base, ok := allocatePages(allocMaxAddress, memLimit-1, pages); ok {
		return base
	}
	return errno(enomem)
}

// allocatePages gets zeroed pages from the firmware and records them.
func allocatePages(kind, addr, pages uintptr) (uintptr, bool) {
	if nAllocs == maxAllocs {
		kprint("efirt: mmap: allocation table full\n")
		return 0, false
	}
	base, ok := fwAllocatePages(kind, addr, pages)
	if !ok {
		return 0, false
	}
	clear(bytesAt(base, pages*pageSize))
	allocs[nAllocs] = allocation{base, pages}
	nAllocs++
	memPages += pages
	if memPages > memPeak {
		memPeak = memPages
	}
	return base, true
}

// owned reports whether every page of the range lies in one recorded
// allocation.
func owned(addr, pages uintptr) bool {
	end := addr + pages*pageSize
	for i := 0; i < nAllocs; i++ {
		a := allocs[i]
		if addr >= a.base && end <= a.base+a.pages*pageSize {
			return true
		}
	}
	return false
}

// munmap frees the pages of [addr, addr+length) that efirt handed out,
// splitting allocations as needed.
func munmap(addr, length uintptr) uintptr {
	if addr%pageSize != 0 || length == 0 {
		return errno(einval)
	}
	end := addr + (length+pageSize-1)/pageSize*pageSize
	for i := 0; i < nAllocs; i++ {
		a := allocs[i]
		aEnd := a.base + a.pages*pageSize
		lo, hi := max(addr, a.base), min(end, aEnd)
		if lo >= hi {
			continue
		}
		fwFreePages(lo, (hi-lo)/pageSize)
		memPages -= (hi - lo) / pageSize
		switch {
		case lo == a.base && hi == aEnd:
			allocs[i] = allocs[nAllocs-1]
			nAllocs--
			i--
		case lo == a.base:
			allocs[i] = allocation{hi, (aEnd - hi) / pageSize}
		case hi == aEnd:
			allocs[i].pages = (lo - a.base) / pageSize
		default:
			if nAllocs == maxAllocs {
				fatal("munmap: allocation table full")
			}
			allocs[i].pages = (lo - a.base) / pageSize
			allocs[nAllocs] = allocation{hi, (aEnd - hi) / pageSize}
			nAllocs++
		}
	}
	return 0
}

// freeAll returns every page to the firmware before the image exits.
func freeAll() {
	for i := 0; i < nAllocs; i++ {
		fwFreePages(allocs[i].base, allocs[i].pages)
	}
	nAllocs = 0
	memPages = 0
}

// madvise honours MADV_DONTNEED as Linux does for private anonymous memory:
// the range reads as zero afterwards. The runtime's scavenger releases free
// heap pages with it and, trusting the zero fill, reuses fully scavenged
// pages without clearing them (go1.26 mheap.initSpan with
// needZeroAfterSysUnused false); stale bytes there would become the
// contents of new objects. Other advice (MADV_FREE, huge-page hints,
// MADV_COLLAPSE) promises nothing about the contents and changes nothing.
func madvise(addr, length, advice uintptr) uintptr {
	if addr%pageSize != 0 {
		return errno(einval)
	}
	if advice != madvDontneed || length == 0 {
		return 0
	}
	end := addr + (length+pageSize-1)/pageSize*pageSize
	for i := 0; i < nAllocs; i++ {
		a := allocs[i]
		lo, hi := max(addr, a.base), min(end, a.base+a.pages*pageSize)
		if lo < hi {
			clear(bytesAt(lo, hi-lo))
		}
	}
	return 0
}
