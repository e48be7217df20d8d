package build

import (
	"bytes"
	"debug/elf"
	"debug/pe"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

// loadPE does what a firmware loader does with img: copy the headers and
// sections to their RVAs in a buffer of SizeOfImage bytes, zero-fill the rest,
// and apply the base relocations for a load at newBase. It returns the parsed
// file, the memory image and the number of DIR64 fixups applied.
func loadPE(t *testing.T, img []byte, newBase uint64) (*pe.File, []byte, int) {
	t.Helper()
	// debug/pe refuses machine types it does not know (LoongArch as of Go 1.26),
	// so hide the machine from it and put it back afterwards.
	machineOff := binary.LittleEndian.Uint32(img[0x3c:]) + 4
	machine := binary.LittleEndian.Uint16(img[machineOff:])
	parse := slices.Clone(img)
	binary.LittleEndian.PutUint16(parse[machineOff:], pe.IMAGE_FILE_MACHINE_UNKNOWN)
	f, err := pe.NewFile(bytes.NewReader(parse))
	if err != nil {
		t.Fatalf("debug/pe cannot parse the image: %v", err)
	}
	f.Machine = machine
	oh, ok := f.OptionalHeader.(*pe.OptionalHeader64)
	if !ok {
		t.Fatalf("optional header is %T, want PE32+", f.OptionalHeader)
	}
	mem := make([]byte, oh.SizeOfImage)
	copy(mem, img[:oh.SizeOfHeaders])
	for _, s := range f.Sections {
		n := min(s.VirtualSize, s.Size)
		if uint64(s.VirtualAddress)+uint64(s.VirtualSize) > uint64(len(mem)) {
			t.Fatalf("section %s [%#x+%#x] beyond SizeOfImage %#x", s.Name, s.VirtualAddress, s.VirtualSize, len(mem))
		}
		copy(mem[s.VirtualAddress:], img[s.Offset:s.Offset+n])
	}

	dir := oh.DataDirectory[pe.IMAGE_DIRECTORY_ENTRY_BASERELOC]
	relocs := mem[dir.VirtualAddress:][:dir.Size]
	delta := newBase - oh.ImageBase
	fixups := 0
	lastPage := int64(-1)
	for len(relocs) > 0 {
		if len(relocs) < 8 {
			t.Fatalf("truncated relocation block header")
		}
		page := binary.LittleEndian.Uint32(relocs)
		size := binary.LittleEndian.Uint32(relocs[4:])
		if size < 8 || size%4 != 0 || int(size) > len(relocs) || page%0x1000 != 0 {
			t.Fatalf("bad relocation block: page %#x size %#x (%#x bytes left)", page, size, len(relocs))
		}
		if int64(page) <= lastPage {
			t.Fatalf("relocation block for page %#x after page %#x", page, lastPage)
		}
		lastPage = int64(page)
		for e := 8; e < int(size); e += 2 {
			entry := binary.LittleEndian.Uint16(relocs[e:])
			switch typ, off := entry>>12, uint32(entry&0xfff); typ {
			case 0: // IMAGE_REL_BASED_ABSOLUTE
				if e != int(size)-2 || off != 0 {
					t.Fatalf("page %#x: ABSOLUTE entry %#04x is not the final pad", page, entry)
				}
			case 10: // IMAGE_REL_BASED_DIR64
				w := mem[page+off:][:8]
				binary.LittleEndian.PutUint64(w, binary.LittleEndian.Uint64(w)+delta)
				fixups++
			default:
				t.Fatalf("page %#x: unexpected relocation type %d", page, typ)
			}
		}
		relocs = relocs[size:]
	}
	return f, mem, fixups
}

// checkLoaded verifies that every segment of want, a program linked at the
// address the image was loaded to, lies in mem byte for byte.
func checkLoaded(t *testing.T, mem []byte, newBase uint64, want *Program) {
	t.Helper()
	for _, s := range want.Segments {
		rva := s.VAddr - newBase
		got := mem[rva:][:s.MemSize]
		if i := mismatch(got[:len(s.Data)], s.Data); i >= 0 {
			t.Errorf("%s+%#x: loaded image has % x, want % x", s.Name, i, got[i:min(i+8, len(s.Data))], s.Data[i:min(i+8, len(s.Data))])
		}
		if i := slices.IndexFunc(got[len(s.Data):], func(b byte) bool { return b != 0 }); i >= 0 {
			t.Errorf("%s+%#x: bss not zero", s.Name, len(s.Data)+i)
		}
	}
}

func mismatch(a, b []byte) int {
	for i := range a {
		if a[i] != b[i] {
			return i
		}
	}
	return -1
}

func TestPESynthetic(t *testing.T) {
	a, b, relocs := synthPair(t)
	const base = 0x200000
	var buf bytes.Buffer
	err := WritePE(&buf, a, relocs, PEOptions{Machine: pe.IMAGE_FILE_MACHINE_AMD64, ImageBase: base, Subsystem: pe.IMAGE_SUBSYSTEM_EFI_APPLICATION})
	if err != nil {
		t.Fatal(err)
	}
	img := buf.Bytes()
	if len(img)%0x200 != 0 {
		t.Errorf("file size %#x not a multiple of FileAlignment", len(img))
	}
	if string(img[:2]) != "MZ" || binary.LittleEndian.Uint32(img[0x3c:]) != 0x40 || string(img[0x40:0x44]) != "PE\x00\x00" {
		t.Errorf("bad DOS header or signature: % x", img[:0x44])
	}
	f, mem, fixups := loadPE(t, img, base+testShift)
	oh := f.OptionalHeader.(*pe.OptionalHeader64)

	const (
		code  = pe.IMAGE_SCN_CNT_CODE | pe.IMAGE_SCN_MEM_EXECUTE | pe.IMAGE_SCN_MEM_READ
		rdata = pe.IMAGE_SCN_CNT_INITIALIZED_DATA | pe.IMAGE_SCN_MEM_READ
		data  = rdata | pe.IMAGE_SCN_MEM_WRITE
		bss   = pe.IMAGE_SCN_CNT_UNINITIALIZED_DATA | pe.IMAGE_SCN_MEM_READ | pe.IMAGE_SCN_MEM_WRITE
		reloc = rdata | pe.IMAGE_SCN_MEM_DISCARDABLE
	)
	// Blocks: page 0x1000 (1 entry+pad), 0x2000 (4), 0x3000 (2), 0x4000 (2): 12+16+12+12.
	const relocSize = 52
	want := []pe.SectionHeader{
		{Name: ".text", VirtualSize: 0x1000, VirtualAddress: 0x1000, Size: 0x1000, Offset: 0x400, Characteristics: code},
		{Name: ".rdata", VirtualSize: 0x2000, VirtualAddress: 0x2000, Size: 0x2000, Offset: 0x1400, Characteristics: rdata},
		{Name: ".data", VirtualSize: 0x3000, VirtualAddress: 0x4000, Size: 0x200, Offset: 0x3400, Characteristics: data},
		{Name: ".bss", VirtualSize: 0x1800, VirtualAddress: 0x7000, Characteristics: bss},
		{Name: ".reloc", VirtualSize: relocSize, VirtualAddress: 0x9000, Size: 0x200, Offset: 0x3600, Characteristics: reloc},
	}
	var got []pe.SectionHeader
	for _, s := range f.Sections {
		got = append(got, s.SectionHeader)
	}
	if !slices.Equal(got, want) {
		t.Errorf("sections:\n%+v\nwant\n%+v", got, want)
	}
	if len(img) != 0x3800 {
		t.Errorf("file size %#x, want 0x3800", len(img))
	}

	wantFH := pe.FileHeader{
		Machine:              pe.IMAGE_FILE_MACHINE_AMD64,
		NumberOfSections:     5,
		SizeOfOptionalHeader: 240,
		Characteristics:      pe.IMAGE_FILE_EXECUTABLE_IMAGE | pe.IMAGE_FILE_LARGE_ADDRESS_AWARE,
	}
	if f.FileHeader != wantFH {
		t.Errorf("file header %+v, want %+v", f.FileHeader, wantFH)
	}
	wantOH := pe.OptionalHeader64{
		Magic:                   0x20b,
		SizeOfCode:              0x1000,
		SizeOfInitializedData:   0x2000 + 0x200 + 0x200,
		SizeOfUninitializedData: 0x1800,
		AddressOfEntryPoint:     0x1010,
		BaseOfCode:              0x1000,
		ImageBase:               base,
		SectionAlignment:        0x1000,
		FileAlignment:           0x200,
		SizeOfImage:             0xa000,
		SizeOfHeaders:           0x400, // 0x40+4+20+240+5*40 = 0x210 bytes
		Subsystem:               10,
		DllCharacteristics:      pe.IMAGE_DLLCHARACTERISTICS_DYNAMIC_BASE | pe.IMAGE_DLLCHARACTERISTICS_NX_COMPAT,
		SizeOfStackReserve:      0x100000,
		SizeOfStackCommit:       0x1000,
		SizeOfHeapReserve:       0x100000,
		SizeOfHeapCommit:        0x1000,
		NumberOfRvaAndSizes:     16,
	}
	wantOH.DataDirectory[pe.IMAGE_DIRECTORY_ENTRY_BASERELOC] = pe.DataDirectory{VirtualAddress: 0x9000, Size: relocSize}
	if *oh != wantOH {
		t.Errorf("optional header\n%+v\nwant\n%+v", *oh, wantOH)
	}

	if fixups != len(relocs) {
		t.Errorf("applied %d fixups, want %d", fixups, len(relocs))
	}
	checkLoaded(t, mem, base+testShift, b)
}

func TestPEErrors(t *testing.T) {
	okOpt := PEOptions{Machine: pe.IMAGE_FILE_MACHINE_AMD64, ImageBase: 0x200000, Subsystem: 10}
	tests := []struct {
		name   string
		mutate func(p *Program, relocs *[]uint64, opt *PEOptions)
		want   string
	}{
		{"reloc in bss", func(p *Program, r *[]uint64, o *PEOptions) { *r = append(*r, 0x204100) }, "relocation 0x204100 is not inside the initialised data"},
		{"reloc straddles end of data", func(p *Program, r *[]uint64, o *PEOptions) { *r = append(*r, 0x2040fc) }, "relocation 0x2040fc is not inside"},
		{"reloc in bss-only segment", func(p *Program, r *[]uint64, o *PEOptions) { *r = append(*r, 0x207000) }, "relocation 0x207000 is not inside"},
		{"reloc below image", func(p *Program, r *[]uint64, o *PEOptions) { *r = append(*r, 0x200008) }, "relocation 0x200008 is not inside"},
		{"reloc above image", func(p *Program, r *[]uint64, o *PEOptions) { *r = append(*r, 0x300000) }, "relocation 0x300000 is not inside"},
		{"duplicate reloc", func(p *Program, r *[]uint64, o *PEOptions) { *r = append(*r, 0x202008) }, "relocation 0x202008 listed twice"},
		{"unaligned segment", func(p *Program, r *[]uint64, o *PEOptions) { p.Segments[1].VAddr += 0x10 }, "segment .rdata at 0x202010 is not 4 KiB aligned"},
		{"overlap", func(p *Program, r *[]uint64, o *PEOptions) { p.Segments[0].MemSize = 0x1001 }, "segment .rdata at 0x202000 overlaps"},
		{"no room for headers", func(p *Program, r *[]uint64, o *PEOptions) { o.ImageBase = 0x210000 }, "no room for headers"},
		{"image base just too high", func(p *Program, r *[]uint64, o *PEOptions) {
			o.ImageBase = 0x200000
			p.Segments[0].VAddr = 0x200000
		}, "no room for headers"},
		{"image base alignment", func(p *Program, r *[]uint64, o *PEOptions) { o.ImageBase = 0x1f0000 + 0x1000 }, "not 64 KiB aligned"},
		{"entry outside code", func(p *Program, r *[]uint64, o *PEOptions) { p.Entry = 0x202000 }, "entry point 0x202000"},
		{"machine mismatch", func(p *Program, r *[]uint64, o *PEOptions) { o.Machine = pe.IMAGE_FILE_MACHINE_ARM64 }, "does not match ELF machine EM_X86_64"},
		{"no subsystem", func(p *Program, r *[]uint64, o *PEOptions) { o.Subsystem = 0 }, "no subsystem"},
		{"long name", func(p *Program, r *[]uint64, o *PEOptions) { p.Segments[1].Name = ".rodata.x" }, "name must be 1 to 8 bytes"},
		{"writable code", func(p *Program, r *[]uint64, o *PEOptions) { p.Segments[0].Write = true }, "both writable and executable"},
		{"memsize below data", func(p *Program, r *[]uint64, o *PEOptions) { p.Segments[2].MemSize = 0x80 }, "bad memory size"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, _, relocs := synthPair(t)
			opt := okOpt
			tt.mutate(a, &relocs, &opt)
			var buf bytes.Buffer
			err := WritePE(&buf, a, relocs, opt)
			if err == nil {
				t.Fatal("WritePE succeeded, want error")
			}
			if !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "efirt/build: ") {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
			if buf.Len() != 0 {
				t.Errorf("WritePE wrote %d bytes despite failing", buf.Len())
			}
		})
	}
}

