package tests

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ociboot/ociboot/efirt/build"
	"github.com/ociboot/ociboot/efirt/qemu"
)

// arches are the architectures efirt runs on so far.
var arches = []string{"amd64", "arm64", "riscv64", "loong64"}

// emulatorRun is one arch under one QEMU, named for subtests.
type emulatorRun struct {
	name string
	cfg  qemu.Config
}

// emulatorRuns are every arch under the machine's QEMU, plus amd64 under
// trixie's QEMU 10 ("amd64-qemu10"), whose TCG runs AES-NI and SHA-NI
// several times faster.
func emulatorRuns() []emulatorRun {
	runs := []emulatorRun{{"amd64-qemu10", qemu.Config{Arch: "amd64", QEMU: qemu.Trixie}}}
	for _, arch := range arches {
		runs = append(runs, emulatorRun{arch, qemu.Config{Arch: arch}})
	}
	return runs
}

// cpuWithoutRNG is a QEMU CPU model per arch without a random-number
// instruction (RDRAND, RNDR), so randomness must come from the firmware.
// riscv64 has none (efirt does not use the Zkr seed CSR there); LoongArch
// has no such instruction at all.
var cpuWithoutRNG = map[string]string{"amd64": "qemu64", "arm64": "cortex-a57", "riscv64": "rv64", "loong64": "la464"}

// noSystemFirmware are the arches whose EDK2 the machine's own release
// (bookworm) does not package: their firmware comes from trixie only, so
// there is no older firmware to hold the program to.
var noSystemFirmware = map[string]bool{"riscv64": true, "loong64": true}

// selftestChecks are the lines the self-test must report as passed.
var selftestChecks = []string{"goroutines", "gc", "timers", "monotonic", "wallclock", "rand", "sha256", "tls", "dma", "mmap"}

// buildEFI builds pkg for arch into the test's temporary directory.
func buildEFI(t testing.TB, arch, pkg string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), filepath.Base(pkg)+".efi")
	res, err := build.Build(context.Background(), build.Options{Arch: arch, Package: pkg, Output: out, Dir: ".."})
	if err != nil {
		t.Fatalf("building %s for %s: %v", pkg, arch, err)
	}
	t.Logf("image %s: %d bytes, %d relocations, %d system-call sites rewritten", filepath.Base(out), res.Size, res.Relocs, res.Sites)
	return out
}

// boot runs efi under QEMU and returns the result; the console goes to the
// test log.
func boot(t *testing.T, cfg qemu.Config, efi string, args ...string) qemu.Result {
	t.Helper()
	var console strings.Builder
	cfg.Stdout = &console
	if cfg.Timeout == 0 {
		cfg.Timeout = 10 * time.Minute
	}
	cfg.FirstLineMarker = "selftest: Go "
	res, err := qemu.Run(context.Background(), cfg, efi, args)
	t.Logf("console:\n%s", console.String())
	if err != nil {
		t.Fatalf("qemu: %v", err)
	}
	return res
}

