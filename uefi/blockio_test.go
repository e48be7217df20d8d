package uefi

import (
	"testing"
	"unsafe"
)

// Offsets and sizes from the UEFI 2.10 specification (64-bit): Block IO
// §13.9, Serial IO §12.8.
func TestBlockAndSerialLayouts(t *testing.T) {
	var b BlockIoProtocol
	var m BlockIoMedia
	var s SerialIoProtocol
	var sm SerialIoMode
	for _, c := range []struct {
		name      string
		got, want uintptr
	}{
		{"BlockIo.Media", unsafe.Offsetof(b.Media), 8},
		{"BlockIo.Reset", unsafe.Offsetof(b.Reset), 16},
		{"BlockIo.ReadBlocks", unsafe.Offsetof(b.ReadBlocks), 24},
		{"BlockIo.WriteBlocks", unsafe.Offsetof(b.WriteBlocks), 32},
		{"BlockIo.FlushBlocks", unsafe.Offsetof(b.FlushBlocks), 40},
		{"BlockIoMedia.RemovableMedia", unsafe.Offsetof(m.RemovableMedia), 4},
		{"BlockIoMedia.MediaPresent", unsafe.Offsetof(m.MediaPresent), 5},
		{"BlockIoMedia.LogicalPartition", unsafe.Offsetof(m.LogicalPartition), 6},
		{"BlockIoMedia.ReadOnly", unsafe.Offsetof(m.ReadOnly), 7},
		{"BlockIoMedia.WriteCaching", unsafe.Offsetof(m.WriteCaching), 8},
		{"BlockIoMedia.BlockSize", unsafe.Offsetof(m.BlockSize), 12},
		{"BlockIoMedia.IoAlign", unsafe.Offsetof(m.IoAlign), 16},
		{"BlockIoMedia.LastBlock", unsafe.Offsetof(m.LastBlock), 24},
		{"BlockIoMedia.LowestAlignedLba", unsafe.Offsetof(m.LowestAlignedLba), 32},
		{"BlockIoMedia.LogicalBlocksPerPhysicalBlock", unsafe.Offsetof(m.LogicalBlocksPerPhysicalBlock), 40},
		{"BlockIoMedia.OptimalTransferLengthGranularity", unsafe.Offsetof(m.OptimalTransferLengthGranularity), 44},
		{"sizeof BlockIoMedia", unsafe.Sizeof(m), 48},
		{"SerialIo.Reset", unsafe.Offsetof(s.Reset), 8},
		{"SerialIo.SetAttributes", unsafe.Offsetof(s.SetAttributes), 16},
		{"SerialIo.SetControl", unsafe.Offsetof(s.SetControl), 24},
		{"SerialIo.GetControl", unsafe.Offsetof(s.GetControl), 32},
		{"SerialIo.Write", unsafe.Offsetof(s.Write), 40},
		{"SerialIo.Read", unsafe.Offsetof(s.Read), 48},
		{"SerialIo.Mode", unsafe.Offsetof(s.Mode), 56},
		{"SerialIo.DeviceTypeGuid", unsafe.Offsetof(s.DeviceTypeGUID), 64},
		{"SerialIoMode.BaudRate", unsafe.Offsetof(sm.BaudRate), 8},
		{"SerialIoMode.ReceiveFifoDepth", unsafe.Offsetof(sm.ReceiveFifoDepth), 16},
		{"SerialIoMode.StopBits", unsafe.Offsetof(sm.StopBits), 28},
	} {
		if c.got != c.want {
			t.Errorf("%s at %d, want %d", c.name, c.got, c.want)
		}
	}
	for _, g := range []struct {
		g    GUID
		want string
	}{
		{BlockIoProtocolGUID, "964e5b21-6459-11d2-8e39-00a0c969723b"},
		{SerialIoProtocolGUID, "bb25cf6f-f1d4-11d2-9a0c-0090273fc1fd"},
		{DevicePathProtocolGUID, "09576e91-6d3f-11d2-8e39-00a0c969723b"},
		{GlobalVariableGUID, "8be4df61-93ca-11d2-aa0d-00e098032b8c"},
	} {
		if got := g.g.String(); got != g.want {
			t.Errorf("GUID %s, want %s", got, g.want)
		}
	}
}

// node encodes one device path node.
func node(typ, sub byte, data ...byte) []byte {
	n := len(data) + 4
	return append([]byte{typ, sub, byte(n), byte(n >> 8)}, data...)
}

func TestDevicePaths(t *testing.T) {
	pciRoot := node(2, 1, 0xd0, 0x41, 0x03, 0x0a, 0, 0, 0, 0) // ACPI PNP0A03
	lpc := node(1, 1, 0, 0x1f)                                // PCI dev 0x1f fn 0
	com1 := node(2, 1, 0xd0, 0x41, 0x01, 0x05, 0, 0, 0, 0)    // ACPI PNP0501 UID 0
	com2 := node(2, 1, 0xd0, 0x41, 0x01, 0x05, 1, 0, 0, 0)    // UID 1
	uart := func(baud byte) []byte { return node(3, 14, 0, 0, 0, 0, baud, 0, 0, 0, 0, 0, 0, 0, 8, 1, 1) }
	vt100 := node(3, 10, make([]byte, 16)...)
	endInst, endAll := node(0x7f, 1), node(0x7f, 0xff)
	join := func(parts ...[]byte) []byte {
		var b []byte
		for _, p := range parts {
			b = append(b, p...)
		}
		return b
	}
	// ConOut as OVMF writes it: COM1's terminal, then a video device.
	conOut := join(pciRoot, lpc, com1, uart(0x00), vt100, endInst, pciRoot, node(1, 1, 0, 1), endAll)
	insts, err := ParseDevicePaths(conOut)
	if err != nil || len(insts) != 2 || len(insts[0]) != 5 || len(insts[1]) != 2 {
		t.Fatalf("ParseDevicePaths: %d instances, %v", len(insts), err)
	}
	port := func(com []byte, baud byte) []DevicePathNode {
		p, err := ParseDevicePaths(join(pciRoot, lpc, com, uart(baud), endAll))
		if err != nil || len(p) != 1 {
			t.Fatal(err)
		}
		return p[0]
	}
	if !DevicePathHasPrefix(insts[0], port(com1, 0xc2)) {
		t.Error("COM1 at another baud rate not found in ConOut")
	}
	if DevicePathHasPrefix(insts[0], port(com2, 0x00)) || DevicePathHasPrefix(insts[1], port(com1, 0)) {
		t.Error("COM2 (or a video path) taken for COM1")
	}
	if DevicePathHasPrefix(insts[0], nil) {
		t.Error("empty prefix matches")
	}
	if _, err := ParseDevicePaths([]byte{1, 1, 9, 0, 0}); err == nil {
		t.Error("truncated node accepted")
	}
}
