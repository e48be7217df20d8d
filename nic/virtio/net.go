package virtio

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/ociboot/ociboot/nic/csum"
)

const (
	// netHdrLen is struct virtio_net_hdr with num_buffers, the size VERSION_1
	// always uses (§5.1.6).
	netHdrLen = 12
	ethHdrLen = 14
	// defaultMTU is assumed when the device does not report one.
	defaultMTU = 1500
	minMTU     = 68 // §5.1.4.1: a device never reports less

	rxQueue = 0
	txQueue = 1

	defaultQueueSize    = 256
	defaultResetTimeout = time.Second
)

// Receive offloads (§5.1.6.4). With GUEST_CSUM, GUEST_TSO4 and MRG_RXBUF
// the device hands over TCP segments the host has not cut to the MTU (up
// to a 64 KiB IPv4 packet, spread over several receive buffers) with the
// checksum left partial: a 64 MiB download from Linux over a tap comes in
// about 2k frames instead of 70k, and each frame costs the poller, the
// demux and the connection actor about the same whatever its size. The
// driver accepts the three (ReceiveOffloads) together or none.
const (
	// mergeBufLen is the size of each receive buffer with MRG_RXBUF: a
	// page, so a 64 KiB packet takes 17.
	mergeBufLen = 4096
	// maxOffloadFrame is the largest frame a TSO4 packet makes: the
	// largest IPv4 packet behind an Ethernet header.
	maxOffloadFrame = ethHdrLen + 65535

	// virtio_net_hdr fields (§5.1.6).
	hdrFlags      = 0
	hdrGSOType    = 1
	hdrCsumStart  = 6
	hdrCsumOffset = 8
	hdrNumBuffers = 10

	hdrFNeedsCsum = 1    // VIRTIO_NET_HDR_F_NEEDS_CSUM: checksum partial
	gsoNone       = 0    // VIRTIO_NET_HDR_GSO_NONE
	gsoTCPv4      = 1    // VIRTIO_NET_HDR_GSO_TCPV4
	gsoECN        = 0x80 // VIRTIO_NET_HDR_GSO_ECN
)

// Options tune Open. The zero value is usable.
type Options struct {
	// QueueSize caps the entries of each queue (a power of two up to
	// 32768); the device's maximum wins if smaller. 0 means 256.
	QueueSize int
	// ResetTimeout bounds the wait for the device to acknowledge a reset.
	// 0 means one second.
	ResetTimeout time.Duration
	// NoOffloads declines the receive offloads even when the device
	// offers them: every frame then fits MaxFrame.
	NoOffloads bool
}

// Stats are the driver's counters since Open.
type Stats struct {
	RxFrames, RxBytes uint64 // delivered to the caller, without virtio header
	TxFrames, TxBytes uint64 // queued to the device
	// RxDrops counts frames the device delivered that the driver discarded:
	// runts shorter than an Ethernet header, and with offloads packets
	// larger than an IPv4 packet can be, of a segmentation type not
	// negotiated, or with a partial checksum outside the frame.
	RxDrops uint64
	// RxMerged counts frames that arrived in more than one receive buffer
	// (segments the host did not cut to the MTU); RxCsumCompleted those
	// whose partial checksum the driver completed.
	RxMerged, RxCsumCompleted uint64
	// TxFull counts frames Transmit refused because the ring was full.
	TxFull uint64
	// Notifications counts doorbell writes (each one a BAR access, which in
	// firmware is a protocol call).
	Notifications uint64
}

// Net is an initialised virtio-net device.
type Net struct {
	t            transport
	transitional bool
	features     Features
	mac          net.HardwareAddr
	mtu          int
	maxFrame     int
	maxReceive   int  // maxFrame, or maxOffloadFrame with offloads
	offloads     bool // ReceiveOffloads negotiated
	rx, tx       *queue
	pieces       [][]byte // Receive's view of one packet's buffers
	txFree       []uint16
	rxDone       []uint16
	resetTimeout time.Duration
	stats        Stats
	err          error // sticky: set when the device broke or Close ran
}

