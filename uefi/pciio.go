package uefi

import (
	"encoding/binary"
	"fmt"
	"unsafe"
)

// PciIoProtocolGUID is EFI_PCI_IO_PROTOCOL_GUID.
var PciIoProtocolGUID = NewGUID(0x4cf5b200, 0x68b8, 0x4ca5, [8]byte{0x9e, 0xec, 0xb2, 0x3e, 0x3f, 0x50, 0x02, 0x9a})

// PciIoProtocol is EFI_PCI_IO_PROTOCOL (UEFI 2.10 §14.4): function
// pointers in table order; the Mem, Io and Pci accessors are Read/Write
// pairs.
type PciIoProtocol struct {
	PollMem, PollIo                    uintptr
	MemRead, MemWrite                  uintptr
	IoRead, IoWrite                    uintptr
	PciRead, PciWrite                  uintptr
	CopyMem                            uintptr
	Map, Unmap                         uintptr
	AllocateBuffer, FreeBuffer         uintptr
	Flush                              uintptr
	GetLocation                        uintptr
	Attributes                         uintptr
	GetBarAttributes, SetBarAttributes uintptr
	RomSize                            uint64
	RomImage                           uintptr
}

// PCI IO access widths.
const (
	pciWidthUint8  = 0
	pciWidthUint16 = 1
	pciWidthUint32 = 2
	pciWidthUint64 = 3
)

// Open attributes for OpenProtocol.
const (
	OpenByHandleProtocol = 0x01
	OpenGetProtocol      = 0x02
	OpenByDriver         = 0x10
	OpenExclusive        = 0x20
)

// LocateHandles returns every handle that carries protocol g.
func LocateHandles(g *GUID) ([]Handle, error) {
	const byProtocol = 2
	var n, buf uintptr
	if err := Call(BS().LocateHandleBuffer, byProtocol, uintptr(unsafe.Pointer(g)), 0,
		uintptr(unsafe.Pointer(&n)), uintptr(unsafe.Pointer(&buf))).Err(); err != nil {
		if err == NotFound {
			return nil, nil
		}
		return nil, fmt.Errorf("uefi: LocateHandleBuffer(%v): %w", g, err)
	}
	hs := make([]Handle, n)
	copy(hs, unsafe.Slice(at[Handle](buf), n))
	Call(BS().FreePool, buf)
	return hs, nil
}

// OpenProtocol opens protocol g on handle h for this image with attrs.
// OpenExclusive makes the firmware disconnect the drivers that manage the
// device, so they stop touching it.
func OpenProtocol(h Handle, g *GUID, attrs uint32) (uintptr, error) {
	var iface uintptr
	if err := Call(BS().OpenProtocol, uintptr(h), uintptr(unsafe.Pointer(g)), uintptr(unsafe.Pointer(&iface)),
		uintptr(ImageHandle()), 0, uintptr(attrs)).Err(); err != nil {
		return 0, fmt.Errorf("uefi: OpenProtocol(%#x, %v): %w", uintptr(h), g, err)
	}
	return iface, nil
}

// CloseProtocol closes what OpenProtocol opened.
func CloseProtocol(h Handle, g *GUID) error {
	if err := Call(BS().CloseProtocol, uintptr(h), uintptr(unsafe.Pointer(g)), uintptr(ImageHandle()), 0).Err(); err != nil {
		return fmt.Errorf("uefi: CloseProtocol(%#x, %v): %w", uintptr(h), g, err)
	}
	return nil
}

// OpenInfo is one EFI_OPEN_PROTOCOL_INFORMATION_ENTRY.
type OpenInfo struct {
	Agent, Controller Handle
	Attributes        uint32
	OpenCount         uint32
}

// OpenProtocolInformation lists who has protocol g open on h.
func OpenProtocolInformation(h Handle, g *GUID) ([]OpenInfo, error) {
	var buf, n uintptr
	if err := Call(BS().OpenProtocolInformation, uintptr(h), uintptr(unsafe.Pointer(g)),
		uintptr(unsafe.Pointer(&buf)), uintptr(unsafe.Pointer(&n))).Err(); err != nil {
		return nil, fmt.Errorf("uefi: OpenProtocolInformation(%#x, %v): %w", uintptr(h), g, err)
	}
	out := make([]OpenInfo, n)
	copy(out, unsafe.Slice(at[OpenInfo](buf), n))
	Call(BS().FreePool, buf)
	return out, nil
}

