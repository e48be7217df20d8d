// Package csum computes the Internet checksum (RFC 1071). The virtio driver
// completes the partial checksums a device hands over with it, and the
// stack verifies and fills in its headers' checksums.
package csum

import (
	"encoding/binary"
	"math/bits"
)

// Sum adds b to the running one's-complement sum acc, 8 bytes at a time:
// folding a sum of big-endian 64-bit words gives the same 16-bit result as
// summing 16-bit words (RFC 1071), at a quarter of the additions.
// b must start at an even offset of the checksummed data unless it is last.
func Sum(acc uint64, b []byte) uint64 {
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
	if len(b) == 0 {
		return acc
	}
	var t [8]byte
	copy(t[:], b)
	acc, c = bits.Add64(acc, binary.BigEndian.Uint64(t[:]), 0)
	return acc + c
}

// Fold reduces a running sum to the 16-bit one's-complement checksum field
// value (already complemented).
func Fold(acc uint64) uint16 {
	acc = (acc >> 32) + (acc & 0xffffffff)
	acc = (acc >> 32) + (acc & 0xffffffff)
	acc = (acc >> 16) + (acc & 0xffff)
	acc = (acc >> 16) + (acc & 0xffff)
	acc = (acc >> 16) + (acc & 0xffff)
	return ^uint16(acc)
}

// Checksum is the Internet checksum of b.
func Checksum(b []byte) uint16 { return Fold(Sum(0, b)) }
