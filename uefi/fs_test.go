package uefi

import (
	"encoding/binary"
	"testing"
)

func fileNode(s string) []byte {
	u := append(UCS2(s), 0)
	b := make([]byte, 4+2*len(u))
	b[0], b[1] = dpMedia, 4
	binary.LittleEndian.PutUint16(b[2:], uint16(len(b)))
	for i, c := range u {
		binary.LittleEndian.PutUint16(b[4+2*i:], c)
	}
	return b
}

func TestFilePathDir(t *testing.T) {
	hd := []byte{dpMedia, 1, 6, 0, 0xaa, 0xbb} // a (short, made-up) hard-drive node
	for _, c := range []struct {
		path []byte
		want string
	}{
		{append(append(append([]byte{}, hd...), fileNode(`\EFI\BOOT\BOOTX64.EFI`)...), DevicePathEnd...), `\EFI\BOOT`},
		{append(append(fileNode(`\EFI`), fileNode(`\BOOT\BOOTAA64.EFI`)...), DevicePathEnd...), `\EFI\BOOT`},
		{append(fileNode(`BOOTX64.EFI`), DevicePathEnd...), ""},
		{append(append([]byte{}, hd...), DevicePathEnd...), ""},
		{[]byte{dpMedia, 4, 2, 0}, ""}, // a node shorter than its header
	} {
		if got := filePathDir(c.path); got != c.want {
			t.Errorf("filePathDir(% x) = %q, want %q", c.path, got, c.want)
		}
	}
}