// ProtocolsPerHandle lists the protocols installed on h.
func ProtocolsPerHandle(h Handle) ([]GUID, error) {
	var buf, n uintptr
	if err := Call(BS().ProtocolsPerHandle, uintptr(h), uintptr(unsafe.Pointer(&buf)), uintptr(unsafe.Pointer(&n))).Err(); err != nil {
		return nil, fmt.Errorf("uefi: ProtocolsPerHandle(%#x): %w", uintptr(h), err)
	}
	out := make([]GUID, n)
	for i, p := range unsafe.Slice(at[uintptr](buf), n) {
		out[i] = *at[GUID](p)
	}
	Call(BS().FreePool, buf)
	return out, nil
}

// ChildHandles returns the handles drivers created as children of
// controller h (opens with BY_CHILD_CONTROLLER), each once.
func ChildHandles(h Handle) ([]Handle, error) {
	const byChildController = 0x08
	protos, err := ProtocolsPerHandle(h)
	if err != nil {
		return nil, err
	}
	seen := map[Handle]bool{}
	var children []Handle
	for i := range protos {
		infos, err := OpenProtocolInformation(h, &protos[i])
		if err != nil {
			return nil, err
		}
		for _, in := range infos {
			if in.Attributes&byChildController != 0 && in.Controller != 0 && !seen[in.Controller] {
				seen[in.Controller] = true
				children = append(children, in.Controller)
			}
		}
	}
	return children, nil
}

// DisconnectController stops every driver that manages h.
func DisconnectController(h Handle) error {
	if err := Call(BS().DisconnectController, uintptr(h), 0, 0).Err(); err != nil {
		return fmt.Errorf("uefi: DisconnectController(%#x): %w", uintptr(h), err)
	}
	return nil
}

// ConnectController asks the firmware to bind drivers to h again.
func ConnectController(h Handle) error {
	if err := Call(BS().ConnectController, uintptr(h), 0, 0, 1).Err(); err != nil {
		return fmt.Errorf("uefi: ConnectController(%#x): %w", uintptr(h), err)
	}
	return nil
}

// PciIo is an opened EFI_PCI_IO_PROTOCOL instance.
type PciIo struct {
	Handle Handle
	p      *PciIoProtocol
	addr   uintptr
}

// OpenPciIo opens the PCI IO protocol of h with attrs.
func OpenPciIo(h Handle, attrs uint32) (*PciIo, error) {
	iface, err := OpenProtocol(h, &PciIoProtocolGUID, attrs)
	if err != nil {
		return nil, err
	}
	return &PciIo{Handle: h, p: at[PciIoProtocol](iface), addr: iface}, nil
}

// Close closes the protocol.
func (d *PciIo) Close() error { return CloseProtocol(d.Handle, &PciIoProtocolGUID) }

func width(size int) (uintptr, error) {
	switch size {
	case 1:
		return pciWidthUint8, nil
	case 2:
		return pciWidthUint16, nil
	case 4:
		return pciWidthUint32, nil
	case 8:
		return pciWidthUint64, nil
	}
	return 0, fmt.Errorf("uefi: PCI access of %d bytes", size)
}

// ConfigRead reads size bytes of configuration space at off.
func (d *PciIo) ConfigRead(off uint32, size int) (uint32, error) {
	w, err := width(size)
	if err != nil || size == 8 {
		return 0, fmt.Errorf("uefi: config read of %d bytes", size)
	}
	var v uint32
	if err := Call(d.p.PciRead, d.addr, w, uintptr(off), 1, uintptr(unsafe.Pointer(&v))).Err(); err != nil {
		return 0, fmt.Errorf("uefi: PCI config read at %#x: %w", off, err)
	}
	return v, nil
}

// ConfigWrite writes size bytes of configuration space at off.
func (d *PciIo) ConfigWrite(off uint32, size int, v uint32) error {
	w, err := width(size)
	if err != nil || size == 8 {
		return fmt.Errorf("uefi: config write of %d bytes", size)
	}
	if err := Call(d.p.PciWrite, d.addr, w, uintptr(off), 1, uintptr(unsafe.Pointer(&v))).Err(); err != nil {
		return fmt.Errorf("uefi: PCI config write at %#x: %w", off, err)
	}
	return nil
}

// BARRead reads size bytes of memory BAR bar at off.
func (d *PciIo) BARRead(bar int, off uint64, size int) (uint64, error) {
	w, err := width(size)
	if err != nil {
		return 0, err
	}
	var v uint64
	if err := Call(d.p.MemRead, d.addr, w, uintptr(bar), uintptr(off), 1, uintptr(unsafe.Pointer(&v))).Err(); err != nil {
		return 0, fmt.Errorf("uefi: BAR %d read at %#x: %w", bar, off, err)
	}
	return v, nil
}

