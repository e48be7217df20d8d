package actors

import "sync"

// A Batch carries several frames or packets through one channel send, so the
// per-message cost of a channel operation is paid once per batch rather than
// once per frame: under emulation that cost dominates small frames.
//
// Bufs[i] is a slice of a pooled buffer. The receiver of a batch owns it and
// must Release it (or pass it on, transferring ownership) when done.
type Batch struct {
	Bufs [][]byte
	pool *Pool
}

// Pool recycles batches together with their buffers.
type Pool struct {
	bufSize   int
	batchSize int
	p         sync.Pool
}

// NewPool returns a pool of batches holding up to batchSize buffers of
// bufSize bytes each.
func NewPool(bufSize, batchSize int) *Pool {
	p := &Pool{bufSize: bufSize, batchSize: batchSize}
	p.p.New = func() any {
		b := &Batch{Bufs: make([][]byte, 0, batchSize), pool: p}
		return b
	}
	return p
}

// BufSize is the capacity of each buffer in the pool's batches.
func (p *Pool) BufSize() int { return p.bufSize }

// BatchSize is the most buffers a batch holds.
func (p *Pool) BatchSize() int { return p.batchSize }

// Get returns an empty batch (len(Bufs) == 0).
func (p *Pool) Get() *Batch {
	b := p.p.Get().(*Batch)
	b.Bufs = b.Bufs[:0]
	return b
}

// Full returns a batch holding BatchSize buffers, each resliced to its full
// capacity (at least BufSize), ready to be filled by a receiver such as a
// NIC driver, which may replace a buffer with a larger one.
func (p *Pool) Full() *Batch {
	b := p.Get()
	for i := 0; i < p.batchSize; i++ {
		b.Bufs = append(b.Bufs, b.buf())
	}
	return b
}

// Append adds a buffer of n bytes (n ≤ BufSize) to the batch and returns it
// for the caller to fill. It returns nil when the batch is full.
func (b *Batch) Append(n int) []byte {
	if len(b.Bufs) == cap(b.Bufs) || n > b.pool.bufSize {
		return nil
	}
	buf := b.buf()[:n]
	b.Bufs = append(b.Bufs, buf)
	return buf
}

// Full reports whether the batch holds as many buffers as it can.
func (b *Batch) Full() bool { return len(b.Bufs) == cap(b.Bufs) }

// Len is the number of buffers in the batch.
func (b *Batch) Len() int { return len(b.Bufs) }

// Bytes is the total length of the batch's buffers.
func (b *Batch) Bytes() int {
	n := 0
	for _, buf := range b.Bufs {
		n += len(buf)
	}
	return n
}

// buf reuses the backing array left in the slot past len, if any. It may
// be larger than the pool's size: a NIC driver puts a larger buffer in a
// slot for a frame that did not fit (a segment the host did not cut to the
// MTU), and the slot keeps it for the next one.
func (b *Batch) buf() []byte {
	i := len(b.Bufs)
	if i < cap(b.Bufs) {
		if old := b.Bufs[:i+1][i]; cap(old) >= b.pool.bufSize {
			return old[:cap(old)]
		}
	}
	return make([]byte, b.pool.bufSize)
}

// Release returns the batch and its buffers to the pool. The caller must not
// touch the batch or any of its buffers afterwards.
func (b *Batch) Release() {
	if b == nil || b.pool == nil {
		return
	}
	b.Bufs = b.Bufs[:0]
	b.pool.p.Put(b)
}
