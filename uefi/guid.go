package uefi

import "fmt"

// GUID is an EFI_GUID in its in-memory (mixed-endian) layout.
type GUID [16]byte

// NewGUID builds a GUID from its textual fields
// (aaaaaaaa-bbbb-cccc-dddd-dddddddddddd).
func NewGUID(a uint32, b, c uint16, d [8]byte) GUID {
	return GUID{byte(a), byte(a >> 8), byte(a >> 16), byte(a >> 24), byte(b), byte(b >> 8), byte(c), byte(c >> 8),
		d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]}
}

func (g GUID) String() string {
	return fmt.Sprintf("%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
		g[3], g[2], g[1], g[0], g[5], g[4], g[7], g[6], g[8], g[9], g[10], g[11], g[12], g[13], g[14], g[15])
}

// Protocol GUIDs (UEFI 2.10).
var (
	LoadedImageProtocolGUID = NewGUID(0x5b1b31a1, 0x9562, 0x11d2, [8]byte{0x8e, 0x3f, 0x00, 0xa0, 0xc9, 0x69, 0x72, 0x3b})
	SimpleFileSystemGUID    = NewGUID(0x964e5b22, 0x6459, 0x11d2, [8]byte{0x8e, 0x39, 0x00, 0xa0, 0xc9, 0x69, 0x72, 0x3b})
	RNGProtocolGUID         = NewGUID(0x3152bca5, 0xeade, 0x433d, [8]byte{0x86, 0x2e, 0xc0, 0x1c, 0xdc, 0x29, 0x1f, 0x44})
)
