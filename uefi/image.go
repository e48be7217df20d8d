package uefi

import (
	"encoding/binary"
	"fmt"
	"unsafe"

	"github.com/ociboot/ociboot/efirt"
)

// LoadFile2ProtocolGUID is EFI_LOAD_FILE2_PROTOCOL_GUID.
var LoadFile2ProtocolGUID = NewGUID(0x4006c0c1, 0xfcb3, 0x403e, [8]byte{0x99, 0x6d, 0x4a, 0x6c, 0x87, 0x24, 0xe0, 0x6d})

// Device path node types and the end node that closes every path.
const (
	dpHardware     = 0x01
	dpMemoryMapped = 0x03
	dpMedia        = 0x04
	dpVendorMedia  = 0x03
)

// DevicePathEnd is the End Entire Device Path node.
var DevicePathEnd = []byte{0x7f, 0xff, 4, 0}

// MemoryMappedPath is a device path of one memory-mapped node covering
// [addr, addr+size) of EfiLoaderData, then the end node: how systemd-boot
// and GRUB describe an image they load from memory.
func MemoryMappedPath(addr uintptr, size int) []byte {
	p := make([]byte, 24, 28)
	p[0], p[1] = dpHardware, dpMemoryMapped
	binary.LittleEndian.PutUint16(p[2:], 24)
	binary.LittleEndian.PutUint32(p[4:], LoaderData)
	binary.LittleEndian.PutUint64(p[8:], uint64(addr))
	binary.LittleEndian.PutUint64(p[16:], uint64(addr)+uint64(size)-1)
	return append(p, DevicePathEnd...)
}

// VendorMediaPath is a device path of one vendor-defined media node with
// guid g, then the end node (the form of Linux's initrd path).
func VendorMediaPath(g GUID) []byte {
	p := make([]byte, 20, 24)
	p[0], p[1] = dpMedia, dpVendorMedia
	binary.LittleEndian.PutUint16(p[2:], 20)
	copy(p[4:], g[:])
	return append(p, DevicePathEnd...)
}

// LoadImage loads the PE image in src (which must stay put during the
// call) as a child of this image, described by the device path dp.
func LoadImage(src []byte, dp []byte) (Handle, error) {
	var h Handle
	st := Call(BS().LoadImage, 0, uintptr(ImageHandle()), uintptr(unsafe.Pointer(unsafe.SliceData(dp))),
		uintptr(unsafe.Pointer(unsafe.SliceData(src))), uintptr(len(src)), uintptr(unsafe.Pointer(&h)))
	if err := st.Err(); err != nil {
		return 0, fmt.Errorf("uefi: LoadImage of %d bytes: %w", len(src), err)
	}
	return h, nil
}

// StartImage runs the loaded image h with the firmware's own CPU state in
// place. It returns only if the image exits (or fails to start), with its
// status and exit data.
func StartImage(h Handle) (Status, string) {
	var n, data uintptr
	st := Status(efirt.CallForeign(BS().StartImage, uintptr(h), uintptr(unsafe.Pointer(&n)), uintptr(unsafe.Pointer(&data))))
	var msg string
	if data != 0 {
		msg = UCS2At(data, int(n/2))
		Call(BS().FreePool, data)
	}
	return st, msg
}

// UnloadImage unloads an image that was loaded but did not run, or ran and
// returned.
func UnloadImage(h Handle) error {
	if err := Call(BS().UnloadImage, uintptr(h)).Err(); err != nil {
		return fmt.Errorf("uefi: UnloadImage(%#x): %w", uintptr(h), err)
	}
	return nil
}

// InstallProtocols installs (guid, interface) pairs on h (0: a new handle)
// at once, as InstallMultipleProtocolInterfaces does: the firmware refuses
// a device path that another handle already carries.
func InstallProtocols(h *Handle, pairs ...uintptr) error {
	args := append([]uintptr{uintptr(unsafe.Pointer(h))}, pairs...)
	if err := Call(BS().InstallMultipleProtocolInterfaces, append(args, 0)...).Err(); err != nil {
		return fmt.Errorf("uefi: InstallMultipleProtocolInterfaces: %w", err)
	}
	return nil
}

// UninstallProtocols removes (guid, interface) pairs from h.
func UninstallProtocols(h Handle, pairs ...uintptr) error {
	args := append([]uintptr{uintptr(h)}, pairs...)
	if err := Call(BS().UninstallMultipleProtocolInterfaces, append(args, 0)...).Err(); err != nil {
		return fmt.Errorf("uefi: UninstallMultipleProtocolInterfaces(%#x): %w", uintptr(h), err)
	}
	return nil
}

// LocateDevicePath finds the handle carrying protocol g whose device path
// matches the whole of dp, if any.
func LocateDevicePath(g *GUID, dp []byte) (Handle, bool) {
	var h Handle
	p := uintptr(unsafe.Pointer(unsafe.SliceData(dp)))
	rest := p
	if Call(BS().LocateDevicePath, uintptr(unsafe.Pointer(g)), uintptr(unsafe.Pointer(&rest)), uintptr(unsafe.Pointer(&h))).Err() != nil {
		return 0, false
	}
	// A partial match leaves rest short of the end node.
	return h, rest == p+uintptr(len(dp)-len(DevicePathEnd))
}
