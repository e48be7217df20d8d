//go:build linux

// Package payload provides what the end-to-end tests boot: a Debian kernel
// fetched once into the cache, and an initramfs whose /init (tests/initrd)
// prints a marker and the kernel command line, then powers off.
package payload

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/cavaliergopher/cpio"
	"github.com/ociboot/ociboot/efirt/qemu"
)

// Lines the initramfs prints on the console (see tests/initrd).
const (
	Marker        = "ociboot-initrd: userspace reached"
	CmdlinePrefix = "ociboot-initrd: cmdline: "
)

// initPackage is the /init program's import path.
const initPackage = "github.com/ociboot/ociboot/tests/initrd"

// Initrd builds tests/initrd for goarch (CGO_ENABLED=0, static) and returns
// a gzip'd newc cpio archive with it as /init and the /dev/console node the
// kernel opens for init's standard streams. The archive is reproducible:
// the same program gives the same bytes.
func Initrd(ctx context.Context, goarch string) ([]byte, error) {
	dir, err := os.MkdirTemp("", "ociboot-initrd-")
	if err != nil {
		return nil, fmt.Errorf("payload: %w", err)
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "init")
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, initPackage)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+goarch)
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("payload: building %s for %s: %w: %s", initPackage, goarch, err, out)
	}
	prog, err := os.ReadFile(bin)
	if err != nil {
		return nil, fmt.Errorf("payload: %w", err)
	}
	return pack(prog)
}

// pack writes the initramfs around the /init program.
func pack(prog []byte) ([]byte, error) {
	var raw bytes.Buffer
	w := cpio.NewWriter(&raw)
	var epoch time.Time // reproducible: every ModTime is 1970
	entries := []struct {
		hdr  cpio.Header
		data []byte
	}{
		{cpio.Header{Name: "dev", Mode: cpio.TypeDir | 0o755, ModTime: epoch}, nil},
		// The kernel opens /dev/console for init's standard streams before
		// anything mounts devtmpfs. Its device number is set below.
		{cpio.Header{Name: consoleName, Mode: cpio.TypeChar | 0o600, ModTime: epoch}, nil},
		{cpio.Header{Name: "proc", Mode: cpio.TypeDir | 0o555, ModTime: epoch}, nil},
		{cpio.Header{Name: "sys", Mode: cpio.TypeDir | 0o555, ModTime: epoch}, nil},
		{cpio.Header{Name: "init", Mode: cpio.TypeReg | 0o755, ModTime: epoch, Size: int64(len(prog))}, prog},
	}
	for _, e := range entries {
		h := e.hdr
		if err := w.WriteHeader(&h); err != nil {
			return nil, fmt.Errorf("payload: cpio %s: %w", h.Name, err)
		}
		if _, err := w.Write(e.data); err != nil {
			return nil, fmt.Errorf("payload: cpio %s: %w", h.Name, err)
		}
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("payload: cpio: %w", err)
	}
	archive := raw.Bytes()
	if err := setRdev(archive, consoleName, 5, 1); err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if _, err := zw.Write(archive); err != nil {
		return nil, fmt.Errorf("payload: gzip: %w", err)
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("payload: gzip: %w", err)
	}
	return buf.Bytes(), nil
}

const consoleName = "dev/console"

// newc header layout: 110 ASCII bytes, eight hex digits per field.
const (
	newcHeaderLen = 110
	newcRdevMajor = 78
	newcRdevMinor = 86
)

// setRdev fills in the device number of the named entry of a newc
// archive: the cpio package writes rdevmajor/rdevminor as zero.
func setRdev(archive []byte, name string, major, minor int) error {
	i := bytes.Index(archive, []byte(name+"\x00"))
	h := i - newcHeaderLen
	if i < 0 || h < 0 || !bytes.HasPrefix(archive[h:], []byte("07070")) {
		return fmt.Errorf("payload: cpio entry %s not found", name)
	}
	copy(archive[h+newcRdevMajor:], fmt.Sprintf("%08x%08x", major, minor))
	return nil
}

// Kernel is a Debian kernel image in the cache.
type Kernel struct {
	Path    string // the vmlinuz file (a PE image with the EFI stub on amd64 and arm64)
	Package string // e.g. linux-image-6.1.0-50-cloud-amd64
	Version string // the package version
	Suite   string // e.g. bookworm
}

// kernelSource says which Debian kernel to boot per GOARCH.
var kernelSource = map[string]struct{ suite, debArch, meta string }{
	"amd64":   {"bookworm", "amd64", "linux-image-cloud-amd64"},
	"arm64":   {"bookworm", "arm64", "linux-image-cloud-arm64"},
	"riscv64": {"trixie", "riscv64", "linux-image-riscv64"},
}

