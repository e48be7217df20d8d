package stack

import "encoding/binary"

// pseudoSum is the running sum of the IPv4 pseudo-header for a transport
// checksum (RFC 793, RFC 768).
func pseudoSum(src, dst [4]byte, proto uint8, length int) uint64 {
	v := uint64(binary.BigEndian.Uint32(src[:])) + uint64(binary.BigEndian.Uint32(dst[:]))
	return v + uint64(proto) + uint64(length)
}
