package build

import (
	"bytes"
	"debug/elf"
	"debug/pe"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
)

// PEOptions describes the image to write.
type PEOptions struct {
	Machine   uint16 // IMAGE_FILE_MACHINE_AMD64 0x8664, ARM64 0xaa64, RISCV64 0x5064, LOONGARCH64 0x6264
	ImageBase uint64 // must be 64 KiB aligned and <= the lowest segment VAddr - 0x1000 (room for headers)
	Subsystem uint16 // 10 = EFI application
}

const (
	sectionAlign = 0x1000
	fileAlign    = 0x200
	peHeaderOff  = 0x40 // e_lfanew: the PE signature follows the bare DOS header
	dosLfanewOff = 0x3c
	optHdrSize   = 240 // binary.Size(pe.OptionalHeader64{})
	secHdrSize   = 40  // binary.Size(pe.SectionHeader32{})
)

// peMachines maps the ELF machines Go can build for UEFI to their PE machine
// types, to catch a PEOptions.Machine that does not match the program.
var peMachines = map[elf.Machine]uint16{
	elf.EM_X86_64:    pe.IMAGE_FILE_MACHINE_AMD64,
	elf.EM_AARCH64:   pe.IMAGE_FILE_MACHINE_ARM64,
	elf.EM_RISCV:     pe.IMAGE_FILE_MACHINE_RISCV64,
	elf.EM_LOONGARCH: pe.IMAGE_FILE_MACHINE_LOONGARCH64,
}

// WritePE writes prog as a PE32+ image to w: DOS stub header with e_lfanew, "PE\0\0", COFF file header
// (EXECUTABLE_IMAGE|LARGE_ADDRESS_AWARE, no COFF symbols), PE32+ optional header (magic 0x20b,
// SectionAlignment 0x1000, FileAlignment 0x200, SizeOfImage/SizeOfHeaders/SizeOfCode/SizeOfInitializedData/
// SizeOfUninitializedData/BaseOfCode filled correctly, DllCharacteristics DYNAMIC_BASE|NX_COMPAT,
// 16 data directories with BASERELOC pointing at .reloc; stack/heap reserve values sane), one section
// per Segment with RVA = VAddr - ImageBase (segments' VAddrs must be 4 KiB aligned — if a segment's VAddr
// is not page aligned, error), VirtualSize = MemSize, raw data padded to FileAlignment, characteristics
// from permissions (CNT_CODE|MEM_EXECUTE|MEM_READ for code; CNT_INITIALIZED_DATA|MEM_READ[|MEM_WRITE]
// for data), then a ".reloc" section (CNT_INITIALIZED_DATA|MEM_READ|MEM_DISCARDABLE) holding the
// IMAGE_BASE_RELOCATION blocks for relocs (VAs in prog's address space): one block per 4 KiB page, entries
// type IMAGE_REL_BASED_DIR64 (10), each block padded to a multiple of 4 bytes with an
// IMAGE_REL_BASED_ABSOLUTE (0) entry. AddressOfEntryPoint = prog.Entry - ImageBase. Checksum may be 0.
// Every reloc VA must fall inside an initialised part (Data) of some segment: error otherwise.
//
// SizeOfCode and SizeOfInitializedData sum the (file-aligned) raw sizes of the code and
// initialised-data sections. A segment with no initialised bytes at all becomes an
// uninitialised-data section and counts, file-aligned, towards SizeOfUninitializedData;
// the zero-filled tail of a segment that has data does not, as it is not a section of its own.
func WritePE(w io.Writer, prog *Program, relocs []uint64, opt PEOptions) error {
	img, err := layoutPE(prog, relocs, opt)
	if err != nil {
		return fmt.Errorf("efirt/build: writing PE: %w", err)
	}
	if err := img.write(w); err != nil {
		return fmt.Errorf("efirt/build: writing PE: %w", err)
	}
	return nil
}

// peImage is a fully laid out image, ready to be written.
type peImage struct {
	file     pe.FileHeader
	opt      pe.OptionalHeader64
	sections []pe.SectionHeader32
	contents [][]byte // raw data of each section, unpadded
}

