// The device side of the split virtqueues.

package devmodel

import "github.com/ociboot/ociboot/nic/virtio"

// Inject hands the device a frame from the wire. It goes into posted
// receive buffers at once if there are enough, else waits in the backlog.
// It reports false when the frame was dropped.
func (d *Device) Inject(frame []byte) bool { return d.InjectWithHeader(frame, RxHeader{}) }

// RxHeader is what the device says of a received packet in its virtio-net
// header (§5.1.6.4); num_buffers is the device's own business.
type RxHeader struct {
	Flags      uint8 // NEEDS_CSUM 1, DATA_VALID 2
	GSOType    uint8 // NONE 0, TCPV4 1, UDP 3, TCPV6 4, | ECN 0x80
	HdrLen     uint16
	GSOSize    uint16
	CsumStart  uint16
	CsumOffset uint16
}

// InjectWithHeader is Inject for a packet the host handed over with
// offload information: a segment larger than the MTU, a partial checksum.
// A header with anything set needs the driver to have accepted GUEST_CSUM;
// otherwise, as a device would not send it, the frame is dropped. Nothing
// else about the header is checked, so tests can send what a broken
// device would.
func (d *Device) InjectWithHeader(frame []byte, h RxHeader) bool {
	if !d.live() || d.Backlog() >= d.cfg.RxBacklog ||
		(h != RxHeader{} && d.drvFeatures&uint64(virtio.FeatureGuestCsum) == 0) {
		d.stats.RxDropped++
		return false
	}
	var b []byte
	if n := len(d.spare); n > 0 {
		b, d.spare = d.spare[n-1], d.spare[:n-1]
	}
	var hdr [netHdrLen]byte
	hdr[0], hdr[1] = h.Flags, h.GSOType
	le.PutUint16(hdr[2:], h.HdrLen)
	le.PutUint16(hdr[4:], h.GSOSize)
	le.PutUint16(hdr[6:], h.CsumStart)
	le.PutUint16(hdr[8:], h.CsumOffset)
	d.backlog = append(d.backlog, append(append(b[:0], hdr[:]...), frame...))
	d.processRx()
	return true
}

// Step does whatever device work is pending on both queues, as a device
// that polls instead of waiting for notifications would.
func (d *Device) Step() {
	d.processTx()
	d.processRx()
}

// nextAvail takes the next buffer the driver made available on q.
func (d *Device) nextAvail(qi int) (head uint16, ok bool) {
	q := &d.q[qi]
	avail, err := d.mem.Slice(q.driver, 4+2*int(q.size))
	if err != nil {
		d.broken("queue %d driver area: %v", qi, err)
		return 0, false
	}
	idx := le.Uint16(avail[2:])
	if n := idx - q.lastAvail; n == 0 {
		return 0, false
	} else if n > q.size {
		d.broken("queue %d avail index moved from %d to %d, more than the ring size %d", qi, q.lastAvail, idx, q.size)
		return 0, false
	}
	head = le.Uint16(avail[4+2*int(q.lastAvail&(q.size-1)):])
	q.lastAvail++
	return head, true
}

// chain resolves the descriptor chain at head into memory segments, all
// device-writable (receive) or all device-readable (transmit).
func (d *Device) chain(qi int, head uint16, writable bool) ([][]byte, bool) {
	q := &d.q[qi]
	table, err := d.mem.Slice(q.desc, 16*int(q.size))
	if err != nil {
		d.broken("queue %d descriptor table: %v", qi, err)
		return nil, false
	}
	segs := d.segs[:0]
	id := head
	for n := 0; ; n++ {
		if id >= q.size || n >= int(q.size) {
			d.broken("queue %d chain from %d: descriptor %d out of range or loop", qi, head, id)
			return nil, false
		}
		e := table[16*int(id):]
		addr, length, flags, next := le.Uint64(e), le.Uint32(e[8:]), le.Uint16(e[12:]), le.Uint16(e[14:])
		if flags&descFIndirect != 0 {
			d.broken("queue %d descriptor %d is indirect, which was not negotiated", qi, id)
			return nil, false
		}
		if (flags&descFWrite != 0) != writable {
			d.broken("queue %d descriptor %d has flags %#x, wrong direction", qi, id, flags)
			return nil, false
		}
		seg, err := d.mem.Slice(addr, int(length))
		if err != nil {
			d.broken("queue %d descriptor %d: %v", qi, id, err)
			return nil, false
		}
		segs = append(segs, seg)
		if flags&descFNext == 0 {
			break
		}
		id = next
	}
	d.segs = segs
	return segs, true
}

