package build

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

const testShift = 0x4000000

// synthPair returns a hand-made program, the same program moved up by
// testShift, and the VAs (in the first) of the pointer words that differ.
func synthPair(t *testing.T) (a, b *Program, pointers []uint64) {
	t.Helper()
	rng := rand.New(rand.NewPCG(1, 2))
	fill := func(n int) []byte {
		p := make([]byte, n)
		for i := range p {
			p[i] = byte(rng.Uint32())
		}
		return p
	}
	a = &Program{
		Machine: elf.EM_X86_64,
		Entry:   0x201010,
		Segments: []Segment{
			{Name: ".text", VAddr: 0x201000, Data: fill(0x1000), MemSize: 0x1000, Read: true, Exec: true},
			{Name: ".rdata", VAddr: 0x202000, Data: fill(0x2000), MemSize: 0x2000, Read: true},
			{Name: ".data", VAddr: 0x204000, Data: fill(0x100), MemSize: 0x3000, Read: true, Write: true},
			{Name: ".bss", VAddr: 0x207000, MemSize: 0x1800, Read: true, Write: true},
		},
	}
	b = cloneProgram(a)
	b.Entry += testShift
	for i := range b.Segments {
		b.Segments[i].VAddr += testShift
	}
	// Pointers at page edges, across pages, in every initialised segment and in
	// the last full word of a segment; the values are arbitrary addresses in a.
	pointers = []uint64{0x201040, 0x202000, 0x202008, 0x202ff8, 0x203000, 0x203ff8, 0x204000, 0x2040f8}
	for i, va := range pointers {
		setPointer(t, a, b, va, 0x201000+uint64(i)*0x1234)
	}
	// A word whose top bits wrap when shifted is still just "wordB - wordA == shift".
	setPointer(t, a, b, 0x202010, 0xffffffff_ffff0000)
	pointers = append(pointers, 0x202010)
	slices.Sort(pointers)
	return a, b, pointers
}

func cloneProgram(p *Program) *Program {
	c := *p
	c.Segments = slices.Clone(p.Segments)
	for i := range c.Segments {
		c.Segments[i].Data = slices.Clone(p.Segments[i].Data)
	}
	return &c
}

// word returns the bytes at va in p, which must lie in some segment's data.
func word(t *testing.T, p *Program, va uint64) []byte {
	t.Helper()
	for _, s := range p.Segments {
		if va >= s.VAddr && va+8 <= s.VAddr+uint64(len(s.Data)) {
			return s.Data[va-s.VAddr:][:8]
		}
	}
	t.Fatalf("%#x not in data", va)
	return nil
}

// setPointer stores value at va in a and value+testShift at the same place in b.
func setPointer(t *testing.T, a, b *Program, va, value uint64) {
	t.Helper()
	binary.LittleEndian.PutUint64(word(t, a, va), value)
	binary.LittleEndian.PutUint64(word(t, b, va+testShift), value+testShift)
}

func TestRelocDeriveSynthetic(t *testing.T) {
	a, b, want := synthPair(t)
	got, err := DeriveRelocs(a, b, testShift)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		t.Errorf("DeriveRelocs = %#x, want %#x", got, want)
	}
}

