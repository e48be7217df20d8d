package csum

import (
	"math/rand/v2"
	"testing"
)

// refChecksum is RFC 1071 done the obvious way.
func refChecksum(b []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return ^uint16(s)
}

func TestChecksum(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for n := 0; n < 300; n++ {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		if n%7 == 0 {
			for i := range b {
				b[i] = 0xff
			}
		}
		if got, want := Checksum(b), refChecksum(b); got != want {
			t.Fatalf("len %d: checksum %#04x, want %#04x", n, got, want)
		}
	}
}

// TestSumInPieces: a sum carried across even-length pieces equals the sum
// of the whole, which is how a pseudo-header and a payload combine.
func TestSumInPieces(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	b := make([]byte, 1001)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	for cut := 0; cut < len(b); cut += 2 {
		if got, want := Fold(Sum(Sum(0, b[:cut]), b[cut:])), Checksum(b); got != want {
			t.Fatalf("cut at %d: %#04x, want %#04x", cut, got, want)
		}
	}
}
