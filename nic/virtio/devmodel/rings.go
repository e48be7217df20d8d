// The device side of the split virtqueues.

package devmodel

// Inject hands the device a frame from the wire. It goes into a posted
// receive buffer at once if there is one, else waits in the backlog. It
// reports false when the frame was dropped.
func (d *Device) Inject(frame []byte) bool {
	if !d.live() || d.Backlog() >= d.cfg.RxBacklog {
		d.stats.RxDropped++
		return false
	}
	var b []byte
	if n := len(d.spare); n > 0 {
		b, d.spare = d.spare[n-1], d.spare[:n-1]
	}
	d.backlog = append(d.backlog, append(b[:0], frame...))
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

// complete writes a used element for head (or the fault configured for
// the queue instead) and publishes the new used index.
func (d *Device) complete(qi int, head uint16, length, capacity uint32) {
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
	if fault != FaultStall {
		q.fault = FaultNone
	}
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
				d.broken("transmit header byte %d is %#x; no offloads were negotiated", i, b)
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
	for d.Backlog() > 0 && d.live() && q.enabled && q.fault != FaultStall {
		head, ok := d.nextAvail(RxQueue)
		if !ok {
			return
		}
		segs, ok := d.chain(RxQueue, head, true)
		if !ok {
			return
		}
		frame := d.popBacklog()
		capacity := 0
		for _, s := range segs {
			capacity += len(s)
		}
		if capacity < netHdrLen+len(frame) {
			d.violate("receive buffer %d holds %d bytes, frame needs %d", head, capacity, netHdrLen+len(frame))
			d.stats.RxDropped++
			d.complete(RxQueue, head, 0, uint32(capacity))
		} else {
			var hdr [netHdrLen]byte
			le.PutUint16(hdr[10:], 1) // num_buffers is 1 without MRG_RXBUF
			scatter(segs, hdr[:], frame)
			d.stats.RxFrames++
			d.stats.RxBytes += uint64(len(frame))
			d.complete(RxQueue, head, uint32(netHdrLen+len(frame)), uint32(capacity))
		}
		d.spare = append(d.spare, frame[:0])
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

func (d *Device) popBacklog() []byte {
	f := d.backlog[d.bhead]
	d.backlog[d.bhead] = nil
	d.bhead++
	// Compact once the consumed prefix dominates, so the array is reused
	// instead of growing while the backlog never quite drains.
	if d.bhead == len(d.backlog) || d.bhead > len(d.backlog)/2 {
		n := copy(d.backlog, d.backlog[d.bhead:])
		clear(d.backlog[n:])
		d.backlog, d.bhead = d.backlog[:n], 0
	}
	return f
}
