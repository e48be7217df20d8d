//go:build linux

package qemu

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// logWriter sends the runner's messages to the test log.
type logWriter struct{ t *testing.T }

func (w logWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// firmwares are the firmware images the integration tests boot: trixie's
// (the default) and the system's (bookworm's here), given as Config.Firmware.
func firmwares(t *testing.T) map[string]string {
	sys, err := systemFirmware(logWriter{t})
	if err != nil {
		t.Fatal(err)
	}
	return map[string]string{"trixie": "", "system": sys.Code}
}

// noQEMUChildren fails the test if a QEMU started by this process is still
// around.
func noQEMUChildren(t *testing.T) {
	t.Helper()
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	me := strconv.Itoa(os.Getpid())
	for _, f := range stats {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...
		s := string(data)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		fields := strings.Fields(s[i+1:])
		if len(fields) > 1 && fields[1] == me && strings.Contains(s[:i], "qemu") {
			t.Errorf("QEMU still running or unreaped: %s", s[:i+1])
		}
	}
}

func writeProgram(t *testing.T, data []byte) string {
	p := filepath.Join(t.TempDir(), "prog.efi")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestRunProgramExits(t *testing.T) {
	for name, fw := range firmwares(t) {
		t.Run(name, func(t *testing.T) {
			prog := writeProgram(t, testProgram("hello from test\r\nefirt: exit_group(3)\r\n", endReturn))
			var out strings.Builder
			cfg := Config{Firmware: fw, Timeout: 2 * time.Minute, Stdout: &out, Log: logWriter{t}, FirstLineMarker: "hello from"}
			res, err := Run(context.Background(), cfg, prog, []string{"arg one", "two"})
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("result: status %d, %q, duration %v, first output %v", res.Status, res.Reason, res.Duration, res.FirstOutput)
			if res.Status != 3 || !res.Exited || res.Reason != "program exited with status 3" {
				t.Errorf("got %+v", res)
			}
			if res.FirstOutput <= 0 || res.FirstOutput > res.Duration {
				t.Errorf("first output %v, duration %v", res.FirstOutput, res.Duration)
			}
			if !strings.Contains(res.Console, "hello from test\nefirt: exit_group(3)\n") || strings.ContainsAny(res.Console, "\r\x1b") {
				t.Errorf("console %q", res.Console)
			}
			if out.String() != res.Console {
				t.Errorf("stdout %q differs from console %q", out.String(), res.Console)
			}
			noQEMUChildren(t)
		})
	}
}

func TestRunProgramCrashes(t *testing.T) {
	prog := writeProgram(t, testProgram("about to crash\r\n", endCrash))
	res, err := Run(context.Background(), Config{Log: logWriter{t}}, prog, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("result: %q after %v", res.Reason, res.Duration)
	if res.Status != StatusFirmwareFailure || res.Exited || !strings.Contains(res.Reason, "#UD - Invalid Opcode") {
		t.Errorf("got %+v", res)
	}
	// The grace period after the verdict lets the register dump arrive.
	if !strings.Contains(res.Console, "RIP") {
		t.Errorf("console lacks the register dump: %q", res.Console)
	}
}

func TestRunProgramReturnsWithoutMarker(t *testing.T) {
	prog := writeProgram(t, testProgram("no marker\r\n", endReturn))
	res, err := Run(context.Background(), Config{Log: logWriter{t}}, prog, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("result: %q after %v", res.Reason, res.Duration)
	if res.Status != StatusFirmwareFailure || !strings.Contains(res.Reason, "returned without reporting an exit status") {
		t.Errorf("got %+v", res)
	}
}

// TestRunNoValidProgram boots an ESP with a garbage BOOTX64.EFI and an
// empty ESP on both firmwares: the firmware gives up on the disk at once,
// and so must Run, well before the timeout.
func TestRunNoValidProgram(t *testing.T) {
	garbage := make([]byte, 64<<10)
	rand.Read(garbage)
	for name, fw := range firmwares(t) {
		for _, esp := range []struct {
			name     string
			populate func(string) error
		}{
			{"garbage", func(dir string) error { return writeESP(dir, "amd64", garbage, nil) }},
			{"empty", func(string) error { return nil }},
		} {
			t.Run(name+"/"+esp.name, func(t *testing.T) {
				cfg := Config{Firmware: fw, Timeout: 2 * time.Minute, Log: logWriter{t}}
				begin := time.Now()
				res, err := boot(context.Background(), cfg, esp.populate)
				if err != nil {
					t.Fatal(err)
				}
				t.Logf("result after %v: %q\nconsole:\n%s", time.Since(begin), res.Reason, res.Console)
				if res.Status != StatusFirmwareFailure || res.Exited {
					t.Errorf("status %d, exited %v, want firmware failure", res.Status, res.Exited)
				}
				if !strings.Contains(res.Reason, "BdsDxe: failed to load") && !strings.Contains(res.Reason, "No bootable option") {
					t.Errorf("reason %q does not say what the firmware said", res.Reason)
				}
				if took := time.Since(begin); took > 30*time.Second {
					t.Errorf("took %v; the failure should be caught at once", took)
				}
				noQEMUChildren(t)
			})
		}
	}
}

// TestRunTimeout runs a program that never exits, and one that the
// timeout catches while the firmware is still starting.
func TestRunTimeout(t *testing.T) {
	prog := writeProgram(t, testProgram("spinning\r\n", endHang))
	begin := time.Now()
	res, err := Run(context.Background(), Config{Timeout: 3 * time.Second, Log: logWriter{t}}, prog, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != StatusTimeout || res.Exited || res.Reason != "timeout after 3s" || !strings.Contains(res.Console, "spinning\n") {
		t.Errorf("got %+v", res)
	}
	if took := time.Since(begin); took > 15*time.Second {
		t.Errorf("took %v", took)
	}
	noQEMUChildren(t)

	begin = time.Now()
	res, err = Run(context.Background(), Config{Timeout: 200 * time.Millisecond, Log: logWriter{t}}, prog, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != StatusTimeout || res.Exited || res.Reason != "timeout after 200ms" {
		t.Errorf("got %+v", res)
	}
	if took := time.Since(begin); took > 10*time.Second {
		t.Errorf("took %v", took)
	}
	noQEMUChildren(t)
}

func TestRunCanceled(t *testing.T) {
	prog := writeProgram(t, testProgram("efirt: exit_group(0)\r\n", endReturn))
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	res, err := Run(ctx, Config{Log: logWriter{t}}, prog, nil)
	if !errors.Is(err, context.DeadlineExceeded) || res.Exited || !strings.HasPrefix(res.Reason, "canceled") {
		t.Errorf("got %+v, %v", res, err)
	}
	noQEMUChildren(t)
}

// TestRunQEMUFails makes QEMU itself refuse to start the machine.
func TestRunQEMUFails(t *testing.T) {
	prog := writeProgram(t, testProgram("efirt: exit_group(0)\r\n", endReturn))
	cfg := Config{Log: logWriter{t}, QEMUArgs: []string{"-device", "no-such-device"}}
	res, err := Run(context.Background(), cfg, prog, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != StatusFirmwareFailure || !strings.HasPrefix(res.Reason, "qemu exited: exit status 1: ") || !strings.Contains(res.Reason, "no-such-device") {
		t.Errorf("got %+v", res)
	}
}

// TestRunParallel boots two machines at once from the same firmware files,
// as parallel test binaries do.
func TestRunParallel(t *testing.T) {
	var wg sync.WaitGroup
	results := make([]Result, 2)
	errs := make([]error, 2)
	for i := range results {
		prog := writeProgram(t, testProgram(fmt.Sprintf("efirt: exit_group(%d)\r\n", 10+i), endReturn))
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = Run(context.Background(), Config{Timeout: 2 * time.Minute}, prog, nil)
		}()
	}
	wg.Wait()
	for i, res := range results {
		if errs[i] != nil || res.Status != 10+i || !res.Exited {
			t.Errorf("run %d: %+v, %v", i, res, errs[i])
		}
	}
	noQEMUChildren(t)
}