// The checks above must pass for the unmodified input, or they prove nothing.
func TestPEErrorsBaseline(t *testing.T) {
	a, _, relocs := synthPair(t)
	err := WritePE(new(bytes.Buffer), a, relocs, PEOptions{Machine: pe.IMAGE_FILE_MACHINE_AMD64, ImageBase: 0x200000, Subsystem: 10})
	if err != nil {
		t.Fatal(err)
	}
}

func TestPENoRelocs(t *testing.T) {
	a, _, _ := synthPair(t)
	var buf bytes.Buffer
	if err := WritePE(&buf, a, nil, PEOptions{Machine: pe.IMAGE_FILE_MACHINE_AMD64, ImageBase: 0x200000, Subsystem: 10}); err != nil {
		t.Fatal(err)
	}
	_, mem, fixups := loadPE(t, buf.Bytes(), 0x200000+testShift)
	if fixups != 0 {
		t.Errorf("%d fixups, want 0", fixups)
	}
	checkLoaded(t, mem, 0x200000, a) // nothing to relocate, so the bytes are a's
}

// testProgram has pointers in initialised data (the map, the slice, the
// interface) and pulls in enough of the standard library (fmt, net/http,
// crypto/sha256) for the read-only data to be full of pointers too.
const testProgram = `package main

import (
	"crypto/sha256"
	"fmt"
	"net/http"
	"os"
)

var table = map[string]*int{"one": new(int), "two": new(int)}
var list = []*string{new(string), new(string)}
var handler http.Handler = http.NotFoundHandler()

func main() {
	sum := sha256.Sum256([]byte(os.Args[0]))
	fmt.Println(sum, len(table), len(list), http.StatusText(http.StatusOK), handler != nil)
}
`

