//go:build linux

package qemu

import (
	"bytes"
	"errors"
	"fmt"
	"github.com/ociboot/ociboot/efirt/build"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
)

// systemFirmwarePackage names, per arch, the machine's own firmware package
// (SystemFirmware's source); bookworm packages EDK2 for amd64 and arm64 only.
var systemFirmwarePackage = map[string]string{
	"amd64": "ovmf",
	"arm64": "qemu-efi-aarch64",
}

// qemuPackage names the QEMU binary and the Debian package shipping it.
var qemuPackage = map[string]struct{ binary, pkg string }{
	"amd64": {"qemu-system-x86_64", "qemu-system-x86"},
	"arm64": {"qemu-system-aarch64", "qemu-system-arm"},
	// loong64 runs trixie's QEMU from the cache (trixie.go); this names
	// the binary only.
	"loong64": {"qemu-system-loongarch64", "qemu-system-misc"},
	"riscv64": {"qemu-system-riscv64", "qemu-system-misc"},
}

func errUnsupportedArch(arch string) error {
	have := make([]string, 0, len(qemuPackage))
	for a := range qemuPackage {
		have = append(have, a)
	}
	slices.Sort(have)
	return fmt.Errorf("qemu: arch %q is not supported yet (have %s)", arch, strings.Join(have, ", "))
}

func archOf(cfg Config) string {
	if cfg.Arch == "" {
		return "amd64"
	}
	return cfg.Arch
}

func logf(w io.Writer, format string, args ...any) {
	if w != nil {
		fmt.Fprintf(w, "qemu: "+format+"\n", args...)
	}
}

// cacheDir is where fetched firmware is kept across runs: the same cache
// the image builder uses.
func cacheDir() (string, error) { return build.CacheDir() }

// FindQEMU returns the qemu-system binary for the arch: the machine's,
// installing the Debian package when missing and running as root, or
// trixie's from the cache when cfg.QEMU (or the arch) asks for it.
func FindQEMU(cfg Config) (string, error) {
	arch := archOf(cfg)
	trixie, err := wantsTrixie(cfg)
	if err != nil {
		return "", err
	}
	if trixie {
		return trixieQEMUFor(cfg)
	}
	q, ok := qemuPackage[arch]
	if !ok {
		return "", errUnsupportedArch(arch)
	}
	if p, err := exec.LookPath(q.binary); err == nil {
		logf(cfg.Log, "using %s", p)
		return p, nil
	}
	// The system's firmware package comes along where the machine's suite
	// has one (bookworm has none for riscv64): it is the firmware of last
	// resort.
	pkgs := []string{q.pkg}
	if fw := systemFirmwarePackage[arch]; fw != "" {
		pkgs = append(pkgs, fw)
	}
	logf(cfg.Log, "%s not found; installing the Debian packages %s", q.binary, strings.Join(pkgs, " "))
	if err := aptInstall(cfg.Log, pkgs...); err != nil {
		return "", fmt.Errorf("%s not found and not installed (install the Debian package %s, e.g. apt-get install %s): %w", q.binary, q.pkg, strings.Join(pkgs, " "), err)
	}
	p, err := exec.LookPath(q.binary)
	if err != nil {
		return "", fmt.Errorf("%s still not found after installing %s: %w", q.binary, q.pkg, err)
	}
	logf(cfg.Log, "using %s", p)
	return p, nil
}

// aptMu keeps this process's installs from queueing on dpkg's lock one
// behind the other with the same packages.
var aptMu sync.Mutex

// aptInstall installs Debian packages with the system's apt, updating the
// package lists only when they are missing or the first attempt fails.
func aptInstall(log io.Writer, pkgs ...string) error {
	if os.Geteuid() != 0 {
		return errors.New("installing needs root")
	}
	aptGet, err := exec.LookPath("apt-get")
	if err != nil {
		return fmt.Errorf("no apt-get on this machine: %w", err)
	}
	aptMu.Lock()
	defer aptMu.Unlock()
	// Parallel test binaries may install at once; apt waits for dpkg's
	// lock below but fails at once on the package lists' lock.
	if dir, err := cacheDir(); err == nil && os.MkdirAll(dir, 0o755) == nil {
		unlock, err := lockFile(filepath.Join(dir, "apt.lock"))
		if err != nil {
			return err
		}
		defer unlock()
	}
	// Other processes (parallel test binaries) may be installing too: wait
	// for dpkg's lock rather than fail.
	lockWait := []string{"-o", "DPkg::Lock::Timeout=600"}
	install := slices.Concat(lockWait, []string{"install", "-y", "--no-install-recommends"}, pkgs)
	update := slices.Concat(lockWait, []string{"update"})
	if !haveAptLists() {
		if err := runApt(log, "", aptGet, update); err != nil {
			return err
		}
	}
	if err := runApt(log, "", aptGet, install); err == nil {
		return nil
	}
	logf(log, "install failed; updating the package lists and retrying")
	if err := runApt(log, "", aptGet, update); err != nil {
		return err
	}
	return runApt(log, "", aptGet, install)
}

// haveAptLists tells whether apt has package lists to install from.
func haveAptLists() bool {
	m, _ := filepath.Glob("/var/lib/apt/lists/*_Packages*")
	return len(m) > 0
}

// runApt runs apt-get in dir non-interactively, copying its output to log
// and keeping the end of it for the error.
func runApt(log io.Writer, dir, aptGet string, args []string) error {
	logf(log, "running apt-get %s", strings.Join(args, " "))
	var tail bytes.Buffer
	cmd := exec.Command(aptGet, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	out := io.Writer(&tail)
	if log != nil {
		out = io.MultiWriter(&tail, log)
	}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("apt-get %s: %w: %s", strings.Join(args, " "), err, lastLines(tail.String(), 5))
	}
	return nil
}

// lastLines returns the last n non-empty lines of s joined by "; ".
func lastLines(s string, n int) string {
	var lines []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "; ")
}