// Open initialises the virtio-net device behind p (§3.1.1): it checks the
// identity, locates the virtio structures, resets the device, negotiates
// features, sets up queue 0 (receive) and 1 (transmit) in memory from dma,
// posts every receive buffer and sets DRIVER_OK.
func Open(p PCI, dma DMA, opts Options) (*Net, error) {
	if p == nil || dma == nil {
		return nil, errors.New("virtio-net: Open needs a PCI function and a DMA allocator")
	}
	qmax := opts.QueueSize
	if qmax == 0 {
		qmax = defaultQueueSize
	}
	if qmax < 1 || qmax > maxQueueSize || qmax&(qmax-1) != 0 {
		return nil, fmt.Errorf("virtio-net: queue size limit %d is not a power of two in 1..%d", qmax, maxQueueSize)
	}
	n := &Net{resetTimeout: opts.ResetTimeout, offloads: !opts.NoOffloads}
	if n.resetTimeout <= 0 {
		n.resetTimeout = defaultResetTimeout
	}
	var err error
	if n.transitional, err = identify(p); err != nil {
		return nil, err
	}
	t, err := findCaps(p)
	if err != nil {
		return nil, err
	}
	n.t = *t
	if err := enableDevice(p); err != nil {
		return nil, err
	}
	if err := n.t.reset(n.resetTimeout); err != nil {
		n.abandon()
		return nil, err
	}
	if err := n.init(dma, uint16(qmax)); err != nil {
		n.abandon()
		return nil, err
	}
	return n, nil
}

// enableDevice turns on memory decoding (for the BAR) and bus mastering (for
// the rings) unless the firmware binding already did.
func enableDevice(p PCI) error {
	cmd, err := cfgRead(p, pciCommand, 2)
	if err != nil {
		return err
	}
	want := cmd | pciCommandMemory | pciCommandBusMaster
	if want == cmd {
		return nil
	}
	if err := p.ConfigWrite(pciCommand, 2, want); err != nil {
		return fmt.Errorf("virtio-net: enabling memory and bus master: %w", err)
	}
	return nil
}