// The two link addresses have the same length so that nothing but addresses can
// differ between the links; their difference is the shift.
const (
	linkLow  = 0x1011000
	linkHigh = 0x5011000
)

type linkedPair struct {
	once     sync.Once
	low      []byte // ELF file linked at linkLow
	high     []byte // ELF file linked at linkHigh
	err      error
	buildLog string
}

var linkedPairs sync.Map // "GOARCH trimpath" -> *linkedPair

// buildPair links testProgram for GOOS=linux/goarch at linkLow and at linkHigh
// (once per test binary) and returns both ELF files' contents.
//
// Without -trimpath, cmd/go records the -ldflags string, and with it the link
// address, in the build info in .rodata, so the two links differ in text as well
// as in pointers. -trimpath stops it recording ldflags (go.dev/issue/52372).
func buildPair(t *testing.T, goarch string, trimpath bool) (low, high []byte) {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("no go tool: %v", err)
	}
	v, _ := linkedPairs.LoadOrStore(fmt.Sprint(goarch, " ", trimpath), new(linkedPair))
	p := v.(*linkedPair)
	p.once.Do(func() {
		dir, err := os.MkdirTemp("", "efirt-build-test-")
		if err != nil {
			p.err = err
			return
		}
		defer os.RemoveAll(dir)
		files := map[string]string{"go.mod": "module example.com/efitest\n\ngo 1.26\n", "main.go": testProgram}
		for name, content := range files {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
				p.err = err
				return
			}
		}
		for _, link := range []struct {
			addr uint64
			out  *[]byte
		}{{linkLow, &p.low}, {linkHigh, &p.high}} {
			exe := filepath.Join(dir, fmt.Sprintf("prog-%#x", link.addr))
			args := []string{"build", "-o", exe, fmt.Sprintf("-ldflags=-T=%#x -s -w", link.addr)}
			if trimpath {
				args = append(args, "-trimpath")
			}
			cmd := exec.Command(goTool, append(args, ".")...)
			cmd.Dir = dir
			cmd.Env = append(os.Environ(), "GOOS=linux", "GOARCH="+goarch, "CGO_ENABLED=0", "GOFLAGS=-buildvcs=false", "GOWORK=off", "GOTOOLCHAIN=local")
			out, err := cmd.CombinedOutput()
			if err != nil {
				p.err, p.buildLog = fmt.Errorf("go build for %s at %#x: %w", goarch, link.addr, err), string(out)
				return
			}
			if *link.out, err = os.ReadFile(exe); err != nil {
				p.err = err
				return
			}
		}
	})
	if p.err != nil {
		t.Fatalf("%v\n%s", p.err, p.buildLog)
	}
	return p.low, p.high
}

