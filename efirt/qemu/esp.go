//go:build linux

package qemu

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"unicode/utf8"
)

// bootName is the removable-media boot path the firmware loads by default.
var bootName = map[string]string{
	"amd64":   "BOOTX64",
	"arm64":   "BOOTAA64",
	"loong64": "BOOTLOONGARCH64",
	"riscv64": "BOOTRISCV64",
}

// encodeArgs renders program arguments as the .ARG file: each argument
// followed by '\n', UTF-8, so the guest splits on '\n' and drops the final
// empty piece (an empty argument is an empty line).
func encodeArgs(args []string) ([]byte, error) {
	var b strings.Builder
	for i, a := range args {
		if strings.ContainsRune(a, '\n') {
			return nil, fmt.Errorf("argument %d (%q) contains a newline, which the .ARG file cannot carry", i, a)
		}
		if !utf8.ValidString(a) {
			return nil, fmt.Errorf("argument %d (%q) is not valid UTF-8", i, a)
		}
		b.WriteString(a)
		b.WriteByte('\n')
	}
	return []byte(b.String()), nil
}

// writeESP lays out dir as an EFI system partition that boots program with
// args: EFI/BOOT/<name>.EFI and, when args are given, EFI/BOOT/<name>.ARG.
func writeESP(dir, arch string, program []byte, args []string) error {
	name, ok := bootName[arch]
	if !ok {
		return errUnsupportedArch(arch)
	}
	var argFile []byte
	if len(args) > 0 {
		var err error
		if argFile, err = encodeArgs(args); err != nil {
			return err
		}
	}
	boot := filepath.Join(dir, "EFI", "BOOT")
	if err := os.MkdirAll(boot, 0o755); err != nil {
		return fmt.Errorf("creating ESP: %w", err)
	}
	if err := os.WriteFile(filepath.Join(boot, name+".EFI"), program, 0o644); err != nil {
		return fmt.Errorf("writing program to ESP: %w", err)
	}
	if argFile != nil {
		if err := os.WriteFile(filepath.Join(boot, name+".ARG"), argFile, 0o644); err != nil {
			return fmt.Errorf("writing arguments to ESP: %w", err)
		}
	}
	return nil
}

// writeBeside writes files next to the program in dir's EFI/BOOT.
func writeBeside(dir string, files map[string][]byte) error {
	for name, data := range files {
		if name == "" || filepath.Base(name) != name {
			return fmt.Errorf("file %q to place beside the program is not a plain file name", name)
		}
		if err := os.WriteFile(filepath.Join(dir, "EFI", "BOOT", name), data, 0o644); err != nil {
			return fmt.Errorf("writing %s to ESP: %w", name, err)
		}
	}
	return nil
}
