package handoff

import (
	"errors"
	"fmt"
	"unsafe"

	"github.com/ociboot/ociboot/uefi"
)

// Image is a program loaded by the firmware and not yet started.
type Image struct {
	h        uefi.Handle
	options  []uint16 // kept alive: the firmware points into it
	initrd   *initrd
	dev      uefi.Handle     // carries the image's memory-mapped device path
	devPath  []byte          // kept alive: installed on dev
	devProto *loadFile2Proto // kept alive: installed on dev
	Machine  uint16          // PE machine of the image
}

// Load hands kernel (a PE image, or a gzip'd one) to the firmware's
// LoadImage and sets cmdline as its load options. kernel must not move:
// memory from the firmware, or Go memory the caller keeps.
func Load(kernel []byte, cmdline string) (*Image, error) {
	// The device path and the handle behind it describe the bytes as
	// fetched (they outlive LoadImage); the firmware loads the PE image.
	addr := uintptr(unsafe.Pointer(unsafe.SliceData(kernel)))
	fetched := len(kernel)
	if isGzip(kernel) {
		inflated, err := Inflate(kernel, allocPages)
		if inflated != nil {
			// LoadImage copies the image, so the inflated bytes go straight back.
			defer uefi.FreePages(uintptr(unsafe.Pointer(&inflated[0])), len(inflated))
		}
		if err != nil {
			return nil, err
		}
		kernel = inflated
	}
	m, err := PEMachine(kernel)
	if err != nil {
		return nil, err
	}
	img := &Image{Machine: m, devPath: uefi.MemoryMappedPath(addr, fetched),
		devProto: &loadFile2Proto{loadFile: loadFile2Addr(), data: addr, size: uintptr(fetched)}}
	// The firmware makes the handle that serves the image's path (through
	// LoadFile2, here over the same bytes) the image's DeviceHandle:
	// programs that look at their own device (the EDK2 shell does, and a
	// DEBUG build asserts on NULL) find one.
	if err := uefi.InstallProtocols(&img.dev,
		uintptr(unsafe.Pointer(&uefi.DevicePathProtocolGUID)), uintptr(unsafe.Pointer(&img.devPath[0])),
		uintptr(unsafe.Pointer(&uefi.LoadFile2ProtocolGUID)), uintptr(unsafe.Pointer(img.devProto))); err != nil {
		return nil, fmt.Errorf("handoff: a device handle for the image: %w", err)
	}
	h, err := uefi.LoadImage(kernel, img.devPath)
	if err != nil {
		img.removeDevice()
		if errors.Is(err, uefi.SecurityViolation) {
			return nil, fmt.Errorf("handoff: the firmware's Secure Boot policy refused the image: %w", err)
		}
		return nil, fmt.Errorf("handoff: %w", err)
	}
	img.h = h
	if cmdline != "" {
		li, err := uefi.OpenLoadedImage(h)
		if err != nil {
			uefi.UnloadImage(h)
			img.removeDevice()
			return nil, fmt.Errorf("handoff: setting the command line: %w", err)
		}
		img.options = append(uefi.UCS2(cmdline), 0)
		li.LoadOptions = uintptr(unsafe.Pointer(&img.options[0]))
		li.LoadOptionsSize = uint32(2 * len(img.options))
	}
	return img, nil
}

// SetInitrd makes initrd what the image's Linux EFI stub loads through
// LoadFile2. The bytes must not move until the image has started.
func (img *Image) SetInitrd(data []byte) error {
	rd, err := installInitrd(data)
	if err != nil {
		return err
	}
	img.initrd = rd
	return nil
}

// Start runs the image. It returns only when the image returns (a program
// that exits, a kernel that failed before ExitBootServices), with its
// status as an error (nil for EFI_SUCCESS) and any exit data it left.
func (img *Image) Start() (exitData string, err error) {
	st, data := uefi.StartImage(img.h)
	img.h = 0 // the firmware unloads an image that returned
	img.removeInitrd()
	img.removeDevice()
	// A warning is not EFI_SUCCESS either: a program's non-zero exit code
	// (the EFI shell's "exit 3") arrives as one, and the caller must see it.
	if st != uefi.Success {
		return data, fmt.Errorf("handoff: the image returned %w", st)
	}
	return data, nil
}

// Unload gives up an image that will not be started.
func (img *Image) Unload() error {
	img.removeInitrd()
	img.removeDevice()
	if img.h == 0 {
		return nil
	}
	err := uefi.UnloadImage(img.h)
	img.h = 0
	return err
}

// removeDevice uninstalls the image's device handle.
func (img *Image) removeDevice() {
	if img.dev != 0 {
		uefi.UninstallProtocols(img.dev,
			uintptr(unsafe.Pointer(&uefi.DevicePathProtocolGUID)), uintptr(unsafe.Pointer(&img.devPath[0])),
			uintptr(unsafe.Pointer(&uefi.LoadFile2ProtocolGUID)), uintptr(unsafe.Pointer(img.devProto)))
		img.dev = 0
	}
}

func (img *Image) removeInitrd() {
	if img.initrd != nil {
		img.initrd.remove()
		img.initrd = nil
	}
}

// allocPages is where an inflated kernel goes: pages from the firmware,
// which stay put and need no Go bookkeeping once the kernel runs.
func allocPages(n int) ([]byte, error) {
	addr, err := uefi.AllocatePages(n)
	if err != nil {
		return nil, fmt.Errorf("handoff: %d bytes for the inflated kernel: %w", n, err)
	}
	return uefi.Memory(addr, n), nil
}
