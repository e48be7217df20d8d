package uefi

import (
	"fmt"
	"net"
	"unsafe"
)

// SimpleNetworkProtocolGUID is EFI_SIMPLE_NETWORK_PROTOCOL_GUID.
var SimpleNetworkProtocolGUID = NewGUID(0xa19832b9, 0xac25, 0x11d3, [8]byte{0x9a, 0x2d, 0x00, 0x90, 0x27, 0x3f, 0xc1, 0x4d})

// SimpleNetworkProtocol is EFI_SIMPLE_NETWORK_PROTOCOL (UEFI 2.10 §24.1).
type SimpleNetworkProtocol struct {
	Revision                       uint64
	Start, Stop, Initialize, Reset uintptr
	Shutdown, ReceiveFilters       uintptr
	StationAddress, Statistics     uintptr
	MCastIPToMAC, NvData           uintptr
	GetStatus, Transmit, Receive   uintptr
	WaitForPacket                  uintptr
	Mode                           uintptr
}

// SimpleNetworkMode is EFI_SIMPLE_NETWORK_MODE.
type SimpleNetworkMode struct {
	State                 uint32
	HwAddressSize         uint32
	MediaHeaderSize       uint32
	MaxPacketSize         uint32
	NvRAMSize             uint32
	NvRAMAccessSize       uint32
	ReceiveFilterMask     uint32
	ReceiveFilterSetting  uint32
	MaxMCastFilterCount   uint32
	MCastFilterCount      uint32
	MCastFilter           [16][32]byte
	CurrentAddress        [32]byte
	BroadcastAddress      [32]byte
	PermanentAddress      [32]byte
	IfType                uint8
	MacAddressChangeable  bool
	MultipleTxSupported   bool
	MediaPresentSupported bool
	MediaPresent          bool
}

// SNP states (EFI_SIMPLE_NETWORK_STATE).
const (
	SNPStopped     = 0
	SNPStarted     = 1
	SNPInitialized = 2
)

// SNP receive filter bits.
const (
	SNPReceiveUnicast   = 0x01
	SNPReceiveMulticast = 0x02
	SNPReceiveBroadcast = 0x04
)

// SNP is an opened Simple Network Protocol instance.
type SNP struct {
	Handle Handle
	p      *SimpleNetworkProtocol
	addr   uintptr
}

// OpenSNP opens the Simple Network Protocol of h with attrs. OpenExclusive
// disconnects the firmware's network stack (MNP), which would otherwise
// poll the same receive queue from its timer and steal frames.
func OpenSNP(h Handle, attrs uint32) (*SNP, error) {
	iface, err := OpenProtocol(h, &SimpleNetworkProtocolGUID, attrs)
	if err != nil {
		return nil, err
	}
	return &SNP{Handle: h, p: at[SimpleNetworkProtocol](iface), addr: iface}, nil
}

// Close closes the protocol.
func (s *SNP) Close() error { return CloseProtocol(s.Handle, &SimpleNetworkProtocolGUID) }

// Mode is the interface's current mode, which the firmware updates in place.
func (s *SNP) Mode() *SimpleNetworkMode { return at[SimpleNetworkMode](s.p.Mode) }

// call is Call for SNP functions, with the same rule for pointers.
//
//go:uintptrescapes
func (s *SNP) call(what string, fn uintptr, args ...uintptr) error {
	if err := Call(fn, append([]uintptr{s.addr}, args...)...).Err(); err != nil {
		return fmt.Errorf("uefi: SNP %s: %w", what, err)
	}
	return nil
}

// Start moves the interface from stopped to started.
func (s *SNP) Start() error { return s.call("Start", s.p.Start) }

// Stop moves it back to stopped.
func (s *SNP) Stop() error { return s.call("Stop", s.p.Stop) }

// Initialize allocates the interface's buffers and brings the link up.
func (s *SNP) Initialize() error { return s.call("Initialize", s.p.Initialize, 0, 0) }

// Shutdown undoes Initialize.
func (s *SNP) Shutdown() error { return s.call("Shutdown", s.p.Shutdown) }

// SetReceiveFilters enables and disables receive filter bits.
func (s *SNP) SetReceiveFilters(enable, disable uint32) error {
	return s.call("ReceiveFilters", s.p.ReceiveFilters, uintptr(enable), uintptr(disable), 0, 0, 0)
}

// GetStatus refreshes MediaPresent and returns one transmit buffer the
// interface has finished with (0 when none).
func (s *SNP) GetStatus() (txBuf uintptr, err error) {
	var irq uint32
	err = s.call("GetStatus", s.p.GetStatus, uintptr(unsafe.Pointer(&irq)), uintptr(unsafe.Pointer(&txBuf)))
	return txBuf, err
}

// Transmit queues one whole frame (Ethernet header included) at buf. The
// memory must stay untouched until GetStatus hands it back. It returns
// NotReady when the transmit queue is full.
func (s *SNP) Transmit(buf uintptr, n int) Status {
	return Call(s.p.Transmit, s.addr, 0, uintptr(n), buf, 0, 0, 0)
}

// Receive copies one received frame into buf and returns its length, or
// NotReady when nothing is waiting.
func (s *SNP) Receive(buf []byte) (int, Status) {
	n := uintptr(len(buf))
	st := Call(s.p.Receive, s.addr, 0, uintptr(unsafe.Pointer(&n)), uintptr(unsafe.Pointer(unsafe.SliceData(buf))), 0, 0, 0)
	return int(n), st
}

// MAC is the interface's current station address.
func (s *SNP) MAC() net.HardwareAddr {
	m := s.Mode()
	n := min(int(m.HwAddressSize), len(m.CurrentAddress))
	return append(net.HardwareAddr(nil), m.CurrentAddress[:n]...)
}
