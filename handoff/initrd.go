package handoff

import (
	"fmt"
	"unsafe"

	"github.com/ociboot/ociboot/uefi"
)

// LinuxInitrdMediaGUID names the vendor-media device path on which Linux's
// EFI stub looks for a LoadFile2 protocol to fetch its initrd.
var LinuxInitrdMediaGUID = uefi.NewGUID(0x5568e427, 0x68fc, 0x4f3d, [8]byte{0xac, 0x74, 0xca, 0x55, 0x52, 0x31, 0xcc, 0x68})

// loadFile2Proto is the EFI_LOAD_FILE2_PROTOCOL instance the firmware hands
// to the stub, followed by what loadFile2 serves. The layout is read by the
// assembly routine: LoadFile at 0, data at 8, size at 16.
type loadFile2Proto struct {
	loadFile uintptr
	data     uintptr
	size     uintptr
}

// The staged initrd lives in globals: they never move, and the stub reads
// them after the Go runtime has stopped running.
var (
	initrdProto loadFile2Proto
	initrdPath  []byte
)

// loadFile2 is EFI_LOAD_FILE2_PROTOCOL.LoadFile, called by the Linux EFI
// stub under the firmware's calling convention with the protocol instance
// first. It copies the staged initrd into the caller's buffer, or reports
// the size needed, and touches nothing but its arguments and the instance.
func loadFile2()

// loadFile2Addr returns the entry address of loadFile2.
func loadFile2Addr() uintptr

// callMS5 calls fn with five arguments under the firmware's calling
// convention, with markers in the registers fn must preserve, and returns
// fn's result and those registers: it lets host tests hold loadFile2 to the
// contract the Linux stub relies on.
func callMS5(fn uintptr, a *[5]uintptr) (ret, si, di uintptr)

type initrd struct{ h uefi.Handle }

// installInitrd publishes data on a new handle with Linux's initrd device
// path, removing an earlier owner of that path first: the stub takes the
// first match, and the firmware allows only one.
func installInitrd(data []byte) (*initrd, error) {
	if len(data) == 0 {
		return nil, fmt.Errorf("handoff: empty initrd")
	}
	if initrdPath == nil {
		initrdPath = uefi.VendorMediaPath(LinuxInitrdMediaGUID)
	}
	if err := removeInitrdOwner(); err != nil {
		return nil, err
	}
	initrdProto = loadFile2Proto{loadFile: loadFile2Addr(), data: uintptr(unsafe.Pointer(unsafe.SliceData(data))), size: uintptr(len(data))}
	rd := &initrd{}
	err := uefi.InstallProtocols(&rd.h,
		uintptr(unsafe.Pointer(&uefi.DevicePathProtocolGUID)), uintptr(unsafe.Pointer(&initrdPath[0])),
		uintptr(unsafe.Pointer(&uefi.LoadFile2ProtocolGUID)), uintptr(unsafe.Pointer(&initrdProto)))
	if err != nil {
		return nil, fmt.Errorf("handoff: publishing the initrd: %w", err)
	}
	return rd, nil
}

// removeInitrdOwner uninstalls whatever handle already serves the initrd
// path (an earlier loader, or our own from a target that returned).
func removeInitrdOwner() error {
	h, ok := uefi.LocateDevicePath(&uefi.LoadFile2ProtocolGUID, initrdPath)
	if !ok {
		return nil
	}
	lf2, err := uefi.HandleProtocol(h, &uefi.LoadFile2ProtocolGUID)
	if err != nil {
		return fmt.Errorf("handoff: earlier initrd provider: %w", err)
	}
	dp, err := uefi.HandleProtocol(h, &uefi.DevicePathProtocolGUID)
	if err != nil {
		return fmt.Errorf("handoff: earlier initrd provider: %w", err)
	}
	if err := uefi.UninstallProtocols(h,
		uintptr(unsafe.Pointer(&uefi.DevicePathProtocolGUID)), dp,
		uintptr(unsafe.Pointer(&uefi.LoadFile2ProtocolGUID)), lf2); err != nil {
		return fmt.Errorf("handoff: removing the earlier initrd provider: %w", err)
	}
	return nil
}

func (rd *initrd) remove() {
	uefi.UninstallProtocols(rd.h,
		uintptr(unsafe.Pointer(&uefi.DevicePathProtocolGUID)), uintptr(unsafe.Pointer(&initrdPath[0])),
		uintptr(unsafe.Pointer(&uefi.LoadFile2ProtocolGUID)), uintptr(unsafe.Pointer(&initrdProto)))
	initrdProto = loadFile2Proto{}
}
