package frames

import "encoding/binary"

// HeaderLen is the length of an Ethernet II header.
const HeaderLen = 14

// EtherTypes this package handles.
const (
	TypeIPv4 = 0x0800
	TypeARP  = 0x0806
)

// MAC is an Ethernet address as a comparable value.
type MAC [6]byte

// BroadcastMAC is the Ethernet broadcast address.
var BroadcastMAC = MAC{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

// Header is a parsed Ethernet II header.
type Header struct {
	Dst, Src MAC
	Type     uint16
}

// ParseHeader reads the Ethernet header at the start of frame. ok is false
// when the frame is too short to hold one.
func ParseHeader(frame []byte) (h Header, ok bool) {
	if len(frame) < HeaderLen {
		return h, false
	}
	copy(h.Dst[:], frame[0:6])
	copy(h.Src[:], frame[6:12])
	h.Type = binary.BigEndian.Uint16(frame[12:14])
	return h, true
}

// Put writes h into the first HeaderLen bytes of frame.
func (h Header) Put(frame []byte) {
	_ = frame[HeaderLen-1]
	copy(frame[0:6], h.Dst[:])
	copy(frame[6:12], h.Src[:])
	binary.BigEndian.PutUint16(frame[12:14], h.Type)
}

// IsMulticast reports whether m is a group address (broadcast included).
func (m MAC) IsMulticast() bool { return m[0]&1 != 0 }