// init runs the steps after reset.
func (n *Net) init(dma DMA, qmax uint16) error {
	status := uint8(statusAcknowledge)
	if err := n.t.setStatus(status); err != nil {
		return err
	}
	status |= statusDriver
	if err := n.t.setStatus(status); err != nil {
		return err
	}
	offered, err := n.t.deviceFeatures()
	if err != nil {
		return err
	}
	if offered&FeatureVersion1 == 0 {
		return fmt.Errorf("virtio-net: device offers no VERSION_1 (features %v); legacy devices are not supported", offered)
	}
	// Accepted on purpose: MAC and STATUS for the obvious, MTU because
	// devices modelled on Apple VZ refuse FEATURES_OK without it,
	// ACCESS_PLATFORM because every address we hand out is a bus address
	// from the DMA allocator (PciIo Map), which is what it asks for, and
	// the receive offloads when all three are offered. Never accepted:
	// transmit offloads (we send little but ACKs) and the rest.
	accept := FeatureVersion1 | offered&(FeatureMAC|FeatureStatus|FeatureMTU|FeatureAccessPlatform)
	if n.offloads = n.offloads && offered&ReceiveOffloads == ReceiveOffloads; n.offloads {
		accept |= ReceiveOffloads
	}
	if err := n.t.setDriverFeatures(accept); err != nil {
		return err
	}
	status |= statusFeaturesOK
	if err := n.t.setStatus(status); err != nil {
		return err
	}
	got, err := n.t.status()
	if err != nil {
		return err
	}
	if got&statusFeaturesOK == 0 {
		return fmt.Errorf("virtio-net: device refused FEATURES_OK for features %v (offered %v)", accept, offered)
	}
	n.features = accept
	if err := n.readDeviceConfig(); err != nil {
		return err
	}
	numQueues, err := n.t.read(n.t.common, comNumQueues, 2)
	if err != nil {
		return err
	}
	if numQueues < 2 {
		return fmt.Errorf("virtio-net: device has %d queues, need receive and transmit", numQueues)
	}
	// Receive buffers hold the largest frame the device may send: 1526
	// bytes without MTU (§5.1.6.3.1), mtu+14+12 with it (§5.1.4.2). With
	// MRG_RXBUF a frame may span several, so they are a page each.
	rxLen := netHdrLen + n.maxFrame
	n.maxReceive = n.maxFrame
	if n.offloads {
		rxLen, n.maxReceive = mergeBufLen, maxOffloadFrame
	}
	if err := n.setupQueue(dma, rxQueue, qmax, rxLen); err != nil {
		return err
	}
	if err := n.setupQueue(dma, txQueue, qmax, netHdrLen+n.maxFrame); err != nil {
		return err
	}
	n.txFree = make([]uint16, 0, n.tx.size)
	for id := int(n.tx.size) - 1; id >= 0; id-- {
		n.txFree = append(n.txFree, uint16(id))
	}
	n.rxDone = make([]uint16, 0, n.rx.size)
	// Populating the receive queue before DRIVER_OK is allowed (§3.1.1
	// step 7); notifying is not, so that waits until after.
	for id := range n.rx.size {
		n.rx.post(id, n.rx.bufLen, descFWrite)
	}
	n.rx.publish()
	status |= statusDriverOK
	if err := n.t.setStatus(status); err != nil {
		return err
	}
	// The device may only have set its suppression flag once live.
	if n.rx.wantsNotify() {
		if err := n.notify(n.rx); err != nil {
			return err
		}
	}
	return nil
}

func (n *Net) readDeviceConfig() error {
	n.mtu = defaultMTU
	need := uint64(0)
	if n.features&FeatureMAC != 0 {
		need = netCfgMAC + 6
	}
	if n.features&FeatureStatus != 0 {
		need = netCfgStatus + 2
	}
	if n.features&FeatureMTU != 0 {
		need = netCfgMTU + 2
	}
	if need > 0 && !n.t.device.present {
		return fmt.Errorf("virtio-net: features %v negotiated but the device has no device configuration capability", n.features)
	}
	if need > n.t.device.len {
		return fmt.Errorf("virtio-net: device configuration is %d bytes, features %v need %d", n.t.device.len, n.features, need)
	}
	var mac [6]byte
	var mtu uint64
	err := n.t.readConfig(func() error {
		if n.features&FeatureMAC != 0 {
			for i := range mac {
				v, err := n.t.read(n.t.device, netCfgMAC+uint64(i), 1)
				if err != nil {
					return err
				}
				mac[i] = byte(v)
			}
		}
		if n.features&FeatureMTU != 0 {
			v, err := n.t.read(n.t.device, netCfgMTU, 2)
			if err != nil {
				return err
			}
			mtu = v
		}
		return nil
	})
	if err != nil {
		return err
	}
	if n.features&FeatureMAC != 0 {
		n.mac = net.HardwareAddr(mac[:])
	}
	if n.features&FeatureMTU != 0 {
		if mtu < minMTU {
			return fmt.Errorf("virtio-net: device reports MTU %d, below the minimum %d", mtu, minMTU)
		}
		n.mtu = int(mtu)
	}
	n.maxFrame = ethHdrLen + n.mtu
	return nil
}

