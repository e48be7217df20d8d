package stack

import "sync/atomic"

// ring is a byte ring shared by one producer and one consumer goroutine
// (a connection actor and the goroutine calling Read or Write). Positions
// are absolute byte counts; only head and tail are shared, so the producer
// may fill the free space beyond tail (received out-of-order data) without
// the consumer seeing it until tail moves.
type ring struct {
	buf  []byte
	head atomic.Uint64 // consumer position
	tail atomic.Uint64 // producer position
}

func newRing(n int) *ring { return &ring{buf: make([]byte, n)} }

func (r *ring) size() int { return len(r.buf) }
func (r *ring) used() int { return int(r.tail.Load() - r.head.Load()) }
func (r *ring) free() int { return len(r.buf) - r.used() }

// copyIn writes p at absolute position pos.
func (r *ring) copyIn(pos uint64, p []byte) {
	i := int(pos % uint64(len(r.buf)))
	n := copy(r.buf[i:], p)
	copy(r.buf, p[n:])
}

// copyOut reads len(p) bytes at absolute position pos.
func (r *ring) copyOut(pos uint64, p []byte) {
	i := int(pos % uint64(len(r.buf)))
	n := copy(p, r.buf[i:])
	copy(p[n:], r.buf)
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
	n := min(len(p), len(r.buf)-int(t-r.head.Load()))
	if n == 0 {
		return 0
	}
	r.copyIn(t, p[:n])
	r.tail.Store(t + uint64(n))
	return n
}
