package uefi

import (
	"fmt"
	"time"
	"unsafe"

	"github.com/ociboot/ociboot/efirt"
)

// PageSize is the UEFI page size.
const PageSize = 4096

// Memory types and allocation kinds used here.
const (
	allocateAnyPages   = 0
	allocateMaxAddress = 1
	LoaderData         = 2
)

// AllocatePages allocates size bytes (rounded up to pages) of EfiLoaderData
// below 64 GiB and returns the address of the first byte. The pages are not
// part of the Go heap: free them with FreePages.
func AllocatePages(size int) (uintptr, error) {
	if size <= 0 {
		return 0, fmt.Errorf("uefi: AllocatePages(%d): size must be positive", size)
	}
	addr := uintptr(1<<36 - 1)
	pages := uintptr((size + PageSize - 1) / PageSize)
	if err := Call(BS().AllocatePages, allocateMaxAddress, LoaderData, pages, uintptr(unsafe.Pointer(&addr))).Err(); err != nil {
		return 0, fmt.Errorf("uefi: AllocatePages(%d pages): %w", pages, err)
	}
	return addr, nil
}

// FreePages returns pages from AllocatePages.
func FreePages(addr uintptr, size int) error {
	pages := uintptr((size + PageSize - 1) / PageSize)
	if err := Call(BS().FreePages, addr, pages).Err(); err != nil {
		return fmt.Errorf("uefi: FreePages(%#x, %d pages): %w", addr, pages, err)
	}
	return nil
}

// Stall busy-waits in the firmware for at least d (microsecond resolution).
func Stall(d time.Duration) error {
	if err := Call(BS().Stall, uintptr(d/time.Microsecond)).Err(); err != nil {
		return fmt.Errorf("uefi: Stall(%v): %w", d, err)
	}
	return nil
}

// GetTime reads the real-time clock, converted to UTC.
func GetTime() (time.Time, error) {
	var t [16]byte
	if err := Call(RT().GetTime, uintptr(unsafe.Pointer(&t)), 0).Err(); err != nil {
		return time.Time{}, fmt.Errorf("uefi: GetTime: %w", err)
	}
	sec, nsec := efirt.EFITimeToUnix(&t)
	return time.Unix(sec, nsec).UTC(), nil
}

// Exit returns to the firmware with status, ending the program without
// running deferred functions. It does not return.
func Exit(status Status) {
	Call(BS().Exit, uintptr(ImageHandle()), uintptr(status), 0, 0)
	panic("uefi: Exit returned")
}

// LocateProtocol returns the first interface of protocol g.
func LocateProtocol(g *GUID) (uintptr, error) {
	var iface uintptr
	if err := Call(BS().LocateProtocol, uintptr(unsafe.Pointer(g)), 0, uintptr(unsafe.Pointer(&iface))).Err(); err != nil {
		return 0, fmt.Errorf("uefi: LocateProtocol(%v): %w", g, err)
	}
	return iface, nil
}

// HandleProtocol returns the interface of protocol g on handle h.
func HandleProtocol(h Handle, g *GUID) (uintptr, error) {
	var iface uintptr
	if err := Call(BS().HandleProtocol, uintptr(h), uintptr(unsafe.Pointer(g)), uintptr(unsafe.Pointer(&iface))).Err(); err != nil {
		return 0, fmt.Errorf("uefi: HandleProtocol(%#x, %v): %w", uintptr(h), g, err)
	}
	return iface, nil
}

// LoadedImage is EFI_LOADED_IMAGE_PROTOCOL.
type LoadedImage struct {
	Revision        uint32
	_               uint32
	ParentHandle    Handle
	SystemTable     uintptr
	DeviceHandle    Handle
	FilePath        uintptr // *EFI_DEVICE_PATH_PROTOCOL
	Reserved        uintptr
	LoadOptionsSize uint32
	_               uint32
	LoadOptions     uintptr
	ImageBase       uintptr
	ImageSize       uint64
	ImageCodeType   uint32
	ImageDataType   uint32
	Unload          uintptr
}

// OpenLoadedImage returns the loaded-image protocol of handle h.
func OpenLoadedImage(h Handle) (*LoadedImage, error) {
	iface, err := HandleProtocol(h, &LoadedImageProtocolGUID)
	if err != nil {
		return nil, err
	}
	return at[LoadedImage](iface), nil
}

// Pages is a zeroed block of memory from AllocatePages, for data that must
// stay put and outlive the Go runtime: downloaded kernels and initrds.
type Pages struct {
	addr uintptr
	b    []byte
}

// NewPages allocates n zeroed bytes of pages.
func NewPages(n int) (*Pages, error) {
	addr, err := AllocatePages(n)
	if err != nil {
		return nil, err
	}
	b := Memory(addr, n)
	clear(b) // the firmware hands out pages as they were left
	return &Pages{addr: addr, b: b}, nil
}

// Bytes is the memory; it must not be used after Free.
func (p *Pages) Bytes() []byte { return p.b }

// Free gives the pages back to the firmware.
func (p *Pages) Free() {
	if p.b != nil {
		FreePages(p.addr, len(p.b))
		p.b = nil
	}
}