// setupQueue configures queue index and stores it in n.rx or n.tx as soon as
// its memory exists, so abandon frees it whatever fails afterwards.
func (n *Net) setupQueue(dma DMA, index, qmax uint16, bufLen int) error {
	c := n.t.common
	if err := n.t.write(c, comQueueSelect, 2, uint64(index)); err != nil {
		return err
	}
	devSize, err := n.t.read(c, comQueueSize, 2)
	if err != nil {
		return err
	}
	if devSize == 0 || devSize&(devSize-1) != 0 || devSize > maxQueueSize {
		return fmt.Errorf("virtio-net: queue %d size %d is not a power of two in 1..%d", index, devSize, maxQueueSize)
	}
	if en, err := n.t.read(c, comQueueEnable, 2); err != nil {
		return err
	} else if en != 0 {
		return fmt.Errorf("virtio-net: queue %d already enabled after reset", index)
	}
	size := min(uint16(devSize), qmax)
	if err := n.t.write(c, comQueueSize, 2, uint64(size)); err != nil {
		return err
	}
	q, err := newQueue(dma, index, size, bufLen)
	if err != nil {
		return err
	}
	if index == rxQueue {
		n.rx = q
	} else {
		n.tx = q
	}
	notifyOff, err := n.t.read(c, comQueueNotifyOff, 2)
	if err != nil {
		return err
	}
	q.notifyOff = notifyOff * uint64(n.t.notifyMult)
	if q.notifyOff+2 > n.t.notify.len {
		return fmt.Errorf("virtio-net: queue %d notify offset %d x multiplier %d is outside the %d-byte notify region",
			index, notifyOff, n.t.notifyMult, n.t.notify.len)
	}
	for _, a := range []struct {
		off  uint64
		addr uint64
	}{{comQueueDesc, q.descAddr()}, {comQueueDriver, q.driverAddr()}, {comQueueDevice, q.deviceAddr()}} {
		if err := n.t.write64(c, a.off, a.addr); err != nil {
			return err
		}
	}
	if err := n.t.write(c, comQueueEnable, 2, 1); err != nil {
		return err
	}
	return nil
}

// abandon gives up on a device Open could not bring up: FAILED tells the
// device (and whoever looks next) that the driver gave up (§2.1). Once ring
// memory exists the device is reset first, so that nothing can still write
// there when it is freed; if the reset fails the memory is leaked instead.
func (n *Net) abandon() {
	if (n.rx != nil || n.tx != nil) && n.t.reset(n.resetTimeout) != nil {
		return
	}
	if s, err := n.t.status(); err == nil {
		_ = n.t.setStatus(s | statusFailed) // best effort on a failing device
	}
	n.freeQueues()
}

func (n *Net) freeQueues() {
	for _, q := range []*queue{n.rx, n.tx} {
		if q != nil {
			q.free()
		}
	}
	n.rx, n.tx = nil, nil
}

func (n *Net) notify(q *queue) error {
	n.stats.Notifications++
	return n.t.write(n.t.notify, q.notifyOff, 2, uint64(q.index))
}

// broke records a device fault; every later call fails with it.
func (n *Net) broke(err error) error {
	if n.err == nil {
		n.err = err
	}
	return n.err
}