func TestRelocDeriveRejects(t *testing.T) {
	tests := []struct {
		name   string
		shift  uint64
		mutate func(t *testing.T, a, b *Program)
		want   []string // substrings of the error
	}{
		{
			name: "unaligned pointer",
			mutate: func(t *testing.T, a, b *Program) {
				// A pointer at .rdata+0x104 straddles the words at +0x100 and +0x108.
				binary.LittleEndian.PutUint64(a.Segments[1].Data[0x104:], 0x202000)
				binary.LittleEndian.PutUint64(b.Segments[1].Data[0x104:], 0x202000+testShift)
			},
			want: []string{"efirt/build: .rdata+0x100: word ", "(want shift 0x4000000)", "unaligned offset 0x104"},
		},
		{
			name: "other delta",
			mutate: func(t *testing.T, a, b *Program) {
				binary.LittleEndian.PutUint64(a.Segments[2].Data[0x10:], 0x1000)
				binary.LittleEndian.PutUint64(b.Segments[2].Data[0x10:], 0x1010)
			},
			want: []string{"efirt/build: .data+0x10: word 0x1000 vs 0x1010 differs by 0x10 (want shift 0x4000000): not a pointer"},
		},
		{
			name: "negative delta",
			mutate: func(t *testing.T, a, b *Program) {
				binary.LittleEndian.PutUint64(a.Segments[0].Data[0x20:], 0x5000000)
				binary.LittleEndian.PutUint64(b.Segments[0].Data[0x20:], 0x1000000)
			},
			want: []string{".text+0x20: word 0x5000000 vs 0x1000000 differs by -0x4000000", "not a pointer"},
		},
		{
			name: "partial word at end",
			mutate: func(t *testing.T, a, b *Program) {
				a.Segments[2].Data = append(a.Segments[2].Data, 1, 2, 3)
				b.Segments[2].Data = append(b.Segments[2].Data, 1, 9, 3)
			},
			want: []string{".data+0x101: byte 0x2 vs 0x9 in partial word"},
		},
		{
			name: "data size",
			mutate: func(t *testing.T, a, b *Program) {
				b.Segments[1].Data = b.Segments[1].Data[:0x1ff8]
			},
			want: []string{"segment 1 (.rdata): data size 0x2000 vs 0x1ff8"},
		},
		{
			name: "memory size",
			mutate: func(t *testing.T, a, b *Program) {
				b.Segments[2].MemSize += 0x1000
			},
			want: []string{"(.data): memory size 0x3000 vs 0x4000"},
		},
		{
			name: "segment count",
			mutate: func(t *testing.T, a, b *Program) {
				b.Segments = b.Segments[:3]
			},
			want: []string{"4 segments vs 3"},
		},
		{
			name: "address not shifted",
			mutate: func(t *testing.T, a, b *Program) {
				b.Segments[1].VAddr += 0x1000
			},
			want: []string{"(.rdata): address 0x202000 vs 0x4203000"},
		},
		{
			name: "entry not shifted",
			mutate: func(t *testing.T, a, b *Program) {
				b.Entry += 0x10
			},
			want: []string{"entry 0x201010 vs 0x4201020"},
		},
		{
			name: "permissions",
			mutate: func(t *testing.T, a, b *Program) {
				b.Segments[1].Write = true
			},
			want: []string{"(.rdata): permissions differ"},
		},
		{
			name: "unaligned segment",
			mutate: func(t *testing.T, a, b *Program) {
				a.Segments[2].VAddr += 4
				b.Segments[2].VAddr += 4
			},
			want: []string{"(.data): address 0x204004 is not 8-byte aligned"},
		},
		{
			name:  "zero shift",
			shift: 0,
			want:  []string{"shift 0x0 is not a positive multiple of 64 KiB"},
		},
		{
			name:  "shift not 64 KiB",
			shift: testShift + 0x1000,
			want:  []string{"shift 0x4001000 is not"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, b, _ := synthPair(t)
			shift := uint64(testShift)
			if tt.mutate != nil {
				tt.mutate(t, a, b)
			} else {
				shift = tt.shift
			}
			got, err := DeriveRelocs(a, b, shift)
			if err == nil {
				t.Fatalf("DeriveRelocs succeeded with %d relocs, want error", len(got))
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestRelocEncodeBlocks(t *testing.T) {
	le := binary.LittleEndian
	var want []byte
	// Page 0x1000: three entries and one ABSOLUTE pad, 8+4*2 = 16 bytes.
	want = le.AppendUint32(want, 0x1000)
	want = le.AppendUint32(want, 16)
	for _, e := range []uint16{0xa000, 0xa008, 0xaff8, 0x0000} {
		want = le.AppendUint16(want, e)
	}
	// Page 0x3000: two entries, no pad needed, 12 bytes.
	want = le.AppendUint32(want, 0x3000)
	want = le.AppendUint32(want, 12)
	want = le.AppendUint16(want, 0xa010)
	want = le.AppendUint16(want, 0xa018)
	// Page 0x5000: one entry and a pad.
	want = le.AppendUint32(want, 0x5000)
	want = le.AppendUint32(want, 12)
	want = le.AppendUint16(want, 0xa7f0)
	want = le.AppendUint16(want, 0x0000)

	got := encodeRelocs([]uint32{0x1000, 0x1008, 0x1ff8, 0x3010, 0x3018, 0x57f0}, 0)
	if !bytes.Equal(got, want) {
		t.Errorf("encodeRelocs =\n% x\nwant\n% x", got, want)
	}

	// No relocations: a single empty block, still a valid relocation directory.
	got = encodeRelocs(nil, 0x3456)
	want = le.AppendUint32(le.AppendUint32(nil, 0x3000), 8)
	if !bytes.Equal(got, want) {
		t.Errorf("encodeRelocs(nil) = % x, want % x", got, want)
	}
}
