package stack

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

// TestRingAcrossChunks streams pseudo-random bytes through rings whose
// sizes do and do not divide into chunks, in pieces that straddle chunk
// and wrap boundaries, and checks what comes out is what went in.
func TestRingAcrossChunks(t *testing.T) {
	for _, size := range []int{100, ringChunk, 3*ringChunk + 1000, 4 << 20} {
		r := newRing(size)
		if r.size() != size {
			t.Fatalf("size %d: ring of %d", size, r.size())
		}
		rng := rand.New(rand.NewPCG(uint64(size), 1))
		src := make([]byte, 3*size+12345)
		for i := range src {
			src[i] = byte(rng.Uint32())
		}
		var got bytes.Buffer
		in := src
		buf := make([]byte, size)
		for got.Len() < len(src) {
			if len(in) > 0 {
				in = in[r.write(in[:min(len(in), 1+rng.IntN(size))]):]
			}
			n := r.read(buf[:1+rng.IntN(size)])
			got.Write(buf[:n])
			if r.used() < 0 || r.used() > size || r.free() != size-r.used() {
				t.Fatalf("size %d: used %d free %d", size, r.used(), r.free())
			}
		}
		if !bytes.Equal(got.Bytes(), src) {
			t.Fatalf("size %d: bytes differ after a round trip through the ring", size)
		}
		// Out-of-order data is placed beyond tail with copyIn and read back
		// with copyOut before tail moves.
		pos := r.tail.Load() + uint64(size/3)
		p := src[:size/2]
		r.copyIn(pos, p)
		q := make([]byte, len(p))
		r.copyOut(pos, q)
		if !bytes.Equal(p, q) {
			t.Fatalf("size %d: copyOut does not return what copyIn wrote", size)
		}
	}
}
