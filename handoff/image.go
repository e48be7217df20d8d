package handoff

import (
	"errors"
	"fmt"
	"unsafe"

	"github.com/ociboot/ociboot/uefi"
)

// Image is a program loaded by the firmware and not yet started.
type Image struct {
	h       uefi.Handle
	options []uint16 // kept alive: the firmware points into it
	initrd  *initrd
	Machine uint16 // PE machine of the image
}

// Load hands kernel (a PE image, or a gzip'd one) to the firmware's
// LoadImage and sets cmdline as its load options. kernel must not move:
// memory from the firmware, or Go memory the caller keeps.
func Load(kernel []byte, cmdline string) (*Image, error) {
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
	addr := uintptr(unsafe.Pointer(unsafe.SliceData(kernel)))
	h, err := uefi.LoadImage(kernel, uefi.MemoryMappedPath(addr, len(kernel)))
	if err != nil {
		if errors.Is(err, uefi.SecurityViolation) {
			return nil, fmt.Errorf("handoff: the firmware's Secure Boot policy refused the image: %w", err)
		}
		return nil, fmt.Errorf("handoff: %w", err)
	}
	img := &Image{h: h, Machine: m}
	if cmdline != "" {
		li, err := uefi.OpenLoadedImage(h)
		if err != nil {
			uefi.UnloadImage(h)
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
	if img.h == 0 {
		return nil
	}
	err := uefi.UnloadImage(img.h)
	img.h = 0
	return err
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
