package virtio

import (
	"encoding/binary"
	"fmt"
	"sync/atomic"
	"unsafe"
)

// Split virtqueue layout (§2.7): descriptor table of 16-byte entries (addr
// le64, len le32, flags le16, next le16), the driver ("avail") area (flags,
// idx, ring[size] of le16) and the device ("used") area (flags, idx,
// ring[size] of {id le32, len le32}).
const (
	descSize    = 16
	descFNext   = 1
	descFWrite  = 2
	availFNoInt = 1 // VIRTQ_AVAIL_F_NO_INTERRUPT: we poll
	usedFNoNtfy = 1 // VIRTQ_USED_F_NO_NOTIFY

	maxQueueSize = 32768
)

var le = binary.LittleEndian

// queue is the driver side of one split virtqueue in which every descriptor
// i owns packet buffer i for good: no chains, no indirect tables, so a slot
// is either with the device (inflight) or with the driver.
//
// All bookkeeping the driver relies on lives here in Go memory; ring memory
// is only written, except used.idx, used.flags and used elements, which are
// validated before use because the device may write anything there.
type queue struct {
	index     uint16
	size      uint16
	ring      Buffer // descriptor table, avail area, used area
	bufs      Buffer // size packet buffers of stride bytes
	stride    int
	bufLen    int // bytes of each buffer offered to the device
	availOff  int
	usedOff   int
	notifyOff uint64 // within the notify region

	availIdx uint16 // next avail.idx to publish
	usedIdx  uint16 // used.idx up to which entries were consumed
	// consumed counts used entries ever taken; seen is the count known to be
	// written by the device at the last read of used.idx. postedAt[i] is seen
	// at the time slot i was last made available: an entry below it was
	// written before that posting, so naming i there is a duplicate.
	consumed    uint64
	seen        uint64
	postedAt    []uint64
	inflight    []bool
	outstanding int
}

// ringLayout gives offsets of the avail and used areas and the total size.
// The table is 16-aligned by allocation; the avail area needs 2 and the
// used area 4 (§2.7); used starts on its own cache line so device writes do
// not share a line with driver writes.
func ringLayout(size int) (availOff, usedOff, total int) {
	availOff = descSize * size
	usedOff = (availOff + 6 + 2*size + 63) &^ 63
	return availOff, usedOff, usedOff + 6 + 8*size
}

func newQueue(dma DMA, index, size uint16, bufLen int) (*queue, error) {
	q := &queue{index: index, size: size, bufLen: bufLen, stride: (bufLen + 63) &^ 63}
	var total int
	q.availOff, q.usedOff, total = ringLayout(int(size))
	var err error
	if q.ring, err = dma.Alloc(total, 64); err != nil {
		return nil, fmt.Errorf("virtio-net: queue %d: allocating %d ring bytes: %w", index, total, err)
	}
	if q.bufs, err = dma.Alloc(q.stride*int(size), 64); err != nil {
		q.ring.Free()
		return nil, fmt.Errorf("virtio-net: queue %d: allocating %d buffer bytes: %w", index, q.stride*int(size), err)
	}
	if len(q.ring.Bytes()) < total || len(q.bufs.Bytes()) < q.stride*int(size) {
		q.free()
		return nil, fmt.Errorf("virtio-net: queue %d: DMA allocator returned short buffers", index)
	}
	if uintptr(unsafe.Pointer(&q.ring.Bytes()[0]))%4 != 0 {
		q.free()
		return nil, fmt.Errorf("virtio-net: queue %d: DMA allocator returned ring memory the CPU sees unaligned", index)
	}
	// DMA memory comes uninitialised, and the used area must start zeroed
	// (§4.1.5.1.3) or a stale used.idx would look like completions.
	clear(q.ring.Bytes())
	le.PutUint16(q.ring.Bytes()[q.availOff:], availFNoInt)
	q.postedAt = make([]uint64, size)
	q.inflight = make([]bool, size)
	return q, nil
}

func (q *queue) free() {
	if q.ring != nil {
		q.ring.Free()
		q.ring = nil
	}
	if q.bufs != nil {
		q.bufs.Free()
		q.bufs = nil
	}
}

