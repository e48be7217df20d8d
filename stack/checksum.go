package stack

import (
	"encoding/binary"
	"math/bits"
)

// sum adds b to the running one's-complement sum acc, 8 bytes at a time:
// folding a sum of big-endian 64-bit words gives the same 16-bit result as
// summing 16-bit words (RFC 1071), at a quarter of the additions.
// b must start at an even offset of the checksummed data unless it is last.
func sum(acc uint64, b []byte) uint64 {
	var c uint64
	for len(b) >= 32 {
		acc, c = bits.Add64(acc, binary.BigEndian.Uint64(b[0:8]), c)
		acc, c = bits.Add64(acc, binary.BigEndian.Uint64(b[8:16]), c)
		acc, c = bits.Add64(acc, binary.BigEndian.Uint64(b[16:24]), c)
		acc, c = bits.Add64(acc, binary.BigEndian.Uint64(b[24:32]), c)
		b = b[32:]
	}
	for len(b) >= 8 {
		acc, c = bits.Add64(acc, binary.BigEndian.Uint64(b), c)
		b = b[8:]
	}
	acc, c = bits.Add64(acc, c, 0)
	acc += c
	var tail uint64
	switch len(b) {
	case 0:
		return acc
	case 1, 2, 3, 4, 5, 6, 7:
		var t [8]byte
		copy(t[:], b)
		tail = binary.BigEndian.Uint64(t[:])
	}
	acc, c = bits.Add64(acc, tail, 0)
	return acc + c
}

// fold reduces a running sum to the 16-bit one's-complement checksum field
// value (already complemented).
func fold(acc uint64) uint16 {
	acc = (acc >> 32) + (acc & 0xffffffff)
	acc = (acc >> 32) + (acc & 0xffffffff)
	acc = (acc >> 16) + (acc & 0xffff)
	acc = (acc >> 16) + (acc & 0xffff)
	acc = (acc >> 16) + (acc & 0xffff)
	return ^uint16(acc)
}

// checksum is the Internet checksum of b.
func checksum(b []byte) uint16 { return fold(sum(0, b)) }

// pseudoSum is the running sum of the IPv4 pseudo-header for a transport
// checksum (RFC 793, RFC 768).
func pseudoSum(src, dst [4]byte, proto uint8, length int) uint64 {
	v := uint64(binary.BigEndian.Uint32(src[:])) + uint64(binary.BigEndian.Uint32(dst[:]))
	return v + uint64(proto) + uint64(length)
}
