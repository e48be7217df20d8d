package observe

import (
	"encoding/binary"
	"strings"
	"testing"

	"github.com/ociboot/ociboot/observe/observetest"
)

// putExitArea writes an exit text into img's crash area as efirt does.
func putExitArea(t *testing.T, img *observetest.Image, run uint32, cut bool, text string) []byte {
	t.Helper()
	h, err := ParseHeader(img.B)
	if err != nil {
		t.Fatal(err)
	}
	area := img.B[h.CrashOffset() : h.CrashOffset()+int64(h.CrashBytes())]
	PutExit(area, h.Generation, run, cut, []byte(text))
	return area
}

func TestExitTextRoundTrip(t *testing.T) {
	img, dev := scratch(t, 1<<20, 0)
	log := writeRun(t, dev, 10, "boot")
	panicText := "panic: boom\n\ngoroutine 7 [running]:\nmain.main.func1()\nefirt: exit_group(2)\n"
	putExitArea(t, img, 1, false, panicText)
	rec := recoverImage(t, img)
	last := rec.Last()
	if len(rec.Runs) != 1 || last.Text != log || last.Exit != panicText || last.ExitCut || len(rec.Notes) != 0 {
		t.Fatalf("recovered %+v, notes %q", rec.Runs, rec.Notes)
	}
	if want := log + ExitMarker + panicText; last.String() != want {
		t.Errorf("String:\n%s\nwant\n%s", last.String(), want)
	}

	// The next boot takes the next run number; the exit text stays with
	// the run that wrote it.
	log2 := writeRun(t, dev, 3, "second")
	rec = recoverImage(t, img)
	if len(rec.Runs) != 2 || rec.Runs[0].Exit != panicText || rec.Last().Exit != "" || rec.Last().Text != log2 {
		t.Errorf("after a second boot: %+v", rec.Runs)
	}

	// A cut capture says so.
	putExitArea(t, img, 2, true, "tail\n")
	if s := recoverImage(t, img).Last().String(); !strings.Contains(s, "beginning of the console tail was lost]\ntail\n") {
		t.Errorf("cut exit text: %q", s)
	}
}

func TestExitTextWithoutRecords(t *testing.T) {
	// A run that died before its first flush leaves only its exit text;
	// the next boot must not reuse its run number.
	img, dev := scratch(t, 1<<20, 0)
	putExitArea(t, img, 1, false, "panic: early\n")
	rec := recoverImage(t, img)
	if len(rec.Runs) != 1 || rec.Last().Run != 1 || rec.Last().Exit != "panic: early\n" {
		t.Fatalf("runs %+v", rec.Runs)
	}
	r, err := OpenRing(dev)
	if err != nil {
		t.Fatal(err)
	}
	if r.Run() != 2 {
		t.Errorf("run %d after an exit-only run 1, want 2", r.Run())
	}
}

func TestExitTextTornOrForeign(t *testing.T) {
	for name, spoil := range map[string]func(area []byte){
		"torn":     func(a []byte) { a[CrashHeader+3] ^= 0x40 },
		"length":   func(a []byte) { binary.LittleEndian.PutUint32(a[20:], uint32(len(a))) },
		"header":   func(a []byte) { a[17] ^= 1 },
		"magic":    func(a []byte) { a[0] = 'X' },
		"zeroed":   func(a []byte) { clear(a[CrashHeader:]) },
		"old area": nil,
	} {
		t.Run(name, func(t *testing.T) {
			img, dev := scratch(t, 256<<10, 0)
			log := writeRun(t, dev, 5, "boot")
			area := putExitArea(t, img, 1, false, "panic: lost\n")
			if spoil == nil {
				// Written under an earlier format of the disk: ignored
				// silently.
				binary.LittleEndian.PutUint64(area[8:], 999)
			} else {
				spoil(area)
			}
			rec := recoverImage(t, img)
			if rec.Last().Exit != "" || rec.Last().Text != log || len(rec.Runs) != 1 {
				t.Errorf("spoiled exit text accepted: %+v", rec.Runs)
			}
			if wantNote := spoil != nil; (len(rec.Notes) == 1) != wantNote ||
				wantNote && !strings.Contains(rec.Notes[0], "crash area ignored") {
				t.Errorf("notes %q", rec.Notes)
			}
		})
	}
}

func TestVersion1Image(t *testing.T) {
	// An image formatted before the crash area existed: its header is
	// version 1 and its ring runs to the end of the disk.
	const size = 64 << 10
	img := observetest.NewImage(size)
	h := Header{Version: 1, UnitSize: 512, Units: size/512 - 1, Generation: 42}
	copy(img.B, MarshalHeader(h))
	dev := &ImageDevice{RW: img, Size: size}
	got, err := ParseHeader(img.B)
	if err != nil || got != h {
		t.Fatalf("header %+v, %v; want %+v", got, err, h)
	}
	log := writeRun(t, dev, 300, "v1")
	rec := recoverImage(t, img)
	if !strings.HasSuffix(log, rec.Last().Text) || rec.Last().Exit != "" || len(rec.Notes) != 0 {
		t.Errorf("version 1 image: %+v %q", rec.Runs, rec.Notes)
	}
	r, err := OpenRing(dev)
	if err != nil {
		t.Fatal(err)
	}
	if _, blocks := r.CrashArea(); blocks != 0 {
		t.Errorf("version 1 image has a crash area of %d blocks", blocks)
	}
	if MarshalHeader(h)[8] != 1 {
		t.Error("version 1 header rewritten as another version")
	}
}

func TestCrashAreaPlacement(t *testing.T) {
	img := observetest.NewImage(1 << 20)
	h, err := FormatImage(img, 1<<20, 4096, 5)
	if err != nil {
		t.Fatal(err)
	}
	r, err := OpenRing(&ImageDevice{RW: img, Size: 1 << 20, Block: 512})
	if err != nil {
		t.Fatal(err)
	}
	lba, blocks := r.CrashArea()
	if int64(lba)*512 != h.CrashOffset() || int(blocks)*512 != h.CrashBytes() ||
		h.CrashBytes() < CrashAreaBytes || h.Size() > 1<<20 {
		t.Errorf("crash area at block %d, %d blocks; header %+v", lba, blocks, h)
	}
}
