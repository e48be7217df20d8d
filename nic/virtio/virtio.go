// Package virtio drives a virtio-net device through the virtio 1.x PCI
// transport (OASIS virtio v1.2 §4.1) with split virtqueues (§2.7): one
// receive and one transmit queue, polled, with receive offloads (large
// segments in merged buffers, partial checksums) when the device offers them.
//
// The driver reaches the device only through the small PCI and DMA
// interfaces below, so the same code runs over EFI_PCI_IO_PROTOCOL in the
// loader and over the in-process device model (package devmodel) in tests.
// A Net is owned by one goroutine (the NIC poller); it is not safe for
// concurrent use.
package virtio

import "errors"

// PCI is what the driver needs of a PCI function. Offsets are relative to
// the start of config space or of the BAR; sizes are in bytes.
type PCI interface {
	ConfigRead(off uint32, size int) (uint32, error) // size 1, 2 or 4
	ConfigWrite(off uint32, size int, v uint32) error
	BARRead(bar int, off uint64, size int) (uint64, error) // size 1, 2 or 4
	BARWrite(bar int, off uint64, size int, v uint64) error
	// BARSize is the length of memory BAR bar, 0 when it is not implemented.
	// The driver bounds every capability region by it; firmware knows it
	// (EFI_PCI_IO_PROTOCOL.GetBarAttributes), so the driver never has to size
	// BARs by writing to them.
	BARSize(bar int) (uint64, error)
}

// DMA hands out memory the device can reach.
type DMA interface {
	// Alloc returns size bytes whose device address is a multiple of align
	// (a power of two). The contents are undefined, as with firmware pages.
	Alloc(size, align int) (Buffer, error)
}

// Buffer is one DMA allocation.
type Buffer interface {
	Bytes() []byte // CPU view, valid until Free
	Addr() uint64  // device (bus) address of Bytes()[0]
	Free()
}

var (
	// ErrNotVirtioNet means the PCI function is not a virtio-net device; a
	// chooser can try another backend.
	ErrNotVirtioNet = errors.New("virtio-net: not a virtio network device")
	// ErrDeviceFault wraps every report of the device breaking the ring
	// protocol. The Net is then unusable until closed.
	ErrDeviceFault = errors.New("virtio-net: device fault")
	// ErrClosed is returned by calls on a closed Net.
	ErrClosed = errors.New("virtio-net: closed")
	// ErrFrameSize is returned by Transmit for a frame shorter than an
	// Ethernet header or longer than MaxFrame.
	ErrFrameSize = errors.New("virtio-net: bad frame size")
)
