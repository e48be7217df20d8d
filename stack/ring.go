package stack

import "sync/atomic"

// ring is a byte ring shared by one producer and one consumer goroutine
// (a connection actor and the goroutine calling Read or Write). Positions
// are absolute byte counts; only head and tail are shared, so the producer
// may fill the free space beyond tail (received out-of-order data) without
// the consumer seeing it until tail moves.
//
// The bytes live in chunks of ringChunk rather than one array: the Go
// heap hands out memory first-fit by address and, under efirt, never gives
// it back, so a multi-MiB array freed by one boot attempt is split up by
// small objects before the next attempt's ring asks for it, and the
// runtime grows by a ring per attempt. Chunks fit the holes.
type ring struct {
	chunks [][]byte
	n      int
	head   atomic.Uint64 // consumer position
	tail   atomic.Uint64 // producer position
}

// ringChunk is the size of a ring's chunks (the last may be shorter).
const ringChunk = 64 << 10

func newRing(n int) *ring {
	r := &ring{n: n}
	for left := n; left > 0; left -= ringChunk {
		r.chunks = append(r.chunks, make([]byte, min(left, ringChunk)))
	}
	return r
}

func (r *ring) size() int { return r.n }
func (r *ring) used() int { return int(r.tail.Load() - r.head.Load()) }
func (r *ring) free() int { return r.n - r.used() }

// at is the ring's memory from offset i to the end of its chunk.
func (r *ring) at(i int) []byte { return r.chunks[i/ringChunk][i%ringChunk:] }

// copyIn writes p at absolute position pos.
func (r *ring) copyIn(pos uint64, p []byte) {
	i := int(pos % uint64(r.n))
	for len(p) > 0 {
		k := copy(r.at(i), p)
		p = p[k:]
		if i += k; i == r.n {
			i = 0
		}
	}
}

// copyOut reads len(p) bytes at absolute position pos.
func (r *ring) copyOut(pos uint64, p []byte) {
	i := int(pos % uint64(r.n))
	for len(p) > 0 {
		k := copy(p, r.at(i))
		p = p[k:]
		if i += k; i == r.n {
			i = 0
		}
	}
}

// read is the consumer's read of what the producer published.
func (r *ring) read(p []byte) int {
	h := r.head.Load()
	n := min(len(p), int(r.tail.Load()-h))
	if n == 0 {
		return 0
	}
	r.copyOut(h, p[:n])
	r.head.Store(h + uint64(n))
	return n
}

// write is the producer's append; it returns how much fitted.
func (r *ring) write(p []byte) int {
	t := r.tail.Load()
	n := min(len(p), r.n-int(t-r.head.Load()))
	if n == 0 {
		return 0
	}
	r.copyIn(t, p[:n])
	r.tail.Store(t + uint64(n))
	return n
}
