package build

import (
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"slices"
)

// Segment is one loadable piece of a linked program as it lies in memory at its link address.
type Segment struct {
	Name    string // e.g. ".text", ".rdata", ".data" (used as the PE section name, max 8 bytes)
	VAddr   uint64 // link-time virtual address
	Data    []byte // initialised bytes (file contents)
	MemSize uint64 // >= len(Data); the rest is zero-filled (bss)

	Read, Write, Exec bool
}

// Program is a linked ELF executable reduced to what a PE image needs.
type Program struct {
	Machine  elf.Machine
	Entry    uint64
	Segments []Segment
}

// ReadELF loads the PT_LOAD segments of a static, non-PIE ELF64 executable (as the Go linker writes for
// GOOS=linux with -ldflags=-T=ADDR). One Segment per PT_LOAD program header, named by permission:
// R+X -> ".text", R only -> ".rdata", R+W -> ".data". Segments must not overlap; error otherwise.
//
// The Go linker maps the ELF file header, the program and section header tables and the build-ID
// notes into the first PT_LOAD, in the page below .text. That is file metadata, not program data:
// nothing in a Go program refers to it, and it cannot be carried into a PE image anyway (the build
// IDs are hashes that differ between two links, and the headers hold link addresses). So each
// segment is trimmed to start at the first allocated, non-note section inside it; a segment holding
// nothing else is dropped. With -T=0x1011000 the code segment therefore starts at 0x1011000, leaving
// the page at 0x1010000 free for the PE headers.
func ReadELF(path string) (*Program, error) {
	f, err := elf.Open(path)
	if err != nil {
		return nil, fmt.Errorf("efirt/build: reading ELF: %w", err)
	}
	defer f.Close()
	prog, err := readELF(f, path)
	if err != nil {
		return nil, fmt.Errorf("efirt/build: %s: %w", path, err)
	}
	return prog, nil
}

func readELF(f *elf.File, path string) (*Program, error) {
	if f.Class != elf.ELFCLASS64 || f.Data != elf.ELFDATA2LSB {
		return nil, fmt.Errorf("not a little-endian ELF64 file (%v, %v)", f.Class, f.Data)
	}
	if f.Type != elf.ET_EXEC {
		return nil, fmt.Errorf("ELF type is %v, want %v (static, non-PIE executable)", f.Type, elf.ET_EXEC)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	// Without section headers the metadata in front of .text could not be told apart from code.
	// The Go linker always writes them, even with -s.
	if len(f.Sections) <= 1 {
		return nil, errors.New("no section headers")
	}

	prog := &Program{Machine: f.Machine, Entry: f.Entry}
	for i, p := range f.Progs {
		switch p.Type {
		case elf.PT_INTERP, elf.PT_DYNAMIC:
			return nil, fmt.Errorf("program header %d is %v: not a static executable", i, p.Type)
		case elf.PT_LOAD:
		default:
			continue
		}
		if p.Memsz < p.Filesz {
			return nil, fmt.Errorf("PT_LOAD %d: memory size %#x < file size %#x", i, p.Memsz, p.Filesz)
		}
		if p.Off > uint64(fi.Size()) || p.Filesz > uint64(fi.Size())-p.Off {
			return nil, fmt.Errorf("PT_LOAD %d: file range %#x+%#x beyond end of file", i, p.Off, p.Filesz)
		}
		name, err := segmentName(p.Flags)
		if err != nil {
			return nil, fmt.Errorf("PT_LOAD %d at %#x: %w", i, p.Vaddr, err)
		}
		start, ok := firstSection(f, p.Vaddr, p.Vaddr+p.Memsz)
		if !ok {
			continue // headers and notes only
		}
		data := make([]byte, p.Filesz)
		if _, err := p.ReadAt(data, 0); err != nil {
			return nil, fmt.Errorf("PT_LOAD %d: %w", i, err)
		}
		skip := start - p.Vaddr
		data = data[min(skip, uint64(len(data))):]
		prog.Segments = append(prog.Segments, Segment{
			Name:    name,
			VAddr:   start,
			Data:    data,
			MemSize: p.Memsz - skip,
			Read:    p.Flags&elf.PF_R != 0,
			Write:   p.Flags&elf.PF_W != 0,
			Exec:    p.Flags&elf.PF_X != 0,
		})
	}
	if len(prog.Segments) == 0 {
		return nil, errors.New("no loadable segments")
	}
	// ELF requires PT_LOAD headers in address order; sort anyway so the overlap check is sound.
	slices.SortStableFunc(prog.Segments, func(a, b Segment) int {
		switch {
		case a.VAddr < b.VAddr:
			return -1
		case a.VAddr > b.VAddr:
			return 1
		}
		return 0
	})
	for i := 1; i < len(prog.Segments); i++ {
		prev, s := &prog.Segments[i-1], &prog.Segments[i]
		if s.VAddr-prev.VAddr < prev.MemSize {
			return nil, fmt.Errorf("segment %s at %#x overlaps %s at %#x+%#x", s.Name, s.VAddr, prev.Name, prev.VAddr, prev.MemSize)
		}
	}
	return prog, nil
}

// segmentName maps ELF permissions to a PE section name; combinations a PE
// section could express but a Go program never uses (W+X, no R) are refused.
func segmentName(flags elf.ProgFlag) (string, error) {
	switch flags & (elf.PF_R | elf.PF_W | elf.PF_X) {
	case elf.PF_R | elf.PF_X:
		return ".text", nil
	case elf.PF_R:
		return ".rdata", nil
	case elf.PF_R | elf.PF_W:
		return ".data", nil
	}
	return "", fmt.Errorf("unsupported permissions %v", flags)
}

// firstSection returns the lowest address of an allocated section other than a note
// that starts within [lo, hi).
func firstSection(f *elf.File, lo, hi uint64) (uint64, bool) {
	var first uint64
	found := false
	for _, s := range f.Sections {
		if s.Flags&elf.SHF_ALLOC == 0 || s.Type == elf.SHT_NOTE || s.Type == elf.SHT_NULL {
			continue
		}
		if s.Addr < lo || s.Addr >= hi {
			continue
		}
		if !found || s.Addr < first {
			first, found = s.Addr, true
		}
	}
	return first, found
}
