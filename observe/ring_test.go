package observe

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/ociboot/ociboot/observe/observetest"
)

// scratch returns a formatted in-memory scratch disk of size bytes.
func scratch(t *testing.T, size int64, unit int) (*observetest.Image, *ImageDevice) {
	t.Helper()
	img := observetest.NewImage(size)
	if _, err := FormatImage(img, size, unit, 0x1234); err != nil {
		t.Fatal(err)
	}
	return img, &ImageDevice{RW: img, Size: size}
}

// writeRun opens the ring, writes lines with a flush after each, and
// returns the text written.
func writeRun(t *testing.T, dev BlockDevice, lines int, tag string) string {
	t.Helper()
	r, err := OpenRing(dev)
	if err != nil {
		t.Fatal(err)
	}
	var want strings.Builder
	for i := 0; i < lines; i++ {
		line := fmt.Sprintf("%s line %d: %s\n", tag, i, strings.Repeat("x", i%97))
		want.WriteString(line)
		if _, err := r.Write([]byte(line)); err != nil {
			t.Fatal(err)
		}
		if i%3 == 0 {
			if err := r.Flush(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := r.Flush(); err != nil {
		t.Fatal(err)
	}
	return want.String()
}

func recoverImage(t *testing.T, img *observetest.Image) *Recovered {
	t.Helper()
	rec, err := Recover(img)
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

func TestRingRoundTripAndRuns(t *testing.T) {
	img, dev := scratch(t, 1<<20, 0)
	run1 := writeRun(t, dev, 50, "first")
	run2 := writeRun(t, dev, 20, "second")
	rec := recoverImage(t, img)
	if len(rec.Runs) != 2 || rec.Torn != 0 {
		t.Fatalf("%d runs, %d torn; want 2, 0", len(rec.Runs), rec.Torn)
	}
	for i, want := range []string{run1, run2} {
		r := rec.Runs[i]
		if r.Run != uint32(i+1) || r.Text != want || r.StartLost || r.Missing != 0 {
			t.Errorf("run %d: number %d, lost %v, missing %d, text equal %v", i, r.Run, r.StartLost, r.Missing, r.Text == want)
		}
	}
	if rec.Last().Text != run2 {
		t.Error("Last is not the latest run")
	}
	if dev.Flushes == 0 {
		t.Error("FlushBlocks never called")
	}
}

func TestRingWrapAround(t *testing.T) {
	// 16 record units of 512 bytes: a few KiB of text wraps several times.
	img, dev := scratch(t, 17*512+CrashAreaBytes, 0)
	writeRun(t, dev, 30, "old")
	want := writeRun(t, dev, 400, "new")
	rec := recoverImage(t, img)
	last := rec.Last()
	if last.Run != 2 || !last.StartLost {
		t.Fatalf("run %d, start lost %v; want run 2 with its start overwritten", last.Run, last.StartLost)
	}
	if len(rec.Runs) != 1 {
		t.Errorf("%d runs left; the old run should be overwritten entirely", len(rec.Runs))
	}
	if last.Missing != 0 || !strings.HasSuffix(want, last.Text) || len(last.Text) < 1000 {
		t.Errorf("recovered %d bytes, missing %d; want a suffix of the %d written", len(last.Text), last.Missing, len(want))
	}
	if !strings.HasPrefix(last.String(), "[observe: the beginning of this log was overwritten") {
		t.Error("no note about the lost beginning")
	}
	// A third run continues after the second, oldest records first to go.
	run3 := writeRun(t, dev, 3, "third")
	rec = recoverImage(t, img)
	if rec.Last().Run != 3 || rec.Last().Text != run3 || !strings.HasSuffix(want, rec.Runs[len(rec.Runs)-2].Text) {
		t.Error("third run not appended after the second")
	}
}

func TestRingSequenceOrder(t *testing.T) {
	// Records are placed by seq modulo the ring size, so the units on disk
	// are out of order after a wrap; recovery must order by seq.
	img, dev := scratch(t, 9*512+CrashAreaBytes, 0)
	want := writeRun(t, dev, 60, "seq")
	rec := recoverImage(t, img)
	got := rec.Last().Text
	if !strings.HasSuffix(want, got) {
		t.Fatalf("recovered text is not the end of what was written:\n%q", got)
	}
	// Unit 1 no longer holds the oldest record.
	r, _ := parseRecord(img.B[512:1024], 0x1234)
	if r.seq == 0 {
		t.Error("the ring did not wrap")
	}
}

func TestRingTornWrite(t *testing.T) {
	img, dev := scratch(t, 1<<16, 0)
	r, err := OpenRing(dev)
	if err != nil {
		t.Fatal(err)
	}
	r.Write([]byte("before the tear\n"))
	r.Flush()
	// The next flush tears: the device writes only the first 100 bytes of
	// the first unit, and nothing of the rest.
	torn := &tearing{ImageDevice: dev, keep: 100}
	r.dev = torn
	r.Write([]byte(strings.Repeat("lost in the tear ", 40) + "\n"))
	if err := r.Flush(); err == nil {
		t.Fatal("torn flush reported success")
	}
	// The machine resets; the next boot appends after what is valid.
	r2, err := OpenRing(dev)
	if err != nil {
		t.Fatal(err)
	}
	r2.Write([]byte("after the reset\n"))
	r2.Flush()
	rec := recoverImage(t, img)
	if rec.Torn != 1 {
		t.Errorf("%d torn units, want 1", rec.Torn)
	}
	if len(rec.Runs) != 2 || rec.Runs[0].Text != "before the tear\n" || rec.Runs[1].Text != "after the reset\n" {
		t.Errorf("runs: %+v", rec.Runs)
	}
	if rec.Runs[1].Run != 2 {
		t.Errorf("run after the tear numbered %d, want 2", rec.Runs[1].Run)
	}
}

// tearing writes only the first keep bytes of a write and fails it.
type tearing struct {
	*ImageDevice
	keep int
}

func (d *tearing) WriteBlocks(lba uint64, buf []byte) error {
	old := make([]byte, 512)
	d.ImageDevice.ReadBlocks(lba, old)
	copy(old, buf[:d.keep])
	d.ImageDevice.WriteBlocks(lba, old)
	return errors.New("device reset")
}

// recording records writes to a device.
type recording struct {
	*ImageDevice
	writes int
}

func (d *recording) WriteBlocks(lba uint64, buf []byte) error {
	d.writes++
	return d.ImageDevice.WriteBlocks(lba, buf)
}

func TestRingRefusesForeignDisk(t *testing.T) {
	for name, corrupt := range map[string]func(b []byte){
		"zeros":    func(b []byte) { clear(b[:512]) },
		"magic":    func(b []byte) { b[0] ^= 1 },
		"checksum": func(b []byte) { b[20] ^= 1 },
		"version": func(b []byte) {
			h := MarshalHeader(Header{UnitSize: 512, Units: 10, Generation: 1})
			h[8] = 3
			copy(b, h)
		},
		"unit size":   func(b []byte) { copy(b, MarshalHeader(Header{UnitSize: 1000, Units: 10})) },
		"too big":     func(b []byte) { copy(b, MarshalHeader(Header{UnitSize: 512, Units: 1 << 20})) },
		"an MBR disk": func(b []byte) { clear(b[:512]); b[510], b[511] = 0x55, 0xaa },
	} {
		t.Run(name, func(t *testing.T) {
			img, dev := scratch(t, 64<<10, 0)
			corrupt(img.B)
			before := bytes.Clone(img.B)
			rec := &recording{ImageDevice: dev}
			if r, err := OpenRing(rec); err == nil {
				r.Write([]byte("must not land\n"))
				r.Flush()
				t.Fatal("opened a ring on a disk without a valid header")
			}
			if rec.writes != 0 || !bytes.Equal(before, img.B) {
				t.Error("the disk was written")
			}
			if name != "too big" {
				if _, err := Recover(img); !errors.Is(err, ErrNotScratch) {
					t.Errorf("Recover: %v, want ErrNotScratch", err)
				}
			}
		})
	}
}

func TestRingUnitLargerThanBlock(t *testing.T) {
	img := observetest.NewImage(64 << 10)
	if _, err := FormatImage(img, int64(len(img.B)), 4096, 7); err != nil {
		t.Fatal(err)
	}
	dev := &ImageDevice{RW: img, Size: int64(len(img.B)), Block: 512}
	want := writeRun(t, dev, 200, "big")
	if got := recoverImage(t, img).Last(); !strings.HasSuffix(want, got.Text) || got.Missing != 0 {
		t.Error("4 KiB units on a 512-byte device do not round-trip")
	}
	// A unit smaller than the device's block cannot be written alone.
	small := observetest.NewImage(64 << 10)
	FormatImage(small, int64(len(small.B)), 512, 7)
	if _, err := OpenRing(&ImageDevice{RW: small, Size: int64(len(small.B)), Block: 4096}); err == nil {
		t.Error("512-byte units accepted on a 4096-byte-block device")
	}
}

func TestFormatImageLimits(t *testing.T) {
	img := observetest.NewImage(4096 + CrashAreaBytes)
	if _, err := FormatImage(img, 1024, 512, 0); err == nil {
		t.Error("a disk of one unit formatted")
	}
	if _, err := FormatImage(img, 4096, 700, 0); err == nil {
		t.Error("unit size 700 accepted")
	}
	h, err := FormatImage(img, 4096+CrashAreaBytes+100, 512, 0)
	if err != nil || h.Units != 7 || h.CrashBytes() != CrashAreaBytes {
		t.Errorf("4 KiB image: %d units, %v", h.Units, err)
	}
}