func (q *queue) descAddr() uint64   { return q.ring.Addr() }
func (q *queue) driverAddr() uint64 { return q.ring.Addr() + uint64(q.availOff) }
func (q *queue) deviceAddr() uint64 { return q.ring.Addr() + uint64(q.usedOff) }

// buf is the CPU view of packet buffer id.
func (q *queue) buf(id uint16) []byte {
	off := int(id) * q.stride
	return q.bufs.Bytes()[off : off+q.bufLen : off+q.bufLen]
}

// post hands slot id to the device with n valid bytes (TX) or n writable
// bytes (RX). It becomes visible at the next publish.
func (q *queue) post(id uint16, n int, flags uint16) {
	r := q.ring.Bytes()
	// The descriptor is rewritten in full every time, so the driver never
	// depends on table contents surviving in memory the device can write.
	d := r[int(id)*descSize : int(id)*descSize+descSize]
	le.PutUint64(d[0:], q.bufs.Addr()+uint64(int(id)*q.stride))
	le.PutUint32(d[8:], uint32(n))
	le.PutUint16(d[12:], flags)
	le.PutUint16(d[14:], 0)
	slot := q.availOff + 4 + 2*int(q.availIdx&(q.size-1))
	le.PutUint16(r[slot:], id)
	q.availIdx++
	q.inflight[id] = true
	q.postedAt[id] = q.seen
	q.outstanding++
}

// header is the first word of the avail or used area at off: flags in
// its low half, idx in its high half (the rings are little-endian, as every
// port we build for is). The indices are shared with the device while it
// runs, so they are read and written whole through this word: as plain
// 16-bit accesses Go may split them into two byte accesses (it does on
// riscv64), and the device then sees an index half updated, or we read one
// — seen as a used index 258 ahead in a ring of 256.
func (q *queue) header(off int) *uint32 {
	return (*uint32)(unsafe.Pointer(&q.ring.Bytes()[off]))
}

// publish makes posted slots visible and says whether the device wants a
// notification. Descriptors and ring slots must be in memory before the
// index moves, and the index before used.flags is read (otherwise a device
// that just turned notifications back on could be missed).
func (q *queue) publish() (notify bool) {
	fence()
	atomic.StoreUint32(q.header(q.availOff), availFNoInt|uint32(q.availIdx)<<16)
	return q.wantsNotify()
}

// wantsNotify reads the device's VIRTQ_USED_F_NO_NOTIFY hint.
func (q *queue) wantsNotify() bool {
	fence()
	return atomic.LoadUint32(q.header(q.usedOff))&usedFNoNtfy == 0
}

// ready reads used.idx and returns how many new entries the device claims.
func (q *queue) ready() (int, error) {
	idx := uint16(atomic.LoadUint32(q.header(q.usedOff)) >> 16)
	n := int(idx - q.usedIdx)
	if n > q.outstanding {
		return 0, fmt.Errorf("%w: queue %d used index moved from %d to %d (%d entries) with %d buffers outstanding in a ring of %d",
			ErrDeviceFault, q.index, q.usedIdx, idx, n, q.outstanding, q.size)
	}
	if n > 0 {
		fence() // entries were written before the index; read them after it
	}
	q.seen = q.consumed + uint64(n)
	return n, nil
}

// pop takes the next used entry; callers only call it for entries ready
// reported. The element is validated against the driver's own bookkeeping.
func (q *queue) pop() (id uint16, length uint32, err error) {
	e := q.ring.Bytes()[q.usedOff+4+8*int(q.usedIdx&(q.size-1)):]
	rawID, length := le.Uint32(e[0:]), le.Uint32(e[4:])
	pos := q.consumed
	q.usedIdx++
	q.consumed++
	if rawID >= uint32(q.size) {
		return 0, 0, fmt.Errorf("%w: queue %d used entry %d names descriptor %d, ring has %d",
			ErrDeviceFault, q.index, pos, rawID, q.size)
	}
	id = uint16(rawID)
	if !q.inflight[id] || pos < q.postedAt[id] {
		return 0, 0, fmt.Errorf("%w: queue %d used entry %d completes descriptor %d, which is not outstanding (duplicate or never posted)",
			ErrDeviceFault, q.index, pos, id)
	}
	q.inflight[id] = false
	q.outstanding--
	return id, length, nil
}