func layoutPE(prog *Program, relocs []uint64, opt PEOptions) (*peImage, error) {
	if opt.Machine == 0 {
		return nil, errors.New("no machine type")
	}
	if m, ok := peMachines[prog.Machine]; ok && m != opt.Machine {
		return nil, fmt.Errorf("machine %#x does not match ELF machine %v", opt.Machine, prog.Machine)
	}
	if opt.Subsystem == 0 {
		return nil, errors.New("no subsystem")
	}
	if opt.ImageBase%0x10000 != 0 {
		return nil, fmt.Errorf("image base %#x is not 64 KiB aligned", opt.ImageBase)
	}
	if len(prog.Segments) == 0 {
		return nil, errors.New("no segments")
	}
	segs := slices.Clone(prog.Segments)
	slices.SortStableFunc(segs, func(a, b Segment) int {
		switch {
		case a.VAddr < b.VAddr:
			return -1
		case a.VAddr > b.VAddr:
			return 1
		}
		return 0
	})

	img := &peImage{}
	// Sections are placed in address order; the image's memory end so far, as an RVA.
	// The headers take the first page, so sections may not start below it.
	var end uint64 = sectionAlign
	for i, s := range segs {
		if len(s.Name) == 0 || len(s.Name) > 8 {
			return nil, fmt.Errorf("segment %q at %#x: name must be 1 to 8 bytes", s.Name, s.VAddr)
		}
		if s.VAddr%sectionAlign != 0 {
			return nil, fmt.Errorf("segment %s at %#x is not 4 KiB aligned", s.Name, s.VAddr)
		}
		if s.MemSize < uint64(len(s.Data)) || s.MemSize == 0 || s.MemSize > 1<<32 {
			return nil, fmt.Errorf("segment %s at %#x: bad memory size %#x for %#x data bytes", s.Name, s.VAddr, s.MemSize, len(s.Data))
		}
		if s.Exec && s.Write {
			return nil, fmt.Errorf("segment %s at %#x is both writable and executable", s.Name, s.VAddr)
		}
		if s.VAddr < opt.ImageBase || s.VAddr-opt.ImageBase < end {
			if i == 0 {
				return nil, fmt.Errorf("segment %s at %#x leaves no room for headers above image base %#x", s.Name, s.VAddr, opt.ImageBase)
			}
			return nil, fmt.Errorf("segment %s at %#x overlaps the previous segment", s.Name, s.VAddr)
		}
		rva := s.VAddr - opt.ImageBase
		end = alignUp(rva+s.MemSize, sectionAlign)
		if end > 1<<32-sectionAlign {
			return nil, fmt.Errorf("segment %s at %#x: image larger than 4 GiB", s.Name, s.VAddr)
		}
		h := pe.SectionHeader32{
			VirtualSize:    uint32(s.MemSize),
			VirtualAddress: uint32(rva),
		}
		copy(h.Name[:], s.Name)
		switch {
		case s.Exec:
			h.Characteristics = pe.IMAGE_SCN_CNT_CODE | pe.IMAGE_SCN_MEM_EXECUTE | pe.IMAGE_SCN_MEM_READ
		case len(s.Data) == 0:
			h.Characteristics = pe.IMAGE_SCN_CNT_UNINITIALIZED_DATA | pe.IMAGE_SCN_MEM_READ
		default:
			h.Characteristics = pe.IMAGE_SCN_CNT_INITIALIZED_DATA | pe.IMAGE_SCN_MEM_READ
		}
		if s.Write {
			h.Characteristics |= pe.IMAGE_SCN_MEM_WRITE
		}
		img.sections = append(img.sections, h)
		img.contents = append(img.contents, s.Data)
	}

	entry, err := entryRVA(segs, prog.Entry, opt.ImageBase)
	if err != nil {
		return nil, err
	}
	rvas, err := relocRVAs(segs, relocs, opt.ImageBase)
	if err != nil {
		return nil, err
	}
	relocData := encodeRelocs(rvas, img.sections[0].VirtualAddress)
	relocRVA := uint32(end)
	end = alignUp(end+uint64(len(relocData)), sectionAlign)
	if end > 1<<32-sectionAlign {
		return nil, errors.New("image larger than 4 GiB")
	}
	reloc := pe.SectionHeader32{
		VirtualSize:     uint32(len(relocData)),
		VirtualAddress:  relocRVA,
		Characteristics: pe.IMAGE_SCN_CNT_INITIALIZED_DATA | pe.IMAGE_SCN_MEM_READ | pe.IMAGE_SCN_MEM_DISCARDABLE,
	}
	copy(reloc.Name[:], ".reloc")
	img.sections = append(img.sections, reloc)
	img.contents = append(img.contents, relocData)

	headers := uint64(peHeaderOff + 4 + binary.Size(pe.FileHeader{}) + optHdrSize + secHdrSize*len(img.sections))
	sizeOfHeaders := alignUp(headers, fileAlign)
	if sizeOfHeaders > uint64(img.sections[0].VirtualAddress) {
		return nil, fmt.Errorf("%d sections: headers (%#x bytes) do not fit below the first section", len(img.sections), sizeOfHeaders)
	}

	// Raw data follows the headers in section order.
	off := sizeOfHeaders
	var sizeCode, sizeData, sizeBSS uint64
	baseOfCode := uint32(0)
	for i := range img.sections {
		h := &img.sections[i]
		n := uint64(len(img.contents[i]))
		raw := alignUp(n, fileAlign)
		switch {
		case h.Characteristics&pe.IMAGE_SCN_CNT_CODE != 0:
			sizeCode += raw
			if baseOfCode == 0 {
				baseOfCode = h.VirtualAddress
			}
		case h.Characteristics&pe.IMAGE_SCN_CNT_UNINITIALIZED_DATA != 0:
			sizeBSS += alignUp(uint64(h.VirtualSize), fileAlign)
		default:
			sizeData += raw
		}
		if n == 0 {
			continue // PointerToRawData must be 0 for sections without file data
		}
		h.PointerToRawData = uint32(off)
		h.SizeOfRawData = uint32(raw)
		off += raw
		if off > 1<<32-1 {
			return nil, errors.New("file larger than 4 GiB")
		}
	}
	if sizeCode > 1<<32-1 || sizeData > 1<<32-1 || sizeBSS > 1<<32-1 {
		return nil, errors.New("section sizes overflow the optional header")
	}

	img.file = pe.FileHeader{
		Machine:              opt.Machine,
		NumberOfSections:     uint16(len(img.sections)),
		SizeOfOptionalHeader: optHdrSize,
		Characteristics:      pe.IMAGE_FILE_EXECUTABLE_IMAGE | pe.IMAGE_FILE_LARGE_ADDRESS_AWARE,
	}
	img.opt = pe.OptionalHeader64{
		Magic:                   0x20b, // PE32+
		SizeOfCode:              uint32(sizeCode),
		SizeOfInitializedData:   uint32(sizeData),
		SizeOfUninitializedData: uint32(sizeBSS),
		AddressOfEntryPoint:     entry,
		BaseOfCode:              baseOfCode,
		ImageBase:               opt.ImageBase,
		SectionAlignment:        sectionAlign,
		FileAlignment:           fileAlign,
		SizeOfImage:             uint32(end),
		SizeOfHeaders:           uint32(sizeOfHeaders),
		Subsystem:               opt.Subsystem,
		DllCharacteristics:      pe.IMAGE_DLLCHARACTERISTICS_DYNAMIC_BASE | pe.IMAGE_DLLCHARACTERISTICS_NX_COMPAT,
		// Firmware loaders ignore these; the values are the usual defaults of PE linkers.
		SizeOfStackReserve:  0x100000,
		SizeOfStackCommit:   0x1000,
		SizeOfHeapReserve:   0x100000,
		SizeOfHeapCommit:    0x1000,
		NumberOfRvaAndSizes: 16,
	}
	img.opt.DataDirectory[pe.IMAGE_DIRECTORY_ENTRY_BASERELOC] = pe.DataDirectory{
		VirtualAddress: relocRVA,
		Size:           uint32(len(relocData)),
	}
	return img, nil
}