// BARWrite writes size bytes of memory BAR bar at off.
func (d *PciIo) BARWrite(bar int, off uint64, size int, v uint64) error {
	w, err := width(size)
	if err != nil {
		return err
	}
	if err := Call(d.p.MemWrite, d.addr, w, uintptr(bar), uintptr(off), 1, uintptr(unsafe.Pointer(&v))).Err(); err != nil {
		return fmt.Errorf("uefi: BAR %d write at %#x: %w", bar, off, err)
	}
	return nil
}

// BARSize returns the length of memory BAR bar from its ACPI resource
// descriptor, 0 when the BAR is not implemented or not memory.
func (d *PciIo) BARSize(bar int) (uint64, error) {
	var res uintptr
	st := Call(d.p.GetBarAttributes, d.addr, uintptr(bar), 0, uintptr(unsafe.Pointer(&res)))
	if st == Unsupported {
		return 0, nil
	}
	if err := st.Err(); err != nil {
		return 0, fmt.Errorf("uefi: GetBarAttributes(%d): %w", bar, err)
	}
	defer Call(BS().FreePool, res)
	// The list ends with an End Tag (0x79); a QWORD address space
	// descriptor (0x8a) of resource type memory (0) carries the length.
	size, err := acpiMemoryLength(unsafe.Slice(at[byte](res), 4096))
	if err != nil {
		return 0, fmt.Errorf("uefi: BAR %d: %w", bar, err)
	}
	return size, nil
}

// acpiMemoryLength finds the memory range length in an ACPI resource list.
func acpiMemoryLength(b []byte) (uint64, error) {
	for i := 0; i < len(b); {
		switch tag := b[i]; {
		case tag == 0x79:
			return 0, nil
		case tag == 0x8a:
			if i+46 > len(b) {
				return 0, fmt.Errorf("truncated QWORD descriptor")
			}
			n := int(binary.LittleEndian.Uint16(b[i+1:]))
			if b[i+3] == 0 {
				return binary.LittleEndian.Uint64(b[i+38:]), nil
			}
			i += 3 + n
		case tag&0x80 != 0:
			i += 3 + int(binary.LittleEndian.Uint16(b[i+1:]))
		default:
			i += 1 + int(tag&7)
		}
	}
	return 0, fmt.Errorf("no end tag in resource list")
}

// DMABuffer is common-buffer memory from the PCI IO protocol, mapped for the
// device.
type DMABuffer struct {
	d         *PciIo
	host, dev uintptr
	pages     uintptr
	mapping   uintptr
	buf       []byte
}

// AllocDMA allocates size bytes of common-buffer DMA memory and maps it.
// Page allocations are 4 KiB aligned, enough for any virtqueue alignment.
func (d *PciIo) AllocDMA(size int) (*DMABuffer, error) {
	const allocateAnyPages, bootServicesData, busMasterCommonBuffer = 0, 4, 2
	pages := uintptr((size + PageSize - 1) / PageSize)
	var host uintptr
	if err := Call(d.p.AllocateBuffer, d.addr, allocateAnyPages, bootServicesData, pages, uintptr(unsafe.Pointer(&host)), 0).Err(); err != nil {
		return nil, fmt.Errorf("uefi: PCI IO AllocateBuffer(%d pages): %w", pages, err)
	}
	n := pages * PageSize
	var dev, mapping uintptr
	if err := Call(d.p.Map, d.addr, busMasterCommonBuffer, host, uintptr(unsafe.Pointer(&n)),
		uintptr(unsafe.Pointer(&dev)), uintptr(unsafe.Pointer(&mapping))).Err(); err != nil || n != pages*PageSize {
		Call(d.p.FreeBuffer, d.addr, pages, host)
		return nil, fmt.Errorf("uefi: PCI IO Map of %d bytes (mapped %d): %v", pages*PageSize, n, err)
	}
	return &DMABuffer{d: d, host: host, dev: dev, pages: pages, mapping: mapping,
		buf: unsafe.Slice(at[byte](host), size)}, nil
}

// Bytes is the CPU view of the buffer.
func (b *DMABuffer) Bytes() []byte { return b.buf }

// Addr is the device address of Bytes()[0].
func (b *DMABuffer) Addr() uint64 { return uint64(b.dev) }

// Free unmaps and frees the buffer.
func (b *DMABuffer) Free() {
	Call(b.d.p.Unmap, b.d.addr, b.mapping)
	Call(b.d.p.FreeBuffer, b.d.addr, b.pages, b.host)
	b.buf = nil
}
