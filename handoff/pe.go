package handoff

import (
	"encoding/binary"
	"fmt"
	"runtime"
)

// PE machine types of the architectures ociboot boots.
var peMachines = map[string]uint16{"amd64": 0x8664, "arm64": 0xaa64, "riscv64": 0x5064, "loong64": 0x6264}

// PEMachine reads the machine type of a PE image and refuses one built for
// another architecture than the loader's, before the firmware sees it.
func PEMachine(img []byte) (uint16, error) {
	if len(img) < 0x40 || img[0] != 'M' || img[1] != 'Z' {
		return 0, fmt.Errorf("handoff: the kernel is not a PE image (no MZ header): an EFI-stub kernel or UKI is needed")
	}
	off := int(binary.LittleEndian.Uint32(img[0x3c:]))
	if off < 0x40 || off+6 > len(img) || string(img[off:off+4]) != "PE\x00\x00" {
		return 0, fmt.Errorf("handoff: the kernel's PE header is missing or out of range")
	}
	m := binary.LittleEndian.Uint16(img[off+4:])
	if want := peMachines[runtime.GOARCH]; m != want {
		return m, fmt.Errorf("handoff: the kernel is for %s (PE machine %#x), this loader runs on %s", machineName(m), m, runtime.GOARCH)
	}
	return m, nil
}

func machineName(m uint16) string {
	for arch, v := range peMachines {
		if v == m {
			return arch
		}
	}
	return "an unknown architecture"
}
