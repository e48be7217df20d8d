package stack

import (
	"encoding/binary"
	"errors"

	"github.com/ociboot/ociboot/nic/csum"
)

// IP protocol numbers.
const (
	protoICMP = 1
	protoTCP  = 6
	protoUDP  = 17
)

const ipv4HeaderLen = 20 // without options; we never send options

// Reasons an IPv4 packet is dropped.
var (
	errTruncated = errors.New("truncated")
	errVersion   = errors.New("not IPv4")
	errIHL       = errors.New("bad header length")
	errTotalLen  = errors.New("bad total length")
	errChecksum  = errors.New("bad checksum")
	errFragment  = errors.New("fragment")
)

// ipv4 is the part of an IPv4 header the stack uses.
type ipv4 struct {
	ihl      int // header length in bytes
	totalLen int
	ttl      uint8
	proto    uint8
	src, dst [4]byte
}

// parseIPv4 validates the header of packet p and returns it with the
// payload (trimmed to the total length: link padding goes).
func parseIPv4(p []byte) (h ipv4, payload []byte, err error) {
	if len(p) < ipv4HeaderLen {
		return h, nil, errTruncated
	}
	if p[0]>>4 != 4 {
		return h, nil, errVersion
	}
	h.ihl = int(p[0]&0xf) * 4
	if h.ihl < ipv4HeaderLen || h.ihl > len(p) {
		return h, nil, errIHL
	}
	h.totalLen = int(binary.BigEndian.Uint16(p[2:4]))
	if h.totalLen < h.ihl || h.totalLen > len(p) {
		return h, nil, errTotalLen
	}
	if csum.Checksum(p[:h.ihl]) != 0 {
		return h, nil, errChecksum
	}
	// Fragments are dropped: nothing we talk to needs them (TCP uses the
	// MSS, DHCP and DNS fit one frame), and reassembly is an attack surface.
	if frag := binary.BigEndian.Uint16(p[6:8]); frag&0x3fff != 0 {
		return h, nil, errFragment
	}
	h.ttl = p[8]
	h.proto = p[9]
	h.src = [4]byte(p[12:16])
	h.dst = [4]byte(p[16:20])
	return h, p[h.ihl:h.totalLen], nil
}

// putIPv4 writes a 20-byte header for a packet of totalLen bytes into b.
func putIPv4(b []byte, totalLen int, id uint16, proto uint8, src, dst [4]byte) {
	_ = b[19]
	b[0] = 0x45
	b[1] = 0
	binary.BigEndian.PutUint16(b[2:4], uint16(totalLen))
	binary.BigEndian.PutUint16(b[4:6], id)
	binary.BigEndian.PutUint16(b[6:8], 0x4000) // DF: we size segments to the MTU
	b[8] = 64
	b[9] = proto
	b[10], b[11] = 0, 0
	copy(b[12:16], src[:])
	copy(b[16:20], dst[:])
	binary.BigEndian.PutUint16(b[10:12], csum.Checksum(b[:20]))
}
