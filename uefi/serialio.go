package uefi

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"runtime"
	"unsafe"
)

// SerialIoProtocolGUID is EFI_SERIAL_IO_PROTOCOL_GUID.
var SerialIoProtocolGUID = NewGUID(0xbb25cf6f, 0xf1d4, 0x11d2, [8]byte{0x9a, 0x0c, 0x00, 0x90, 0x27, 0x3f, 0xc1, 0xfd})

// DevicePathProtocolGUID is EFI_DEVICE_PATH_PROTOCOL_GUID.
var DevicePathProtocolGUID = NewGUID(0x09576e91, 0x6d3f, 0x11d2, [8]byte{0x8e, 0x39, 0x00, 0xa0, 0xc9, 0x69, 0x72, 0x3b})

// GlobalVariableGUID is EFI_GLOBAL_VARIABLE, the vendor of ConOut and kin.
var GlobalVariableGUID = NewGUID(0x8be4df61, 0x93ca, 0x11d2, [8]byte{0xaa, 0x0d, 0x00, 0xe0, 0x98, 0x03, 0x2b, 0x8c})

// SerialIoProtocol is EFI_SERIAL_IO_PROTOCOL (UEFI 2.10 §12.8).
type SerialIoProtocol struct {
	Revision       uint32
	_              uint32
	Reset          uintptr
	SetAttributes  uintptr
	SetControl     uintptr
	GetControl     uintptr
	Write          uintptr
	Read           uintptr
	Mode           uintptr // *SerialIoMode
	DeviceTypeGUID uintptr // revision 1.1 and later
}

// SerialIoMode is SERIAL_IO_MODE.
type SerialIoMode struct {
	ControlMask      uint32
	Timeout          uint32
	BaudRate         uint64
	ReceiveFifoDepth uint32
	DataBits         uint32
	Parity           uint32
	StopBits         uint32
}

// SerialIo is a serial port's Serial IO protocol.
type SerialIo struct {
	Handle Handle
	p      *SerialIoProtocol
	addr   uintptr
}

// OpenSerialIo gets the Serial IO protocol of h, leaving the firmware's
// drivers (a terminal on top of it, typically) in place.
func OpenSerialIo(h Handle) (*SerialIo, error) {
	iface, err := HandleProtocol(h, &SerialIoProtocolGUID)
	if err != nil {
		return nil, err
	}
	return &SerialIo{Handle: h, p: at[SerialIoProtocol](iface), addr: iface}, nil
}

// Mode returns the port's current settings.
func (s *SerialIo) Mode() SerialIoMode {
	if s.p.Mode == 0 {
		return SerialIoMode{}
	}
	return *at[SerialIoMode](s.p.Mode)
}

// Write sends p to the port as it is (no newline translation).
func (s *SerialIo) Write(p []byte) (int, error) {
	done := 0
	for done < len(p) {
		n := uintptr(len(p) - done)
		st := Call(s.p.Write, s.addr, uintptr(unsafe.Pointer(&n)), uintptr(unsafe.Pointer(&p[done])))
		done += int(n)
		if err := st.Err(); err != nil {
			runtime.KeepAlive(p)
			return done, fmt.Errorf("uefi: SerialIo Write on handle %#x: %w", uintptr(s.Handle), err)
		}
		if n == 0 {
			runtime.KeepAlive(p)
			return done, fmt.Errorf("uefi: SerialIo Write on handle %#x: %w", uintptr(s.Handle), Timeout)
		}
	}
	runtime.KeepAlive(p)
	return done, nil
}

// DevicePathOf returns the device path of handle h as bytes, End node
// included.
func DevicePathOf(h Handle) ([]byte, error) {
	iface, err := HandleProtocol(h, &DevicePathProtocolGUID)
	if err != nil {
		return nil, err
	}
	b, err := devicePathAt(iface)
	if err != nil {
		return nil, fmt.Errorf("uefi: device path of handle %#x: %w", uintptr(h), err)
	}
	return b, nil
}

// devicePathAt copies the device path at addr in firmware memory, End node
// included, walking the nodes to learn its length: each node says its own.
func devicePathAt(addr uintptr) ([]byte, error) {
	n := 0
	for {
		hdr := unsafe.Slice(at[byte](addr+uintptr(n)), 4)
		l := int(binary.LittleEndian.Uint16(hdr[2:]))
		if l < 4 || n+l > 64<<10 {
			return nil, fmt.Errorf("bad node length %d at %d", l, n)
		}
		n += l
		if hdr[0] == 0x7f && hdr[1] == 0xff {
			break
		}
	}
	return append([]byte(nil), unsafe.Slice(at[byte](addr), n)...), nil
}

// GetVariable reads the variable name of vendor.
func GetVariable(name string, vendor *GUID) ([]byte, error) {
	n16 := UCS2(name)
	size := uintptr(256)
	for range 2 {
		buf := make([]byte, size)
		var attrs uint32
		st := Call(RT().GetVariable, uintptr(unsafe.Pointer(&n16[0])), uintptr(unsafe.Pointer(vendor)),
			uintptr(unsafe.Pointer(&attrs)), uintptr(unsafe.Pointer(&size)), uintptr(unsafe.Pointer(&buf[0])))
		runtime.KeepAlive(n16)
		if st == BufferTooSmall {
			continue
		}
		if err := st.Err(); err != nil {
			return nil, fmt.Errorf("uefi: GetVariable(%s): %w", name, err)
		}
		return buf[:size], nil
	}
	return nil, fmt.Errorf("uefi: GetVariable(%s): the variable keeps growing", name)
}

// DevicePathNode is one node of a device path.
type DevicePathNode struct {
	Type, SubType byte
	Data          []byte // after the 4-byte header
}

// ParseDevicePaths splits a (possibly multi-instance) device path into its
// instances, each a list of nodes without the End nodes.
func ParseDevicePaths(b []byte) ([][]DevicePathNode, error) {
	var out [][]DevicePathNode
	var cur []DevicePathNode
	for len(b) > 0 {
		if len(b) < 4 {
			return nil, fmt.Errorf("uefi: device path truncated")
		}
		l := int(binary.LittleEndian.Uint16(b[2:]))
		if l < 4 || l > len(b) {
			return nil, fmt.Errorf("uefi: device path node of length %d with %d bytes left", l, len(b))
		}
		n := DevicePathNode{Type: b[0], SubType: b[1], Data: b[4:l]}
		b = b[l:]
		if n.Type == 0x7f { // End: 0x01 ends an instance, 0xff the whole path
			out = append(out, cur)
			cur = nil
			if n.SubType == 0xff {
				return out, nil
			}
			continue
		}
		cur = append(cur, n)
	}
	if cur != nil {
		out = append(out, cur)
	}
	return out, nil
}

// DevicePathHasPrefix tells whether path begins with the nodes of prefix.
// UART nodes (messaging, subtype 14) match whatever their settings: a
// console variable keeps the line settings of the day it was written,
// which need not be the port's now.
func DevicePathHasPrefix(path, prefix []DevicePathNode) bool {
	if len(prefix) == 0 || len(prefix) > len(path) {
		return false
	}
	for i, p := range prefix {
		n := path[i]
		if n.Type != p.Type || n.SubType != p.SubType {
			return false
		}
		if n.Type == 3 && n.SubType == 14 {
			continue
		}
		if !bytes.Equal(n.Data, p.Data) {
			return false
		}
	}
	return true
}