// readELFBytes runs ReadELF on data via a temporary file.
func readELFBytes(t *testing.T, data []byte) (*Program, error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "prog")
	if err := os.WriteFile(path, data, 0o755); err != nil {
		t.Fatal(err)
	}
	return ReadELF(path)
}

var testArches = []struct {
	goarch    string
	elf       elf.Machine
	peMachine uint16
}{
	{"amd64", elf.EM_X86_64, pe.IMAGE_FILE_MACHINE_AMD64},
	{"arm64", elf.EM_AARCH64, pe.IMAGE_FILE_MACHINE_ARM64},
	{"riscv64", elf.EM_RISCV, pe.IMAGE_FILE_MACHINE_RISCV64},
	{"loong64", elf.EM_LOONGARCH, pe.IMAGE_FILE_MACHINE_LOONGARCH64},
}

// TestPETwoLinks is the whole pipeline on a real Go program: link it twice,
// derive the relocations, write a PE image, and check that loading that image at
// the second link address reproduces the second link exactly.
func TestPETwoLinks(t *testing.T) {
	for _, arch := range testArches {
		t.Run(arch.goarch, func(t *testing.T) {
			if testing.Short() && arch.goarch != "amd64" {
				t.Skip("short mode: amd64 only")
			}
			t.Parallel()
			lowELF, highELF := buildPair(t, arch.goarch, true)
			a, err := readELFBytes(t, lowELF)
			if err != nil {
				t.Fatal(err)
			}
			b, err := readELFBytes(t, highELF)
			if err != nil {
				t.Fatal(err)
			}
			if a.Machine != arch.elf {
				t.Errorf("machine %v, want %v", a.Machine, arch.elf)
			}
			checkGoLayout(t, a, linkLow)

			relocs, err := DeriveRelocs(a, b, linkHigh-linkLow)
			if err != nil {
				t.Fatal(err)
			}
			perSegment := map[string]int{}
			lo, hi := a.Segments[0].VAddr, a.Segments[len(a.Segments)-1].VAddr+a.Segments[len(a.Segments)-1].MemSize
			for _, va := range relocs {
				for _, s := range a.Segments {
					if va >= s.VAddr && va < s.VAddr+s.MemSize {
						perSegment[s.Name]++
					}
				}
				// Every pointer must point into the segments: nothing may refer to
				// the ELF headers and notes that ReadELF left out.
				if p := binary.LittleEndian.Uint64(word(t, a, va)); p < lo || p > hi {
					t.Errorf("word at %#x points to %#x, outside [%#x, %#x]", va, p, lo, hi)
				}
			}
			t.Logf("%s: %d relocations %v; segments %s", arch.goarch, len(relocs), perSegment, describe(a))
			if len(relocs) < 1000 {
				t.Errorf("only %d relocations, want thousands", len(relocs))
			}

			imageBase := lo &^ 0xffff
			if lo-imageBase < 0x1000 {
				imageBase -= 0x10000
			}
			var buf bytes.Buffer
			if err := WritePE(&buf, a, relocs, PEOptions{Machine: arch.peMachine, ImageBase: imageBase, Subsystem: 10}); err != nil {
				t.Fatal(err)
			}
			newBase := imageBase + (linkHigh - linkLow)
			f, mem, fixups := loadPE(t, buf.Bytes(), newBase)
			checkPEHeaders(t, f, a, imageBase, arch.peMachine)
			if fixups != len(relocs) {
				t.Errorf("applied %d fixups, want %d", fixups, len(relocs))
			}
			checkLoaded(t, mem, newBase, b)
		})
	}
}