// usedElem is one buffer the device is done with: its head descriptor,
// the bytes written and the bytes the driver offered.
type usedElem struct {
	head             uint16
	length, capacity uint32
}

// complete writes a used element for head (or the fault configured for
// the queue instead) and publishes the new used index.
func (d *Device) complete(qi int, head uint16, length, capacity uint32) {
	d.completeAll(qi, []usedElem{{head, length, capacity}})
}

// completeAll writes the used elements of one packet and then publishes
// the used index once, so the driver sees all of them or none
// (§5.1.6.4.1). A configured fault applies to the first.
func (d *Device) completeAll(qi int, elems []usedElem) {
	q := &d.q[qi]
	used, err := d.mem.Slice(q.device, 4+8*int(q.size))
	if err != nil {
		d.broken("queue %d device area: %v", qi, err)
		return
	}
	put := func(id, length uint32) {
		e := used[4+8*int(q.usedIdx&(q.size-1)):]
		le.PutUint32(e, id)
		le.PutUint32(e[4:], length)
		q.usedIdx++
	}
	fault := q.fault
	if fault != FaultStall && fault != FaultShortMerge {
		q.fault = FaultNone
	}
	head, length, capacity := elems[0].head, elems[0].length, elems[0].capacity
	switch fault {
	case FaultBogusID:
		put(uint32(q.size)+7, length)
	case FaultOversizeLen:
		put(uint32(head), capacity+1)
	case FaultDuplicate:
		put(uint32(head), length)
		put(uint32(head), length)
	case FaultNotPosted:
		id := d.unposted(qi, head)
		if id == head {
			put(uint32(head), length)
		}
		put(uint32(id), length)
	case FaultUsedIdxJump:
		put(uint32(head), length)
		q.usedIdx += q.size + 1
	default:
		put(uint32(head), length)
	}
	for _, e := range elems[1:] {
		put(uint32(e.head), e.length)
	}
	le.PutUint16(used[2:], q.usedIdx)
	if avail, err := d.mem.Slice(q.driver, 2); err == nil && le.Uint16(avail)&availFNoInterrupt == 0 {
		d.isr |= 1
	}
}

// unposted finds a descriptor the driver does not have with the device:
// neither waiting in the avail ring nor just completed. If every slot is
// posted it returns head, making the completion a duplicate.
func (d *Device) unposted(qi int, head uint16) uint16 {
	q := &d.q[qi]
	posted := make([]bool, q.size)
	posted[head] = true
	if avail, err := d.mem.Slice(q.driver, 4+2*int(q.size)); err == nil {
		idx := le.Uint16(avail[2:])
		for i := q.lastAvail; i != idx; i++ {
			if id := le.Uint16(avail[4+2*int(i&(q.size-1)):]); id < q.size {
				posted[id] = true
			}
		}
	}
	for id, p := range posted {
		if !p {
			return uint16(id)
		}
	}
	return head
}

