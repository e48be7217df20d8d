//go:build linux

package qemu

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWriteESPWithArgs(t *testing.T) {
	dir := t.TempDir()
	args := []string{"-v", "", "héllo wörld", "a b"}
	if err := writeESP(dir, "amd64", []byte("program"), args); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(dir, "EFI/BOOT/BOOTX64.EFI"))
	if err != nil || string(got) != "program" {
		t.Fatalf("BOOTX64.EFI = %q, %v", got, err)
	}
	got, err = os.ReadFile(filepath.Join(dir, "EFI/BOOT/BOOTX64.ARG"))
	if want := "-v\n\nhéllo wörld\na b\n"; err != nil || string(got) != want {
		t.Fatalf("BOOTX64.ARG = %q, %v; want %q", got, err, want)
	}
}

func TestWriteESPWithoutArgs(t *testing.T) {
	dir := t.TempDir()
	if err := writeESP(dir, "amd64", []byte("program"), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "EFI/BOOT/BOOTX64.ARG")); !os.IsNotExist(err) {
		t.Errorf("BOOTX64.ARG written without args (stat: %v)", err)
	}
}

func TestArgsRejectNewlineAndBadUTF8(t *testing.T) {
	for _, args := range [][]string{{"ok", "two\nlines"}, {"\xff"}} {
		if _, err := encodeArgs(args); err == nil {
			t.Errorf("encodeArgs(%q) accepted", args)
		}
	}
	// Run refuses before touching QEMU, firmware or the file.
	_, err := Run(context.Background(), Config{}, "/nonexistent.efi", []string{"a\nb"})
	if err == nil || !strings.Contains(err.Error(), "newline") {
		t.Errorf("Run with a newline in an argument: %v", err)
	}
}

func TestUnsupportedArch(t *testing.T) {
	for _, f := range []func() error{
		func() error { _, err := Run(context.Background(), Config{Arch: "mips64"}, "x.efi", nil); return err },
		func() error { _, err := FindQEMU(Config{Arch: "mips64"}); return err },
		func() error { _, err := FindFirmware(Config{Arch: "mips64"}); return err },
	} {
		if err := f(); err == nil || !strings.Contains(err.Error(), "not supported yet") {
			t.Errorf("got %v, want a 'not supported yet' error", err)
		}
	}
}

func TestRunUnreadableProgram(t *testing.T) {
	_, err := Run(context.Background(), Config{}, filepath.Join(t.TempDir(), "missing.efi"), nil)
	if err == nil || !strings.Contains(err.Error(), "reading the EFI program") {
		t.Errorf("got %v", err)
	}
}

func TestWriteBeside(t *testing.T) {
	dir := t.TempDir()
	if err := writeESP(dir, "amd64", []byte("program"), nil); err != nil {
		t.Fatal(err)
	}
	if err := writeBeside(dir, map[string][]byte{"ociboot.json": []byte("{}")}); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "EFI", "BOOT", "ociboot.json")); err != nil || string(b) != "{}" {
		t.Errorf("beside file: %q %v", b, err)
	}
	if err := writeBeside(dir, map[string][]byte{"../x": nil}); err == nil {
		t.Error("a path escaping EFI/BOOT was accepted")
	}
}