func describe(p *Program) string {
	var s []string
	for _, seg := range p.Segments {
		s = append(s, fmt.Sprintf("%s@%#x+%#x(data %#x)", seg.Name, seg.VAddr, seg.MemSize, len(seg.Data)))
	}
	return strings.Join(s, " ")
}

// checkGoLayout checks what ReadELF makes of a Go binary linked with -T=text:
// code, read-only data and data, with the header page in front of text left out.
func checkGoLayout(t *testing.T, p *Program, text uint64) {
	t.Helper()
	type shape struct {
		name              string
		read, write, exec bool
	}
	var got []shape
	for _, s := range p.Segments {
		got = append(got, shape{s.Name, s.Read, s.Write, s.Exec})
	}
	want := []shape{{".text", true, false, true}, {".rdata", true, false, false}, {".data", true, true, false}}
	if !slices.Equal(got, want) {
		t.Fatalf("segments %+v, want %+v", got, want)
	}
	if p.Segments[0].VAddr != text {
		t.Errorf(".text starts at %#x, want %#x", p.Segments[0].VAddr, text)
	}
	if text := p.Segments[0]; p.Entry < text.VAddr || p.Entry >= text.VAddr+uint64(len(text.Data)) {
		t.Errorf("entry %#x outside .text", p.Entry)
	}
	if d := p.Segments[2]; d.MemSize <= uint64(len(d.Data)) {
		t.Errorf(".data has no bss (memsize %#x, data %#x)", d.MemSize, len(d.Data))
	}
}

