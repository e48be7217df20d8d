package tests

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ociboot/ociboot/efirt/qemu"
	"github.com/ociboot/ociboot/observe"
)

// programLog cuts the program's own log out of a run's console text: from
// its first line (efirt's early notes, then observe's) to efirt's exit line.
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

// earlyNotes checks and cuts off the start of a recovered log: efirt's
// notes from before the logger started (riscv64 sets the clock), which the
// ring holds ahead of observe's lines. Each must be on the console, where
// the firmware's terminal may have broken it at the screen's width.
func earlyNotes(t *testing.T, log, console string) string {
	t.Helper()
	flat := strings.ReplaceAll(console, "\n", "")
	for strings.HasPrefix(log, "efirt: ") {
		line, rest, _ := strings.Cut(log, "\n")
		if !strings.Contains(flat, line) {
			t.Errorf("the ring's note %q is not on the console", line)
		}
		log = rest
	}
	return log
}

// acct is the number of the acct system call, which efirt does not serve.
var acct = map[string]int{"amd64": 163, "arm64": 89, "riscv64": 89, "loong64": 89}

// exitLine is efirt's last line for status n, which it saves as the exit
// text after the ring's last flush.
func exitLine(n int) string { return fmt.Sprintf("efirt: exit_group(%d)\n", n) }

// TestBlockLog boots tests/blocklog with two extra disks: a scratch disk and
// a disk of random bytes without the scratch header. The log recovered from
// the scratch disk must equal what the serial console showed, the other disk
// must come out unchanged, the log of a failing run must be recovered by
// `ociboot logs` with its error block, and a run that panics must leave its
// log followed by the panic's text and efirt's exit line.
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
			if rec.Last() == nil || earlyNotes(t, rec.Last().Text, res.Console) != serial || rec.Torn != 0 {
				t.Errorf("ring text differs from the serial console's\nring:\n%v\nserial:\n%s", rec.Last(), serial)
			}
			if rec.Last() != nil && (rec.Last().Exit != exitLine(0) || len(rec.Notes) != 0) {
				t.Errorf("exit text %q, notes %q; want %q", rec.Last().Exit, rec.Notes, exitLine(0))
			}
			for _, s := range []string{"boot timeline", "actor ", "blocklog: done", "serial port 0 is on ConOut already",
				"] blocklog: calling acct\nefirt: unsupported system call " + strconv.Itoa(acct[arch]) + " returns ENOSYS\n["} {
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
			if earlyNotes(t, string(out), res.Console) != programLog(t, res.Console)+observe.ExitMarker+exitLine(1) {
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

			// A goroutine panics: the runtime's crash text goes to fd 2
			// and the program exits through exit_group(2) with no Go code
			// left to flush the ring. efirt writes the console's tail.
			res = run("panic")
			if !res.Exited || res.Status != 2 {
				t.Fatalf("panicking run: status %d (%s), want 2", res.Status, res.Reason)
			}
			out, err = exec.Command(ociboot, "logs", scratch).Output()
			if err != nil {
				t.Fatalf("ociboot logs: %v", err)
			}
			t.Logf("ociboot logs:\n%s", out)
			log, exit, ok := strings.Cut(string(out), observe.ExitMarker)
			console := programLog(t, res.Console) + exitLine(2)
			if !ok || earlyNotes(t, log, res.Console)+exit != console {
				t.Errorf("ociboot logs is not the panicking run's console with the exit text marked; console:\n%s", console)
			}
			for _, s := range []string{"blocklog: this line is logged but never flushed", "panic: assignment to entry in nil map", "\ngoroutine ", "main.main.func", exitLine(2)} {
				if !strings.Contains(exit, s) {
					t.Errorf("exit text lacks %q", s)
				}
			}
			if !strings.Contains(log, "] blocklog: ring on disk") || strings.Contains(log, "panic:") {
				t.Error("the ring's part of the log is not the flushed log")
			}
			if got, _ := os.ReadFile(other); !bytes.Equal(got, want) {
				t.Error("the disk without the scratch header was written by the panicking run")
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
