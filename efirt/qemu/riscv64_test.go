//go:build linux

package qemu

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// riscv64 boots EDK2 through the trampoline: no pflash, the code and
// variables loaded raw at the flash addresses, and the trampoline file
// holding exactly "lui t0, 0x20000; jr t0".
func TestCommandLineRiscv64(t *testing.T) {
	args := commandLine(Config{Arch: "riscv64", MemoryMiB: 1024}, "code.fd", "vars.fd", "esp")
	joined := strings.Join(args, " ")
	for _, want := range []string{"-M virt", "-accel tcg",
		"loader,file=code.fd,addr=0x20000000,force-raw=on", "loader,file=vars.fd,addr=0x22000000,force-raw=on", "fat:rw:esp"} {
		if !strings.Contains(joined, want) {
			t.Errorf("riscv64 command line lacks %q: %s", want, joined)
		}
	}
	if strings.Contains(joined, "pflash") {
		t.Errorf("riscv64 command line uses pflash: %s", joined)
	}
	var kernel string
	for i, a := range args {
		if a == "-kernel" && i+1 < len(args) {
			kernel = args[i+1]
		}
	}
	b, err := os.ReadFile(kernel)
	if err != nil {
		t.Fatalf("trampoline %q: %v", kernel, err)
	}
	if !bytes.Equal(b, []byte{0xb7, 0x02, 0x00, 0x20, 0x67, 0x80, 0x02, 0x00}) {
		t.Errorf("trampoline is % x", b)
	}
	// The other arches keep their pflash drives.
	if x86 := strings.Join(commandLine(Config{Arch: "amd64", MemoryMiB: 1024}, "code.fd", "vars.fd", "esp"), " "); !strings.Contains(x86, "if=pflash,format=raw,unit=1,file=vars.fd") {
		t.Errorf("amd64 lost its pflash: %s", x86)
	}
}

func TestWriteESPRiscv64(t *testing.T) {
	dir := t.TempDir()
	if err := writeESP(dir, "riscv64", []byte("MZ"), []string{"a"}); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"EFI/BOOT/BOOTRISCV64.EFI", "EFI/BOOT/BOOTRISCV64.ARG"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Error(err)
		}
	}
}

// TestFindFirmwareRiscv64 uses the shared cache (fetching trixie's
// qemu-efi-riscv64 into it once), as Run does.
func TestFindFirmwareRiscv64(t *testing.T) {
	var log strings.Builder
	fw, err := FindFirmware(Config{Arch: "riscv64", Log: &log})
	t.Log(log.String())
	if err != nil {
		t.Fatal(err)
	}
	if fw.Source != "cache" || !strings.Contains(fw.Version, "2025") || !strings.Contains(fw.Version, "qemu-efi-riscv64") {
		t.Errorf("got %+v, want trixie's edk2 2025 from the cache", fw)
	}
	for _, f := range []string{fw.Code, fw.Vars} {
		if st, err := os.Stat(f); err != nil || st.Size() == 0 {
			t.Errorf("%s: %v", f, err)
		}
	}
}