// checkPEHeaders compares the parsed image f against the program it was written from.
func checkPEHeaders(t *testing.T, f *pe.File, p *Program, imageBase uint64, machine uint16) {
	t.Helper()
	oh := f.OptionalHeader.(*pe.OptionalHeader64)
	if f.Machine != machine {
		t.Errorf("machine %#x, want %#x", f.Machine, machine)
	}
	if oh.Subsystem != pe.IMAGE_SUBSYSTEM_EFI_APPLICATION {
		t.Errorf("subsystem %d, want 10", oh.Subsystem)
	}
	if oh.ImageBase != imageBase {
		t.Errorf("image base %#x, want %#x", oh.ImageBase, imageBase)
	}
	if want := uint32(p.Entry - imageBase); oh.AddressOfEntryPoint != want {
		t.Errorf("entry RVA %#x, want %#x", oh.AddressOfEntryPoint, want)
	}
	if len(f.Sections) != len(p.Segments)+1 {
		t.Fatalf("%d sections, want %d", len(f.Sections), len(p.Segments)+1)
	}
	var sizeCode, sizeData uint32
	for i, s := range p.Segments {
		h := f.Sections[i]
		want := pe.IMAGE_SCN_MEM_READ | pe.IMAGE_SCN_CNT_INITIALIZED_DATA
		switch {
		case s.Exec:
			want = pe.IMAGE_SCN_MEM_READ | pe.IMAGE_SCN_CNT_CODE | pe.IMAGE_SCN_MEM_EXECUTE
			sizeCode += h.Size
			if oh.BaseOfCode != h.VirtualAddress {
				t.Errorf("BaseOfCode %#x, want %#x", oh.BaseOfCode, h.VirtualAddress)
			}
		case s.Write:
			want |= pe.IMAGE_SCN_MEM_WRITE
			fallthrough
		default:
			sizeData += h.Size
		}
		if h.Name != s.Name || uint64(h.VirtualAddress) != s.VAddr-imageBase || uint64(h.VirtualSize) != s.MemSize ||
			h.Size != uint32(alignUp(uint64(len(s.Data)), 0x200)) || h.Characteristics != uint32(want) {
			t.Errorf("section %d: %+v; want %s at RVA %#x, virtual size %#x, raw size %#x, characteristics %#x",
				i, h.SectionHeader, s.Name, s.VAddr-imageBase, s.MemSize, alignUp(uint64(len(s.Data)), 0x200), want)
		}
		raw, err := h.Data()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(raw[:len(s.Data)], s.Data) || slices.ContainsFunc(raw[len(s.Data):], func(b byte) bool { return b != 0 }) {
			t.Errorf("section %s: file data differs from the segment", h.Name)
		}
	}
	r := f.Sections[len(p.Segments)]
	sizeData += r.Size
	last := p.Segments[len(p.Segments)-1]
	if want := uint32(alignUp(last.VAddr+last.MemSize-imageBase, 0x1000)); r.Name != ".reloc" || r.VirtualAddress != want ||
		r.Characteristics != pe.IMAGE_SCN_CNT_INITIALIZED_DATA|pe.IMAGE_SCN_MEM_READ|pe.IMAGE_SCN_MEM_DISCARDABLE {
		t.Errorf("last section %+v, want .reloc at %#x", r.SectionHeader, want)
	}
	if dir := oh.DataDirectory[pe.IMAGE_DIRECTORY_ENTRY_BASERELOC]; dir.VirtualAddress != r.VirtualAddress || dir.Size != r.VirtualSize {
		t.Errorf("BASERELOC directory %+v, want %#x+%#x", dir, r.VirtualAddress, r.VirtualSize)
	}
	if want := uint32(alignUp(uint64(r.VirtualAddress)+uint64(r.VirtualSize), 0x1000)); oh.SizeOfImage != want {
		t.Errorf("SizeOfImage %#x, want %#x", oh.SizeOfImage, want)
	}
	if oh.SizeOfCode != sizeCode || oh.SizeOfInitializedData != sizeData || oh.SizeOfUninitializedData != 0 {
		t.Errorf("sizes code %#x data %#x bss %#x, want %#x %#x 0", oh.SizeOfCode, oh.SizeOfInitializedData, oh.SizeOfUninitializedData, sizeCode, sizeData)
	}
	if oh.SizeOfHeaders != 0x200 || f.Sections[0].Offset != 0x200 {
		t.Errorf("SizeOfHeaders %#x, first section at file offset %#x, want 0x200", oh.SizeOfHeaders, f.Sections[0].Offset)
	}
	if oh.Magic != 0x20b || oh.SectionAlignment != 0x1000 || oh.FileAlignment != 0x200 || oh.NumberOfRvaAndSizes != 16 ||
		oh.DllCharacteristics != pe.IMAGE_DLLCHARACTERISTICS_DYNAMIC_BASE|pe.IMAGE_DLLCHARACTERISTICS_NX_COMPAT {
		t.Errorf("optional header %+v", oh)
	}
}