// Receive copies up to len(bufs) received frames (Ethernet header onward,
// no virtio header) into bufs, reslicing bufs[i] to the frame length, and
// returns how many it filled. A frame larger than the capacity of its
// buffer gets a new buffer of MaxReceive bytes in its place, so callers
// that recycle their buffers keep the larger one. Consumed receive buffers
// go back to the device at once. After a device fault n frames are still
// valid and err wraps ErrDeviceFault.
func (n *Net) Receive(bufs [][]byte) (int, error) {
	if n.err != nil {
		return 0, n.err
	}
	if len(bufs) == 0 {
		return 0, nil
	}
	q := n.rx
	ready, err := q.ready()
	if err != nil {
		return 0, n.broke(err)
	}
	got := 0
	done := n.rxDone[:0]
	// take pops one used entry into pieces: the bytes the device wrote.
	take := func() error {
		id, length, err := q.pop()
		ready--
		if err != nil {
			return err
		}
		done = append(done, id)
		if length > uint32(q.bufLen) {
			return fmt.Errorf("%w: queue %d descriptor %d used length %d exceeds its %d-byte buffer",
				ErrDeviceFault, q.index, id, length, q.bufLen)
		}
		n.pieces = append(n.pieces, q.buf(id)[:length])
		return nil
	}
	for ready > 0 && got < len(bufs) {
		n.pieces = n.pieces[:0]
		if err := take(); err != nil {
			return got, n.broke(err)
		}
		first := n.pieces[0]
		if len(first) < netHdrLen {
			n.stats.RxDrops++
			continue
		}
		if n.offloads {
			// The buffers of one packet are used together (§5.1.6.4.1),
			// so they are all among the entries ready reported.
			parts := int(le.Uint16(first[hdrNumBuffers:]))
			if parts == 0 || parts-1 > ready {
				return got, n.broke(fmt.Errorf("%w: queue %d packet claims %d buffers, %d more were used",
					ErrDeviceFault, q.index, parts, ready))
			}
			for range parts - 1 {
				if err := take(); err != nil {
					return got, n.broke(err)
				}
			}
		}
		size := len(first) - netHdrLen
		for _, p := range n.pieces[1:] {
			size += len(p)
		}
		if size < ethHdrLen || size > n.maxReceive {
			n.stats.RxDrops++
			continue
		}
		b := bufs[got]
		if cap(b) < size {
			b = make([]byte, n.maxReceive)
		}
		b = b[:size]
		k := copy(b, first[netHdrLen:])
		for _, p := range n.pieces[1:] {
			k += copy(b[k:], p)
		}
		if n.offloads && !n.completeChecksum(first[:netHdrLen], b) {
			n.stats.RxDrops++
			continue
		}
		if len(n.pieces) > 1 {
			n.stats.RxMerged++
		}
		bufs[got] = b
		got++
		n.stats.RxFrames++
		n.stats.RxBytes += uint64(size)
	}
	// Reposting after the loop, not per entry, lets pop catch a device that
	// names one buffer twice in the batch it has just written.
	for _, id := range done {
		q.post(id, q.bufLen, descFWrite)
	}
	n.rxDone = done[:0]
	if len(done) > 0 && q.publish() {
		if err := n.notify(q); err != nil {
			return got, err
		}
	}
	return got, nil
}

// completeChecksum finishes a partial checksum the header announces, as
// the stack above verifies every checksum: the field holds the folded
// pseudo-header sum, and the one's-complement sum from csum_start to the
// end of the frame, complemented, is the checksum (0 is sent as 0xffff,
// which verifies the same and keeps UDP's "no checksum" meaning free). It
// reports false for a packet to drop: a segmentation type not negotiated,
// a segmented packet without a partial checksum (§5.1.6.4.1 requires one)
// or a checksum field outside the frame.
func (n *Net) completeChecksum(hdr, frame []byte) bool {
	gso := hdr[hdrGSOType] &^ gsoECN
	if gso != gsoNone && gso != gsoTCPv4 {
		return false
	}
	if hdr[hdrFlags]&hdrFNeedsCsum == 0 {
		return gso == gsoNone
	}
	start := int(le.Uint16(hdr[hdrCsumStart:]))
	field := start + int(le.Uint16(hdr[hdrCsumOffset:]))
	if field+2 > len(frame) {
		return false
	}
	c := csum.Fold(csum.Sum(0, frame[start:]))
	if c == 0 {
		c = 0xffff
	}
	binary.BigEndian.PutUint16(frame[field:], c)
	n.stats.RxCsumCompleted++
	return true
}