// entryRVA checks that the entry point lies in the initialised part of a code segment.
func entryRVA(segs []Segment, entry, base uint64) (uint32, error) {
	for _, s := range segs {
		if s.Exec && entry >= s.VAddr && entry-s.VAddr < uint64(len(s.Data)) {
			return uint32(entry - base), nil
		}
	}
	return 0, fmt.Errorf("entry point %#x is not inside the code of any segment", entry)
}

// relocRVAs turns reloc VAs into sorted RVAs, checking that each 8-byte word lies
// within some segment's initialised data: a fixup anywhere else would patch bytes
// the image does not carry, which can only be a bug in the caller.
func relocRVAs(segs []Segment, relocs []uint64, base uint64) ([]uint32, error) {
	sorted := slices.Clone(relocs)
	slices.Sort(sorted)
	rvas := make([]uint32, 0, len(sorted))
	i := 0 // segments are sorted too, so one pass suffices
	for k, va := range sorted {
		if k > 0 && va == sorted[k-1] {
			return nil, fmt.Errorf("relocation %#x listed twice", va)
		}
		for i < len(segs) && va >= segs[i].VAddr+uint64(len(segs[i].Data)) {
			i++
		}
		if i == len(segs) || va < segs[i].VAddr || va-segs[i].VAddr > uint64(len(segs[i].Data))-8 || len(segs[i].Data) < 8 {
			return nil, fmt.Errorf("relocation %#x is not inside the initialised data of a segment", va)
		}
		rvas = append(rvas, uint32(va-base))
	}
	return rvas, nil
}

func (img *peImage) write(w io.Writer) error {
	var hdr bytes.Buffer
	hdr.Grow(int(img.opt.SizeOfHeaders))
	var dos [peHeaderOff]byte
	copy(dos[:], "MZ")
	binary.LittleEndian.PutUint32(dos[dosLfanewOff:], peHeaderOff)
	hdr.Write(dos[:])
	hdr.WriteString("PE\x00\x00")
	// Writes to a bytes.Buffer cannot fail, and the structs are all fixed-size.
	binary.Write(&hdr, binary.LittleEndian, &img.file)
	binary.Write(&hdr, binary.LittleEndian, &img.opt)
	for i := range img.sections {
		binary.Write(&hdr, binary.LittleEndian, &img.sections[i])
	}
	hdr.Write(make([]byte, int(img.opt.SizeOfHeaders)-hdr.Len()))
	if _, err := w.Write(hdr.Bytes()); err != nil {
		return err
	}
	for i, h := range img.sections {
		data := img.contents[i]
		if len(data) == 0 {
			continue
		}
		if _, err := w.Write(data); err != nil {
			return err
		}
		if _, err := w.Write(make([]byte, int(h.SizeOfRawData)-len(data))); err != nil {
			return err
		}
	}
	return nil
}

func alignUp(n, align uint64) uint64 {
	return (n + align - 1) &^ (align - 1)
}