// patchPhdr returns a copy of an ELF64 file in which fn has changed the n'th
// (from 0) program header of type typ.
func patchPhdr(t *testing.T, file []byte, typ elf.ProgType, n int, fn func(ph []byte)) []byte {
	t.Helper()
	file = slices.Clone(file)
	le := binary.LittleEndian
	phoff, phentsize, phnum := le.Uint64(file[0x20:]), int(le.Uint16(file[0x36:])), int(le.Uint16(file[0x38:]))
	for i := range phnum {
		ph := file[int(phoff)+i*phentsize:][:phentsize]
		if elf.ProgType(le.Uint32(ph)) == typ {
			if n == 0 {
				fn(ph)
				return file
			}
			n--
		}
	}
	t.Fatalf("no program header of type %v left", typ)
	return nil
}

func TestELFRejects(t *testing.T) {
	good, _ := buildPair(t, "amd64", true)
	if _, err := readELFBytes(t, good); err != nil {
		t.Fatalf("unpatched file: %v", err)
	}
	le := binary.LittleEndian
	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"not ELF", []byte("#!/bin/sh\nexit 0\n"), "efirt/build: reading ELF: bad magic"},
		{"PIE", func() []byte {
			f := slices.Clone(good)
			le.PutUint16(f[0x10:], uint16(elf.ET_DYN))
			return f
		}(), "ELF type is ET_DYN"},
		{"32-bit", func() []byte {
			f := slices.Clone(good)
			f[elf.EI_CLASS] = byte(elf.ELFCLASS32)
			return f
		}(), ""}, // debug/elf or ReadELF, either way an error
		{"no section headers", func() []byte {
			f := slices.Clone(good)
			le.PutUint64(f[0x28:], 0) // e_shoff
			le.PutUint16(f[0x3c:], 0) // e_shnum
			le.PutUint16(f[0x3e:], 0) // e_shstrndx
			return f
		}(), "no section headers"},
		{"interpreter", patchPhdr(t, good, elf.PT_GNU_STACK, 0, func(ph []byte) { le.PutUint32(ph, uint32(elf.PT_INTERP)) }), "is PT_INTERP: not a static executable"},
		{"writable code", patchPhdr(t, good, elf.PT_LOAD, 0, func(ph []byte) { le.PutUint32(ph[4:], uint32(elf.PF_R|elf.PF_W|elf.PF_X)) }), "unsupported permissions"},
		{"overlap", patchPhdr(t, good, elf.PT_LOAD, 1, func(ph []byte) { le.PutUint64(ph[0x10:], linkLow-0x1000) }), "overlaps"},
		{"beyond end of file", patchPhdr(t, good, elf.PT_LOAD, 2, func(ph []byte) { le.PutUint64(ph[0x20:], uint64(len(good))) }), "beyond end of file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := readELFBytes(t, tt.data)
			if err == nil {
				t.Fatalf("ReadELF succeeded: %s", describe(p))
			}
			if !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "efirt/build: ") {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
		})
	}
}

// TestRelocRecordedLdflags shows why the links need -trimpath: otherwise the
// build info holds the -T address as text, and DeriveRelocs must refuse it.
func TestRelocRecordedLdflags(t *testing.T) {
	if testing.Short() {
		t.Skip("short mode")
	}
	lowELF, highELF := buildPair(t, "amd64", false)
	a, err := readELFBytes(t, lowELF)
	if err != nil {
		t.Fatal(err)
	}
	b, err := readELFBytes(t, highELF)
	if err != nil {
		t.Fatal(err)
	}
	relocs, err := DeriveRelocs(a, b, linkHigh-linkLow)
	if err == nil {
		t.Fatalf("DeriveRelocs found %d relocations, want an error for the recorded -ldflags", len(relocs))
	}
	if !strings.Contains(err.Error(), "efirt/build: .rdata+0x") || !strings.Contains(err.Error(), "-T=0x1") {
		t.Errorf("error %q does not point at the recorded -T flag in .rdata", err)
	}
	t.Log(err)
}