// FetchKernel returns Debian's kernel for goarch from the cache
// (qemu.CacheDir()/kernels), downloading it the first time with a private
// apt configuration (no change to the machine's apt, no foreign
// architecture added). Concurrent callers in any process fetch once.
func FetchKernel(goarch string, log io.Writer) (Kernel, error) {
	src, ok := kernelSource[goarch]
	if !ok {
		return Kernel{}, fmt.Errorf("payload: no Debian kernel known for %s", goarch)
	}
	cache, err := qemu.CacheDir()
	if err != nil {
		return Kernel{}, err
	}
	root := filepath.Join(cache, "kernels")
	final := filepath.Join(root, src.suite+"-"+src.debArch)
	if k, ok := readKernel(final, src.suite); ok {
		return k, nil
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return Kernel{}, fmt.Errorf("payload: kernel cache: %w", err)
	}
	unlock, err := qemu.LockFile(final + ".lock")
	if err != nil {
		return Kernel{}, err
	}
	defer unlock()
	if k, ok := readKernel(final, src.suite); ok {
		return k, nil
	}
	if err := os.RemoveAll(final); err != nil {
		return Kernel{}, fmt.Errorf("payload: removing an incomplete kernel cache: %w", err)
	}
	tmp, err := os.MkdirTemp(root, filepath.Base(final)+".tmp-")
	if err != nil {
		return Kernel{}, fmt.Errorf("payload: %w", err)
	}
	defer os.RemoveAll(tmp)

	apt := &qemu.PrivateApt{Suite: src.suite, Arch: src.debArch, Dir: filepath.Join(tmp, "apt"), Log: log}
	if err := apt.Update(); err != nil {
		return Kernel{}, fmt.Errorf("payload: %w", err)
	}
	// The metapackage depends on the current versioned image package.
	dep, err := apt.Field(src.meta, "Depends")
	if err != nil {
		return Kernel{}, fmt.Errorf("payload: %w", err)
	}
	pkg := strings.Fields(strings.Split(dep, ",")[0])[0]
	debs, err := apt.Download(tmp, pkg)
	if err != nil {
		return Kernel{}, fmt.Errorf("payload: %w", err)
	}
	version, err := qemu.DebVersion(debs[0])
	if err != nil {
		return Kernel{}, fmt.Errorf("payload: %w", err)
	}
	unpacked := filepath.Join(tmp, "root")
	if err := qemu.ExtractDeb(debs[0], unpacked); err != nil {
		return Kernel{}, fmt.Errorf("payload: %w", err)
	}
	images, _ := filepath.Glob(filepath.Join(unpacked, "boot", "vmlinu[xz]-*"))
	if len(images) != 1 {
		return Kernel{}, fmt.Errorf("payload: %s %s: expected one /boot/vmlinuz-*, found %d", pkg, version, len(images))
	}
	out := filepath.Join(tmp, "kernel")
	if err := os.Mkdir(out, 0o755); err != nil {
		return Kernel{}, fmt.Errorf("payload: %w", err)
	}
	if err := os.Rename(images[0], filepath.Join(out, "vmlinuz")); err != nil {
		return Kernel{}, fmt.Errorf("payload: %w", err)
	}
	info := pkg + "\n" + version + "\n"
	if err := os.WriteFile(filepath.Join(out, "PACKAGE"), []byte(info), 0o644); err != nil {
		return Kernel{}, fmt.Errorf("payload: %w", err)
	}
	if err := os.Rename(out, final); err != nil {
		return Kernel{}, fmt.Errorf("payload: moving the kernel into the cache: %w", err)
	}
	k, ok := readKernel(final, src.suite)
	if !ok {
		return Kernel{}, fmt.Errorf("payload: kernel cache %s incomplete after fetching", final)
	}
	return k, nil
}

// readKernel reports the kernel in a complete cache entry.
func readKernel(dir, suite string) (Kernel, bool) {
	info, err := os.ReadFile(filepath.Join(dir, "PACKAGE"))
	if err != nil {
		return Kernel{}, false
	}
	lines := strings.Split(strings.TrimSpace(string(info)), "\n")
	k := Kernel{Path: filepath.Join(dir, "vmlinuz"), Suite: suite}
	if len(lines) != 2 {
		return Kernel{}, false
	}
	k.Package, k.Version = lines[0], lines[1]
	if _, err := os.Stat(k.Path); err != nil {
		return Kernel{}, false
	}
	return k, true
}
