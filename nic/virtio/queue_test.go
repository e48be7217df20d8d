package virtio

import (
	"sync/atomic"
	"testing"
)

// heapBuffer is DMA memory for tests that need no device.
type heapBuffer []byte

func (b heapBuffer) Bytes() []byte { return b }
func (b heapBuffer) Addr() uint64  { return 0x1000 }
func (b heapBuffer) Free()         {}

// TestIndicesWhole: the device reads avail.idx and writes used.idx while
// the driver runs, so each must move in one access. Here a second goroutine
// plays the device, flipping used.idx across a byte boundary (0x00ff and
// 0x0100) while the driver reads it, and checking every avail.idx the
// driver publishes, flipped the same way, reads whole. Run on riscv64 (make
// test does, under qemu-user), where Go splits 16-bit accesses into bytes.
func TestIndicesWhole(t *testing.T) {
	const size = 256
	availOff, usedOff, total := ringLayout(size)
	q := &queue{size: size, ring: make(heapBuffer, total), availOff: availOff, usedOff: usedOff, outstanding: size}
	const rounds = 1 << 18
	done := make(chan string, 1)
	go func() {
		avail := q.header(availOff)
		used := q.header(usedOff)
		for i := range rounds {
			atomic.StoreUint32(used, uint32(0x00ff+i%2)<<16)
			if idx := atomic.LoadUint32(avail) >> 16; idx != 0 && idx != 0x00ff && idx != 0x0100 {
				done <- "the device read a torn avail.idx"
				return
			}
		}
		done <- ""
	}()
	for i := 0; ; i++ {
		select {
		case msg := <-done:
			if msg != "" {
				t.Fatal(msg)
			}
			return
		default:
		}
		if n, err := q.ready(); err != nil || (n != 0 && n != 0xff && n != 0x100) {
			t.Fatalf("the driver read a torn used.idx: %d entries, %v", n, err)
		}
		q.availIdx = uint16(0x00ff + i%2)
		q.publish()
	}
}
