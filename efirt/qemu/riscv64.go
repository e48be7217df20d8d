//go:build linux

package qemu

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
)

// riscv64 on QEMU 7.2's virt machine: pflash cannot hold the firmware
// (-M virt,pflash0= is not supported, and -drive if=pflash loops in M-mode),
// so OpenSBI starts a two-instruction trampoline as the "kernel" in S-mode,
// and the trampoline jumps to EDK2's code loaded at the flash address. The
// variables then live in RAM only.

const (
	riscvCodeAddr = "0x20000000"
	riscvVarsAddr = "0x22000000"
)

// riscvTramp is "lui t0, 0x20000; jr t0": jump to the firmware at
// 0x20000000.
var riscvTramp = []byte{0xb7, 0x02, 0x00, 0x20, 0x67, 0x80, 0x02, 0x00}

func init() { archFirmwareArgs["riscv64"] = riscv64FirmwareArgs }

func riscv64FirmwareArgs(code, vars string) []string {
	return []string{
		"-kernel", optValue(riscvTrampoline()),
		"-device", "loader,file=" + optValue(code) + ",addr=" + riscvCodeAddr + ",force-raw=on",
		"-device", "loader,file=" + optValue(vars) + ",addr=" + riscvVarsAddr + ",force-raw=on",
	}
}

// riscvTrampoline returns the path of the trampoline image in the cache,
// writing it when missing. If it cannot be written, QEMU's own error about
// the missing kernel file ends the run and names the path.
func riscvTrampoline() string {
	dir, err := cacheDir()
	if err != nil {
		dir = os.TempDir()
	}
	path := filepath.Join(dir, firmwareSubdir, "riscv64-tramp.bin")
	if b, err := os.ReadFile(path); err == nil && bytes.Equal(b, riscvTramp) {
		return path
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err == nil {
		// Write beside and rename, so a concurrent run never reads half.
		tmp := path + ".tmp-" + filepath.Base(os.Args[0]) + "-" + strconv.Itoa(os.Getpid())
		if os.WriteFile(tmp, riscvTramp, 0o644) == nil {
			os.Rename(tmp, path)
		}
	}
	return path
}
