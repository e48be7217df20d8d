package build

import (
	"encoding/binary"
	"fmt"
	"slices"
)

// DeriveRelocs compares the same program linked at two addresses, b = a shifted by `shift` bytes
// (shift > 0, a multiple of 64 KiB). Segment count, sizes, permissions, entry (b.Entry == a.Entry+shift)
// and VAddrs (b == a+shift) must match. Every difference must be an 8-byte-aligned (relative to VAddr, and
// VAddr itself must be 8-aligned) little-endian 64-bit word with wordB - wordA == shift; each such word is
// returned as a VA in a's address space (sorted ascending). Any other difference (unaligned, other delta,
// differing lengths) is an error naming the segment, the offset and both values, e.g.
// "efirt/build: .rdata+0x1234: word differs by 0x10 (want shift 0x4000000): not a pointer".
func DeriveRelocs(a, b *Program, shift uint64) ([]uint64, error) {
	// A shift that is a multiple of 64 KiB keeps page offsets and the low bits of
	// every address equal, so only whole absolute addresses can change.
	if shift == 0 || shift%0x10000 != 0 {
		return nil, fmt.Errorf("efirt/build: shift %#x is not a positive multiple of 64 KiB", shift)
	}
	if a.Machine != b.Machine {
		return nil, fmt.Errorf("efirt/build: machines differ: %v vs %v", a.Machine, b.Machine)
	}
	if b.Entry-a.Entry != shift {
		return nil, fmt.Errorf("efirt/build: entry %#x vs %#x: want shift %#x", a.Entry, b.Entry, shift)
	}
	if len(a.Segments) != len(b.Segments) {
		return nil, fmt.Errorf("efirt/build: %d segments vs %d", len(a.Segments), len(b.Segments))
	}
	var relocs []uint64
	for i := range a.Segments {
		sa, sb := &a.Segments[i], &b.Segments[i]
		if err := sameShape(sa, sb, shift); err != nil {
			return nil, fmt.Errorf("efirt/build: segment %d (%s): %w", i, sa.Name, err)
		}
		var err error
		relocs, err = diffWords(relocs, sa, sb.Data, shift)
		if err != nil {
			return nil, err
		}
	}
	slices.Sort(relocs)
	return relocs, nil
}

// sameShape checks that sb is sa moved by shift and otherwise laid out identically.
func sameShape(sa, sb *Segment, shift uint64) error {
	switch {
	case sa.Name != sb.Name:
		return fmt.Errorf("name %q vs %q", sa.Name, sb.Name)
	case sa.Read != sb.Read || sa.Write != sb.Write || sa.Exec != sb.Exec:
		return fmt.Errorf("permissions differ")
	case sb.VAddr-sa.VAddr != shift:
		return fmt.Errorf("address %#x vs %#x: want shift %#x", sa.VAddr, sb.VAddr, shift)
	case sa.VAddr%8 != 0:
		return fmt.Errorf("address %#x is not 8-byte aligned", sa.VAddr)
	case len(sa.Data) != len(sb.Data):
		return fmt.Errorf("data size %#x vs %#x", len(sa.Data), len(sb.Data))
	case sa.MemSize != sb.MemSize:
		return fmt.Errorf("memory size %#x vs %#x", sa.MemSize, sb.MemSize)
	case sa.MemSize < uint64(len(sa.Data)):
		return fmt.Errorf("memory size %#x < data size %#x", sa.MemSize, len(sa.Data))
	}
	return nil
}

// diffWords appends to relocs the VA of every word of sa.Data that differs from
// dataB by exactly shift, and fails on any other difference.
func diffWords(relocs []uint64, sa *Segment, dataB []byte, shift uint64) ([]uint64, error) {
	dataA := sa.Data
	n := len(dataA) &^ 7
	for off := 0; off < n; off += 8 {
		wa := binary.LittleEndian.Uint64(dataA[off:])
		wb := binary.LittleEndian.Uint64(dataB[off:])
		if wa == wb {
			continue
		}
		if wb-wa == shift {
			relocs = append(relocs, sa.VAddr+uint64(off))
			continue
		}
		why := "not a pointer"
		if ta, tb := dataA[off:off+8], dataB[off:off+8]; isText(ta) && isText(tb) {
			// Typically the link address itself, from -ldflags recorded in the build info.
			why = fmt.Sprintf("text %q vs %q, not a pointer (build flags recorded in the binary? build with -trimpath)", ta, tb)
		} else if p, ok := unalignedPointer(dataA, dataB, off, shift); ok {
			why = fmt.Sprintf("looks like a pointer at unaligned offset %#x", p)
		}
		return nil, fmt.Errorf("efirt/build: %s+%#x: word %#x vs %#x differs by %#x (want shift %#x): %s",
			sa.Name, off, wa, wb, int64(wb-wa), shift, why)
	}
	// A partial word at the end cannot hold a pointer, so it must not differ at all.
	for off := n; off < len(dataA); off++ {
		if dataA[off] != dataB[off] {
			return nil, fmt.Errorf("efirt/build: %s+%#x: byte %#x vs %#x in partial word at end of data: not a pointer",
				sa.Name, off, dataA[off], dataB[off])
		}
	}
	return relocs, nil
}

// unalignedPointer looks for a misaligned 64-bit word overlapping the differing
// aligned word at off that does differ by shift, only to explain the error better.
func unalignedPointer(dataA, dataB []byte, off int, shift uint64) (int, bool) {
	for p := max(off-7, 0); p < off+8 && p+8 <= len(dataA); p++ {
		if p%8 == 0 {
			continue
		}
		wa := binary.LittleEndian.Uint64(dataA[p:])
		wb := binary.LittleEndian.Uint64(dataB[p:])
		if wb-wa == shift {
			return p, true
		}
	}
	return 0, false
}

func isText(b []byte) bool {
	for _, c := range b {
		if c < ' ' || c > '~' {
			return false
		}
	}
	return true
}

// Base relocation types from the PE format specification.
const (
	relBasedAbsolute = 0  // IMAGE_REL_BASED_ABSOLUTE: skipped, used as padding
	relBasedDir64    = 10 // IMAGE_REL_BASED_DIR64: add the load delta to a 64-bit word
)

// encodeRelocs builds the contents of a .reloc section: one IMAGE_BASE_RELOCATION
// block per 4 KiB page. rvas must be sorted ascending and unique. Without any
// relocations it still emits one empty block for page emptyPage, so that the image
// has a non-empty BASERELOC directory and loaders treat it as relocatable.
func encodeRelocs(rvas []uint32, emptyPage uint32) []byte {
	if len(rvas) == 0 {
		return binary.LittleEndian.AppendUint32(binary.LittleEndian.AppendUint32(nil, emptyPage&^0xfff), 8)
	}
	var out []byte
	for i := 0; i < len(rvas); {
		page := rvas[i] &^ 0xfff
		j := i
		for j < len(rvas) && rvas[j]&^0xfff == page {
			j++
		}
		entries := j - i
		size := 8 + 2*entries
		if size%4 != 0 {
			size += 2 // one ABSOLUTE entry keeps the next block 32-bit aligned
		}
		out = binary.LittleEndian.AppendUint32(out, page)
		out = binary.LittleEndian.AppendUint32(out, uint32(size))
		for _, rva := range rvas[i:j] {
			out = binary.LittleEndian.AppendUint16(out, relBasedDir64<<12|uint16(rva&0xfff))
		}
		if entries%2 != 0 {
			out = binary.LittleEndian.AppendUint16(out, relBasedAbsolute<<12)
		}
		i = j
	}
	return out
}
