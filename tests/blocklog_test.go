package tests

import (
	"bytes"
	"crypto/rand"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ociboot/ociboot/efirt/qemu"
	"github.com/ociboot/ociboot/observe"
)

// programLog cuts the program's own log out of a run's console text: from
// its first line (observe's notes come first) to the runtime's exit marker.
func programLog(t *testing.T, console string) string {
	t.Helper()
	i := strings.Index(console, "] observe: ")
	end := strings.Index(console, "efirt: exit_group(")
	if i < 0 || end < i {
		t.Fatalf("no program log in the console")
	}
	start := strings.LastIndexByte(console[:i], '\n') + 1
	return console[start:end]
}

// TestBlockLog boots tests/blocklog with two extra disks: a scratch disk and
// a disk of random bytes without the scratch header. The log recovered from
// the scratch disk must equal what the serial console showed, the other disk
// must come out unchanged, and the log of a failing run must be recovered by
// `ociboot logs` with its error block.
var serialTeed = regexp.MustCompile(`observe: serial port 0 \(\d+ baud\) teed`)

func TestBlockLog(t *testing.T) {
	for _, arch := range arches {
		t.Run(arch, func(t *testing.T) {
			efi := buildEFI(t, arch, "./tests/blocklog")
			dir := t.TempDir()
			ociboot := filepath.Join(dir, "ociboot")
			if out, err := exec.Command("go", "build", "-o", ociboot, "../cmd/ociboot").CombinedOutput(); err != nil {
				t.Fatalf("building ociboot: %v\n%s", err, out)
			}
			scratch := filepath.Join(dir, "scratch.img")
			if out, err := exec.Command(ociboot, "logs", "init", scratch, "-size", "1048576").CombinedOutput(); err != nil {
				t.Fatalf("ociboot logs init: %v\n%s", err, out)
			}
			other := filepath.Join(dir, "other.img")
			want := make([]byte, 2<<20)
			rand.Read(want)
			if err := os.WriteFile(other, want, 0o644); err != nil {
				t.Fatal(err)
			}
			run := func(args ...string) qemu.Result {
				var console strings.Builder
				res, err := qemu.Run(t.Context(), qemu.Config{
					Arch: arch, Timeout: 3 * time.Minute, Stdout: &console, Disks: []string{scratch, other},
				}, efi, args)
				t.Logf("console:\n%s", console.String())
				if err != nil {
					t.Fatal(err)
				}
				return res
			}

			res := run()
			if !res.Exited || res.Status != 0 {
				t.Fatalf("status %d (%s)", res.Status, res.Reason)
			}
			f, err := os.Open(scratch)
			if err != nil {
				t.Fatal(err)
			}
			rec, err := observe.Recover(f)
			f.Close()
			if err != nil {
				t.Fatal(err)
			}
			serial := programLog(t, res.Console)
			if rec.Last() == nil || rec.Last().Text != serial || rec.Torn != 0 {
				t.Errorf("ring text differs from the serial console's\nring:\n%v\nserial:\n%s", rec.Last(), serial)
			}
			for _, s := range []string{"boot timeline", "actor ", "blocklog: done", "serial port 0 is on ConOut already"} {
				if !strings.Contains(serial, s) {
					t.Errorf("log lacks %q", s)
				}
			}
			if got, _ := os.ReadFile(other); !bytes.Equal(got, want) {
				t.Error("the disk without the scratch header was written")
			}

			res = run("fail")
			if !res.Exited || res.Status != 1 {
				t.Fatalf("failing run: status %d (%s), want 1", res.Status, res.Reason)
			}
			out, err := exec.Command(ociboot, "logs", scratch).Output()
			if err != nil {
				t.Fatalf("ociboot logs: %v", err)
			}
			t.Logf("ociboot logs:\n%s", out)
			if string(out) != programLog(t, res.Console) {
				t.Errorf("ociboot logs differs from the failing run's console:\n%s", programLog(t, res.Console))
			}
			for _, s := range []string{"ERROR ==== ociboot: boot failed ====", "ERROR what failed:  bringing up the NIC", "ERROR next:         back to the firmware"} {
				if !strings.Contains(string(out), s) {
					t.Errorf("recovered log lacks %q", s)
				}
			}
			if got, _ := os.ReadFile(other); !bytes.Equal(got, want) {
				t.Error("the disk without the scratch header was written by the failing run")
			}

			// Forced onto the serial port ConOut already uses, every line
			// shows twice: once through ConOut, once through Serial IO.
			res = run("serial")
			if !res.Exited || res.Status != 0 {
				t.Fatalf("serial run: status %d (%s)", res.Status, res.Reason)
			}
			// OVMF's serial port reports 115200 baud, AAVMF's 38400.
			if n := strings.Count(res.Console, "] blocklog: done\n"); n != 2 || !serialTeed.MatchString(res.Console) {
				t.Errorf("serial tee: the last line shows %d times, want 2, and a line saying the port is teed", n)
			}
		})
	}
}