func (d *Device) processTx() {
	q := &d.q[TxQueue]
	// Borrow the scratch buffer: OnTransmit may call back into the device,
	// and a nested call must not overwrite the frame being delivered.
	scratch := d.scratch
	d.scratch = nil
	defer func() { d.scratch = scratch }()
	for d.live() && q.enabled && q.fault != FaultStall {
		head, ok := d.nextAvail(TxQueue)
		if !ok {
			return
		}
		segs, ok := d.chain(TxQueue, head, false)
		if !ok {
			return
		}
		scratch = scratch[:0]
		for _, s := range segs {
			scratch = append(scratch, s...)
		}
		if len(scratch) < netHdrLen {
			d.broken("transmit buffer %d is %d bytes, shorter than the virtio-net header", head, len(scratch))
			return
		}
		for i, b := range scratch[:netHdrLen] {
			if b != 0 {
				d.broken("transmit header byte %d is %#x; no transmit offloads were negotiated", i, b)
				return
			}
		}
		frame := scratch[netHdrLen:]
		d.stats.TxFrames++
		d.stats.TxBytes += uint64(len(frame))
		// Device-readable buffers complete with length 0: nothing was written.
		d.complete(TxQueue, head, 0, 0)
		if d.cfg.OnTransmit != nil {
			d.cfg.OnTransmit(frame)
		}
	}
}

func (d *Device) processRx() {
	q := &d.q[RxQueue]
	merge := d.drvFeatures&uint64(virtio.FeatureMrgRxBuf) != 0
	for d.Backlog() > 0 && d.live() && q.enabled && q.fault != FaultStall {
		entry := d.backlog[d.bhead] // virtio-net header, then the frame
		// Without MRG_RXBUF a packet gets one buffer, which must hold it;
		// with it, as many buffers as it takes (§5.1.6.3.2), and the packet
		// waits until the driver has posted enough.
		var elems []usedElem
		var segs [][]byte
		room := 0
		for len(elems) == 0 || (merge && room < len(entry)) {
			head, ok := d.nextAvail(RxQueue)
			if !ok {
				q.lastAvail -= uint16(len(elems)) // not enough yet: give back what was taken
				return
			}
			chain, ok := d.chain(RxQueue, head, true)
			if !ok {
				return
			}
			capacity := 0
			for _, c := range chain {
				capacity += len(c)
			}
			elems = append(elems, usedElem{head: head, capacity: uint32(capacity)})
			segs = append(segs, chain...)
			room += capacity
		}
		d.popBacklog()
		if room < len(entry) {
			d.violate("receive buffer %d holds %d bytes, frame needs %d", elems[0].head, room, len(entry))
			d.stats.RxDropped++
			d.complete(RxQueue, elems[0].head, 0, elems[0].capacity)
		} else {
			// num_buffers is 1 without MRG_RXBUF (§5.1.6.4).
			n := len(elems)
			if q.fault == FaultShortMerge {
				q.fault = FaultNone
				n++
			}
			le.PutUint16(entry[10:], uint16(n))
			scatter(segs, entry)
			for i, left := 0, len(entry); i < len(elems); i++ {
				elems[i].length = uint32(min(left, int(elems[i].capacity)))
				left -= int(elems[i].length)
			}
			frame := len(entry) - netHdrLen
			d.stats.RxFrames++
			d.stats.RxBytes += uint64(frame)
			d.completeAll(RxQueue, elems)
		}
		d.spare = append(d.spare, entry[:0])
	}
}

// scatter writes the concatenation of parts across segs, which must hold it.
func scatter(segs [][]byte, parts ...[]byte) {
	si, so := 0, 0
	for _, p := range parts {
		for len(p) > 0 {
			n := copy(segs[si][so:], p)
			p, so = p[n:], so+n
			if so == len(segs[si]) {
				si, so = si+1, 0
			}
		}
	}
}

func (d *Device) popBacklog() {
	d.backlog[d.bhead] = nil
	d.bhead++
	// Compact once the consumed prefix dominates, so the array is reused
	// instead of growing while the backlog never quite drains.
	if d.bhead == len(d.backlog) || d.bhead > len(d.backlog)/2 {
		n := copy(d.backlog, d.backlog[d.bhead:])
		clear(d.backlog[n:])
		d.backlog, d.bhead = d.backlog[:n], 0
	}
}
