package oci

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// ErrWrongArch is wrapped when a kernel is built for another architecture
// than the one being booted, or is no kernel image we can tell.
var ErrWrongArch = errors.New("kernel for another architecture")

// peMachines maps PE machine types to GOARCH names.
var peMachines = map[uint16]string{
	0x8664: "amd64",
	0xaa64: "arm64",
	0x5064: "riscv64",
	0x6264: "loong64",
	0x014c: "386",
	0x01c2: "arm",
	0x01c4: "arm",
}

// KernelArch tells which architecture a kernel image is for: a PE/EFI image
// by its machine type, a bare arm64 or riscv64 Image by its header magic,
// and a gzip'd Image (as arm64 distributions ship it) by inflating its
// first kilobytes. It also reports whether the image is a PE with a .linux
// section, i.e. a UKI.
func KernelArch(img []byte) (arch string, uki bool, err error) {
	if len(img) >= 2 && img[0] == 0x1f && img[1] == 0x8b {
		zr, err := gzip.NewReader(bytes.NewReader(img))
		if err != nil {
			return "", false, fmt.Errorf("gzip'd kernel: %w", err)
		}
		head := make([]byte, 4096)
		n, err := io.ReadFull(zr, head)
		if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
			return "", false, fmt.Errorf("gzip'd kernel: %w", err)
		}
		if n >= 2 && head[0] == 0x1f && head[1] == 0x8b {
			return "", false, errors.New("gzip'd kernel holds another gzip stream")
		}
		arch, _, err := KernelArch(head[:n])
		return arch, false, err
	}
	if len(img) >= 0x40 && img[0] == 'M' && img[1] == 'Z' {
		peOff := int(binary.LittleEndian.Uint32(img[0x3c:]))
		if peOff >= 0x40 && peOff+24 <= len(img) && string(img[peOff:peOff+4]) == "PE\x00\x00" {
			machine := binary.LittleEndian.Uint16(img[peOff+4:])
			a, ok := peMachines[machine]
			if !ok {
				return "", false, fmt.Errorf("PE image for unknown machine %#x", machine)
			}
			return a, peHasSection(img, peOff, ".linux"), nil
		}
		// arm64 and riscv64 Images start with "MZ" too (for their EFI
		// stub); without a PE header their own magic below decides.
	}
	if len(img) >= 0x40 {
		switch string(img[0x38:0x3c]) {
		case "ARMd":
			return "arm64", false, nil
		case "RSC\x05":
			return "riscv64", false, nil
		}
	}
	return "", false, errors.New("not a PE/EFI image nor a Linux arm64/riscv64 Image")
}

// peHasSection reports whether the PE image at peOff has a section name.
// Bounds are checked: img is untrusted until the arch check passes.
func peHasSection(img []byte, peOff int, name string) bool {
	coff := peOff + 4
	nsec := int(binary.LittleEndian.Uint16(img[coff+2:]))
	optSize := int(binary.LittleEndian.Uint16(img[coff+16:]))
	sec := coff + 20 + optSize
	for i := 0; i < nsec; i++ {
		off := sec + i*40
		if off+8 > len(img) || off < 0 {
			return false
		}
		if string(bytes.TrimRight(img[off:off+8], "\x00")) == name {
			return true
		}
	}
	return false
}

// checkKernelArch fails unless img is a kernel for arch.
func checkKernelArch(img []byte, arch string) (uki bool, err error) {
	got, uki, err := KernelArch(img)
	if err != nil {
		return false, fmt.Errorf("%w: %v", ErrWrongArch, err)
	}
	if got != arch {
		return false, fmt.Errorf("%w: kernel is for %s, booting %s", ErrWrongArch, got, arch)
	}
	return uki, nil
}
