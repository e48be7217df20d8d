package efirt

import (
	"strings"
	"testing"

	"github.com/ociboot/ociboot/observe"
	"github.com/ociboot/ociboot/observe/observetest"
)

// resetCapture empties the console capture for a test and restores it
// afterwards.
func resetCapture(t *testing.T) {
	saved := capture
	t.Cleanup(func() { capture = saved })
	capture.total, capture.saved = 0, 0
}

func readAll(from uint64) (string, uint64, uint64) {
	var out []byte
	var buf [7]byte // small, to exercise continuation
	var lost uint64
	for {
		n, next, l := ReadConsole(from, buf[:])
		lost += l
		out = append(out, buf[:n]...)
		if next == from {
			return string(out), next, lost
		}
		from = next
	}
}

func TestReadConsoleSkipsLoggerBytes(t *testing.T) {
	resetCapture(t)
	captureCon([]byte("[ 0.001] observe: hello\n"), true)
	captureCon([]byte("efirt: unsupported system call 999 returns ENOSYS\n"), false) // as kprint does
	captureCon([]byte("[ 0.002] next line\n"), true)
	captureCon([]byte("panic: boom\n"), false)
	got, next, lost := readAll(0)
	if want := "efirt: unsupported system call 999 returns ENOSYS\npanic: boom\n"; got != want || lost != 0 || next != ConsolePos() {
		t.Errorf("ReadConsole: %q next %d lost %d; want %q next %d", got, next, lost, want, ConsolePos())
	}
	// Nothing new: nothing read, position unchanged.
	if n, next2, _ := ReadConsole(next, make([]byte, 10)); n != 0 || next2 != next {
		t.Errorf("re-read %d bytes", n)
	}
}

func TestReadConsoleOverwritten(t *testing.T) {
	resetCapture(t)
	captureCon([]byte("old\n"), false)
	big := strings.Repeat("x", capSize)
	captureCon([]byte(big), false)
	got, _, lost := readAll(0)
	if lost != 4 || got != big {
		t.Errorf("lost %d (want 4), read %d bytes", lost, len(got))
	}
}

// TestExitTextIsObserveFormat checks that what the kernel writes at exit
// is what observe.Recover reads from the crash area.
func TestExitTextIsObserveFormat(t *testing.T) {
	for _, tc := range []struct {
		name    string
		area    int
		tail    string
		wantCut bool
	}{
		{"fits", 4096, "panic: boom\n\ngoroutine 5 [running]:\nmain.crash()\nefirt: exit_group(2)\n", false},
		{"cut by the area", 1024, strings.Repeat("0123456789abcdef", 100), true},
		{"cut by the capture", 64 << 10, strings.Repeat("fedcba9876543210", capSize/16+10), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resetCapture(t)
			img := observetest.NewImage(int64(64<<10 + tc.area))
			h, err := observe.FormatImage(img, int64(len(img.B)), 512, 77)
			if err != nil {
				t.Fatal(err)
			}
			h.CrashUnits = uint32(tc.area / 512) // as if formatted with this area
			h.Units = uint64(len(img.B)/512) - 1 - uint64(h.CrashUnits)
			copy(img.B, observe.MarshalHeader(h))

			captureCon([]byte("[ 0.100] saved to the ring already\n"), true)
			ConsoleSaved(ConsolePos())
			captureCon([]byte(tc.tail[:len(tc.tail)/2]), true)
			captureCon([]byte(tc.tail[len(tc.tail)/2:]), false)

			buf := make([]byte, exitHeader+capSize+2*exitMaxBlock)
			maxText := min(capSize, uint64(h.CrashBytes())-exitHeader)
			n := encodeExit(buf, maxText, h.Generation, 3)
			if n > h.CrashBytes() {
				t.Fatalf("encoded %d bytes for an area of %d", n, h.CrashBytes())
			}
			copy(img.B[h.CrashOffset():], buf[:n])
			rec, err := observe.Recover(img)
			if err != nil {
				t.Fatal(err)
			}
			last := rec.Last()
			if last == nil || last.Run != 3 || last.ExitCut != tc.wantCut || !strings.HasSuffix(tc.tail, last.Exit) ||
				len(last.Exit) != min(len(tc.tail), int(maxText)) || len(rec.Notes) != 0 {
				t.Fatalf("recovered %+v, notes %q", rec.Runs, rec.Notes)
			}
		})
	}
}

func TestSetExitDiskChecks(t *testing.T) {
	defer SetExitDisk(ExitDisk{})
	for _, d := range []ExitDisk{
		{BlockIo: 1, BlockSize: 520, Blocks: 40},
		{BlockIo: 1, BlockSize: 8192, Blocks: 40},
		{BlockIo: 1, BlockSize: 512, Blocks: 1},
	} {
		if err := SetExitDisk(d); err == nil {
			t.Errorf("%+v accepted", d)
		}
	}
	if err := SetExitDisk(ExitDisk{BlockIo: 1, BlockSize: 512, Blocks: 40}); err != nil || exitDisk.BlockIo != 1 {
		t.Errorf("a valid disk: %v", err)
	}
	if SetExitDisk(ExitDisk{}); exitDisk.BlockIo != 0 {
		t.Error("not unregistered")
	}
}