func TestSelftest(t *testing.T) {
	for _, arch := range arches {
		t.Run(arch, func(t *testing.T) {
			efi := buildEFI(t, arch, "./tests/selftest")
			st, err := os.Stat(efi)
			if err != nil {
				t.Fatal(err)
			}

			t.Run("checks", func(t *testing.T) {
				res := boot(t, qemu.Config{Arch: arch}, efi)
				requirePass(t, res)
				t.Logf("figures (%s, default firmware): image %d bytes; QEMU start to first Go line %.2fs, to exit %.2fs",
					arch, st.Size(), res.FirstOutput.Seconds(), res.Duration.Seconds())
			})

			t.Run("exit3", func(t *testing.T) {
				res := boot(t, qemu.Config{Arch: arch, Timeout: 3 * time.Minute}, efi, "exit3")
				if !res.Exited || res.Status != 3 {
					t.Fatalf("exit3: got status %d (%s), want the program's own status 3", res.Status, res.Reason)
				}
			})

			t.Run("panic", func(t *testing.T) {
				res := boot(t, qemu.Config{Arch: arch, Timeout: 3 * time.Minute}, efi, "panic")
				if !res.Exited || res.Status == 0 {
					t.Fatalf("panic: got status %d (%s), want a non-zero exit reported by the program", res.Status, res.Reason)
				}
				for _, want := range []string{"panic: assignment to entry in nil map", "goroutine ", "main.main.func1"} {
					if !strings.Contains(res.Console, want) {
						t.Errorf("panic: console lacks %q", want)
					}
				}
			})

			t.Run("nil", func(t *testing.T) {
				requireNilPanic(t, boot(t, qemu.Config{Arch: arch, Timeout: 3 * time.Minute}, efi, "nil"))
			})

			// A fault inside efirt goes on to the firmware's handler, which
			// the runner reports as a firmware failure at once.
			t.Run("kernel-fault", func(t *testing.T) {
				res := boot(t, qemu.Config{Arch: arch, Timeout: 3 * time.Minute}, efi, "kfault")
				if res.Exited || res.Status != qemu.StatusFirmwareFailure || !strings.Contains(res.Reason, "CPU exception") {
					t.Fatalf("kfault: status %d (%s), want a firmware-reported CPU exception", res.Status, res.Reason)
				}
				if strings.Contains(res.Console, "went unnoticed") {
					t.Errorf("kfault: the program went on after the kernel fault")
				}
			})

			// Without RDRAND or RNDR randomness must come from the
			// firmware's EFI_RNG_PROTOCOL, here backed by virtio-rng.
			t.Run("rng-protocol", func(t *testing.T) {
				cpu, ok := cpuWithoutRNG[arch]
				if !ok {
					t.Fatalf("no CPU model without a random-number instruction is known for %s", arch)
				}
				res := boot(t, qemu.Config{Arch: arch, Timeout: 3 * time.Minute, QEMUArgs: []string{"-cpu", cpu}}, efi, "rand")
				if !res.Exited || res.Status != 0 {
					t.Fatalf("rand: status %d (%s)", res.Status, res.Reason)
				}
				if !strings.Contains(res.Console, "selftest: entropy from EFI_RNG_PROTOCOL: ") {
					t.Errorf("randomness did not come from EFI_RNG_PROTOCOL")
				}
			})

			t.Run("system-firmware", func(t *testing.T) {
				if noSystemFirmware[arch] {
					t.Logf("%s: not run: bookworm packages no EDK2 for this arch", arch)
					return
				}
				fw, err := qemu.SystemFirmware(qemu.Config{Arch: arch, Log: testLog{t}})
				if err != nil {
					t.Fatalf("system firmware: %v", err)
				}
				res := boot(t, qemu.Config{Arch: arch, Firmware: fw.Code}, efi)
				requirePass(t, res)
				requireNilPanic(t, boot(t, qemu.Config{Arch: arch, Firmware: fw.Code, Timeout: 3 * time.Minute}, efi, "nil"))
				t.Logf("figures (%s, %s): QEMU start to first Go line %.2fs, to exit %.2fs",
					arch, fw.Version, res.FirstOutput.Seconds(), res.Duration.Seconds())
			})
		})
	}
}

var statsLine = regexp.MustCompile(`selftest: efirt +threads created (\d+), ENOSYS (\d+)`)

// requirePass checks that every check passed, the verdict and exit status
// say so, and efirt served every system call the program made.
func requirePass(t *testing.T, res qemu.Result) {
	t.Helper()
	if !res.Exited || res.Status != 0 {
		t.Errorf("status %d (%s), want 0", res.Status, res.Reason)
	}
	for _, c := range selftestChecks {
		if !regexp.MustCompile(`selftest: ` + c + ` +ok `).MatchString(res.Console) {
			t.Errorf("check %s did not pass", c)
		}
	}
	if !strings.Contains(res.Console, "selftest: verdict PASS") {
		t.Errorf("no PASS verdict")
	}
	m := statsLine.FindStringSubmatch(res.Console)
	if m == nil {
		t.Fatalf("no efirt statistics line")
	}
	if m[2] != "0" || strings.Contains(res.Console, "unsupported system call") {
		t.Errorf("%s system calls reached ENOSYS", m[2])
	}
	t.Logf("threads created by the runtime: %s", m[1])
}

// requireNilPanic checks that a nil dereference faulted and became the
// runtime's usual panic, first recovered, then fatal.
func requireNilPanic(t *testing.T, res qemu.Result) {
	t.Helper()
	if !res.Exited || res.Status != 2 {
		t.Fatalf("nil: got status %d (%s), want the runtime's panic status 2", res.Status, res.Reason)
	}
	for _, want := range []string{
		"selftest: recovered runtime error: invalid memory address or nil pointer dereference",
		"[signal SIGSEGV: segmentation violation code=0x1 addr=0x0",
		"main.main()",
	} {
		if !strings.Contains(res.Console, want) {
			t.Errorf("nil: console lacks %q", want)
		}
	}
	if strings.Contains(res.Console, "wrote through a nil pointer") || strings.Contains(res.Console, "are not caught") {
		t.Errorf("nil: a dereference of address 0 went unnoticed")
	}
}

type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
