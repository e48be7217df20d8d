package uefi

import (
	"unicode/utf16"
	"unsafe"
)

// UCS2 encodes s as a NUL-terminated UCS-2 string, the firmware's CHAR16*.
// Characters outside the Basic Multilingual Plane become U+FFFD.
func UCS2(s string) []uint16 {
	out := make([]uint16, 0, len(s)+1)
	for _, r := range s {
		if r > 0xffff || utf16.IsSurrogate(r) {
			r = 0xfffd
		}
		out = append(out, uint16(r))
	}
	return append(out, 0)
}

// FromUCS2 decodes a UCS-2 string up to its NUL (or the end of u).
func FromUCS2(u []uint16) string {
	for i, c := range u {
		if c == 0 {
			u = u[:i]
			break
		}
	}
	return string(utf16.Decode(u))
}

// UCS2At decodes the NUL-terminated CHAR16 string at addr, reading at most
// max characters.
func UCS2At(addr uintptr, max int) string {
	if addr == 0 {
		return ""
	}
	n := 0
	for n < max && *at[uint16](addr + uintptr(2*n)) != 0 {
		n++
	}
	return FromUCS2(unsafe.Slice(at[uint16](addr), n))
}