// Transmit queues frames (Ethernet header onward, no FCS) for sending and
// returns how many it queued. It never waits: when the ring is full it
// queues what fits and returns without error (backpressure; Stats.TxFull
// counts the rest). A frame shorter than an Ethernet header or longer than
// MaxFrame stops the batch with ErrFrameSize; the frames before it are sent.
func (n *Net) Transmit(frames [][]byte) (int, error) {
	if n.err != nil {
		return 0, n.err
	}
	if err := n.reclaim(); err != nil {
		return 0, err
	}
	q := n.tx
	sent := 0
	var ferr error
	for i, f := range frames {
		if len(f) < ethHdrLen || len(f) > n.maxFrame {
			ferr = fmt.Errorf("%w: frame %d is %d bytes, want %d..%d", ErrFrameSize, i, len(f), ethHdrLen, n.maxFrame)
			break
		}
		if len(n.txFree) == 0 {
			n.stats.TxFull += uint64(len(frames) - i)
			break
		}
		id := n.txFree[len(n.txFree)-1]
		n.txFree = n.txFree[:len(n.txFree)-1]
		b := q.buf(id)
		// No transmit offloads were negotiated, so the header is all zero
		// (§5.1.6.2; num_buffers too).
		clear(b[:netHdrLen])
		copy(b[netHdrLen:], f)
		q.post(id, netHdrLen+len(f), 0)
		sent++
		n.stats.TxFrames++
		n.stats.TxBytes += uint64(len(f))
	}
	if sent > 0 && q.publish() {
		if err := n.notify(q); err != nil {
			return sent, err
		}
	}
	return sent, ferr
}

// reclaim returns completed transmit slots to the free list. The used
// length of a device-readable buffer carries nothing, so it is ignored.
func (n *Net) reclaim() error {
	q := n.tx
	ready, err := q.ready()
	if err != nil {
		return n.broke(err)
	}
	for range ready {
		id, _, err := q.pop()
		if err != nil {
			return n.broke(err)
		}
		n.txFree = append(n.txFree, id)
	}
	return nil
}

// MAC is the device's address; an error when the device did not offer
// VIRTIO_NET_F_MAC (the caller must then choose one).
func (n *Net) MAC() (net.HardwareAddr, error) {
	if n.features&FeatureMAC == 0 {
		return nil, fmt.Errorf("virtio-net: device has no MAC address (features %v)", n.features)
	}
	return append(net.HardwareAddr(nil), n.mac...), nil
}

// MTU is the device's MTU and whether the device reported it; 1500 when not.
func (n *Net) MTU() (int, bool) { return n.mtu, n.features&FeatureMTU != 0 }

// MaxFrame is the largest frame Transmit accepts, Ethernet header
// included; Receive returns no larger frame unless offloads were
// negotiated.
func (n *Net) MaxFrame() int { return n.maxFrame }

// MaxReceive is the largest frame Receive returns: MaxFrame, or with the
// receive offloads the largest IPv4 packet behind an Ethernet header.
func (n *Net) MaxReceive() int { return n.maxReceive }

// Features are the negotiated feature bits.
func (n *Net) Features() Features { return n.features }

// Transitional reports a transitional (0x1000) rather than modern device.
func (n *Net) Transitional() bool { return n.transitional }

// LinkUp reads the link state. Without VIRTIO_NET_F_STATUS the link is
// assumed up (§5.1.4.2); a closed or broken device is down.
func (n *Net) LinkUp() bool {
	if n.err != nil {
		return false
	}
	if n.features&FeatureStatus == 0 {
		return true
	}
	v, err := n.t.read(n.t.device, netCfgStatus, 2)
	return err == nil && v&netStatusLinkUp != 0
}

// Stats returns the counters.
func (n *Net) Stats() Stats { return n.stats }

// Err is the fault that broke the device, ErrClosed after Close, else nil.
func (n *Net) Err() error { return n.err }

// Close resets the device, so firmware and the next kernel find it in its
// initial state, and frees the DMA memory. If the device does not confirm
// the reset the memory is deliberately leaked: it may still write there.
func (n *Net) Close() error {
	if errors.Is(n.err, ErrClosed) {
		return nil
	}
	n.err = ErrClosed
	if err := n.t.reset(n.resetTimeout); err != nil {
		return fmt.Errorf("virtio-net: close (DMA memory kept): %w", err)
	}
	n.freeQueues()
	return nil
}
