//go:build linux

package qemu

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// The arm64 machine is virt with the fast pointer-authentication hash, and
// shares every other option with amd64.
func TestCommandLineArm64(t *testing.T) {
	arm := commandLine(Config{Arch: "arm64", MemoryMiB: 1024}, "code.fd", "vars.fd", "esp")
	x86 := commandLine(Config{Arch: "amd64", MemoryMiB: 1024}, "code.fd", "vars.fd", "esp")
	joined := strings.Join(arm, " ")
	for _, want := range []string{"-M virt", "-cpu max,pauth-impdef=on", "-accel tcg", "unit=0,readonly=on,file=code.fd", "fat:rw:esp"} {
		if !strings.Contains(joined, want) {
			t.Errorf("arm64 command line lacks %q: %s", want, joined)
		}
	}
	if strings.Contains(joined, "q35") {
		t.Errorf("arm64 command line names the x86 machine: %s", joined)
	}
	if len(arm) != len(x86) || !slices.Equal(arm[6:], x86[6:]) {
		t.Errorf("arm64 and amd64 differ beyond machine and CPU:\n%v\n%v", arm, x86)
	}
}

func TestWriteESPArm64(t *testing.T) {
	dir := t.TempDir()
	if err := writeESP(dir, "arm64", []byte("MZ"), []string{"a"}); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"EFI/BOOT/BOOTAA64.EFI", "EFI/BOOT/BOOTAA64.ARG"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Error(err)
		}
	}
}

// TestFindFirmwareArm64 uses the shared cache (fetching trixie's AAVMF into
// it once), as Run does.
func TestFindFirmwareArm64(t *testing.T) {
	var log strings.Builder
	fw, err := FindFirmware(Config{Arch: "arm64", Log: &log})
	t.Log(log.String())
	if err != nil {
		t.Fatal(err)
	}
	if fw.Source != "cache" || !strings.Contains(fw.Version, "2025") || !strings.Contains(fw.Version, "qemu-efi-aarch64") {
		t.Errorf("got %+v, want trixie's edk2 2025 from the cache", fw)
	}
	for _, f := range []string{fw.Code, fw.Vars} {
		if st, err := os.Stat(f); err != nil || st.Size() == 0 {
			t.Errorf("%s: %v", f, err)
		}
	}
}
