package stack

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/ociboot/ociboot/actors"
	"github.com/ociboot/ociboot/frames"
)

type tcpState int

const (
	stateSynSent tcpState = iota
	stateEstablished
	stateFinWait1
	stateFinWait2
	stateClosing
	stateTimeWait
	stateCloseWait
	stateLastAck
	stateClosed
)

var stateNames = [...]string{"SYN-SENT", "ESTABLISHED", "FIN-WAIT-1", "FIN-WAIT-2", "CLOSING", "TIME-WAIT", "CLOSE-WAIT", "LAST-ACK", "CLOSED"}

func (s tcpState) String() string { return stateNames[s] }

const (
	maxRTO          = 60 * time.Second
	initialRTO      = time.Second
	synRetries      = 6
	dataRetries     = 15
	finWait2Timeout = 60 * time.Second
	maxOOORanges    = 512
	maxSACKed       = 128
)

// connKey identifies a connection from the remote side's view of a packet.
type connKey struct {
	raddr        [4]byte
	rport, lport uint16
}

// connStats are per-connection event counts, for tests and logs.
type connStats struct {
	segsIn, segsOut      atomic.Uint64
	rtoRetransmits       atomic.Uint64
	fastRetransmits      atomic.Uint64
	retransmittedSegs    atomic.Uint64
	probes               atomic.Uint64
	tailProbes           atomic.Uint64
	oooSegs, dropped     atomic.Uint64
	dupAcksIn, badSegsIn atomic.Uint64
}

// tcpConn is one TCP connection: an actor goroutine (run) owns the
// protocol state; Read and Write meet it only through two single-producer
// rings and a few atomics and signal channels, so neither side takes a
// lock per segment.
type tcpConn struct {
	s            *Stack
	key          connKey
	laddr, raddr netip.AddrPort
	src, dst     [4]byte
	nextHop      netip.Addr
	mtu          int

	in        chan *actors.Batch // segments from the IP dispatcher (whole frames)
	kick      chan struct{}      // Read/Write/Close → actor
	hardErr   chan error         // hard errors from below: ICMP unreachable, failed ARP
	abort     chan struct{}      // closed to end the actor at once (stack stopped)
	abortOnce sync.Once
	abortErr  error

	established chan struct{} // closed once the handshake completes
	dead        chan struct{} // closed when the connection is over
	closedCh    chan struct{} // closed by Close
	errMu       sync.Mutex
	err         error // why the connection ended abnormally

	rcv, snd   *ring
	rcvSignal  chan struct{} // actor → reader: data or EOF
	sndSignal  chan struct{} // actor → writer: space
	rcvEOF     atomic.Bool
	closed     atomic.Bool // Close called
	wrClosed   atomic.Bool // no more writes (Close or CloseWrite)
	rstOnClose atomic.Bool
	wndSmall   atomic.Bool // we advertised a small window; reader should kick when it opens
	wndUpdate  atomic.Bool
	rd, wd     deadline
	readMu     sync.Mutex
	writeMu    sync.Mutex
	stats      connStats

	// Actor-owned state below.
	state           tcpState
	iss, irs        uint32
	sndUna, sndNxt  uint32
	sndMax          uint32
	sndWnd          uint32
	sndWl1, sndWl2  uint32
	sndShift        uint8
	rcvShift        uint8
	wscaleOK        bool
	peerMSS         int
	rcvNxt          uint32
	rcvTail         uint64 // rcv ring position of rcvNxt
	tsOK            bool
	tsRecent        uint32
	tsOffset        uint32
	epoch           time.Time
	sackOK          bool
	ooo             []sackBlock // out-of-order data held in rcv beyond rcvNxt
	lastOOO         uint32      // start seq of the latest out-of-order segment
	sackOut         [4]sackBlock
	finRcvd         bool
	finSeq          uint32
	finConsumed     bool
	finSent         bool
	finSeqOut       uint32
	ackPending      int
	ackNow          bool
	delackAt        time.Time
	srtt, rttvar    time.Duration
	rto             time.Duration
	rtoAt           time.Time
	backoffs        int
	synAt           time.Time
	rttTiming       bool
	rttSeq          uint32
	rttStart        time.Time
	cwnd, ssthresh  int
	dupAcks         int
	inRecovery      bool
	recover         uint32
	rtxNext         uint32 // SACK recovery: holes below this were retransmitted
	rtxMark         uint32 // sndMax when the holes were last retransmitted
	sacked          []sackBlock
	persistAt       time.Time
	tlpAt           time.Time // tail loss probe (RFC 8985 7)
	tlpDone         bool      // one probe per flight
	persistBackoffs int
	closeAt         time.Time
	ipID            uint16
	tx              *actors.Batch
	timer           *time.Timer
	timerAt         time.Time
	now             time.Time // of the event being handled: one clock read per event
	rcvReady        bool      // data arrived for the reader in this event
}

func newTCPConn(s *Stack, src netip.Addr, lport uint16, raddr netip.AddrPort, nextHop netip.Addr, mtu int) *tcpConn {
	c := &tcpConn{
		s:           s,
		laddr:       netip.AddrPortFrom(src, lport),
		raddr:       raddr,
		src:         src.As4(),
		dst:         raddr.Addr().As4(),
		nextHop:     nextHop,
		mtu:         mtu,
		in:          make(chan *actors.Batch, 512),
		kick:        make(chan struct{}, 1),
		hardErr:     make(chan error, 1),
		abort:       make(chan struct{}),
		established: make(chan struct{}),
		dead:        make(chan struct{}),
		closedCh:    make(chan struct{}),
		rcv:         newRing(s.opts.RecvBuffer),
		snd:         newRing(s.opts.SendBuffer),
		rcvSignal:   make(chan struct{}, 1),
		sndSignal:   make(chan struct{}, 1),
		iss:         rand.Uint32(),
		tsOffset:    rand.Uint32(),
		epoch:       time.Now(),
		rto:         initialRTO,
		peerMSS:     536,
		ipID:        uint16(rand.Uint32()),
	}
	c.key = connKey{raddr: c.dst, rport: raddr.Port(), lport: lport}
	for c.rcvShift < 14 && c.rcv.size()>>c.rcvShift > 0xffff {
		c.rcvShift++
	}
	return c
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// abortWith ends the connection from outside the actor.
func (c *tcpConn) abortWith(err error) {
	c.abortOnce.Do(func() {
		c.abortErr = err
		close(c.abort)
	})
}

// run is the connection actor.
func (c *tcpConn) run() {
	c.timer = time.NewTimer(time.Hour)
	c.timer.Stop()
	defer c.finish()
	now := time.Now()
	c.now = now
	c.sendSYN(now)
	c.flush()
	for c.state != stateClosed {
		c.armTimer()
		select {
		case b := <-c.in:
			now = time.Now()
			c.now = now
			c.input(b, now)
			// Take what else has queued so one flush and one wake-up of
			// the reader cover it all.
			for i := 0; i < 8 && c.state != stateClosed; i++ {
				select {
				case b := <-c.in:
					c.input(b, now)
					continue
				default:
				}
				break
			}
			c.s.tcpCounters.SetQueue(len(c.in))
		case <-c.kick:
			now = time.Now()
		case err := <-c.hardErr:
			now = time.Now()
			c.hardError(err)
		case <-c.timer.C:
			c.timerAt = time.Time{}
			now = time.Now()
		case <-c.abort:
			c.fail(c.abortErr)
			return
		}
		c.now = now
		if c.rcvReady {
			c.rcvReady = false
			signal(c.rcvSignal)
		}
		if c.state == stateClosed {
			break
		}
		c.userEvents()
		c.timers(now)
		if c.state != stateClosed {
			c.output(now)
		}
		c.flush()
		c.s.tcpCounters.BusySince(now)
	}
}

// finish releases everything the actor holds and takes the connection out
// of the stack's table.
func (c *tcpConn) finish() {
	c.flush()
	c.timer.Stop()
	c.s.removeConn(c)
	c.state = stateClosed
	close(c.dead)
	for {
		select {
		case b := <-c.in:
			b.Release()
		default:
			return
		}
	}
}

// fail ends the connection with err (nil: an orderly end); the actor then
// returns.
func (c *tcpConn) fail(err error) {
	if c.state == stateClosed {
		return
	}
	c.state = stateClosed
	c.errMu.Lock()
	if c.err == nil {
		c.err = err
	}
	c.errMu.Unlock()
	// run returns now; finish closes dead once the port is free.
}

func (c *tcpConn) error() error {
	c.errMu.Lock()
	defer c.errMu.Unlock()
	return c.err
}

func (c *tcpConn) armTimer() {
	var next time.Time
	for _, t := range [...]time.Time{c.rtoAt, c.delackAt, c.persistAt, c.closeAt, c.tlpAt} {
		if !t.IsZero() && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	if next.Equal(c.timerAt) {
		return
	}
	c.timer.Stop()
	c.timerAt = next
	if !next.IsZero() {
		c.timer.Reset(max(time.Until(next), 0))
	}
}

// tsNow is our RFC 7323 timestamp clock: milliseconds, randomly offset.
func (c *tcpConn) tsNow(now time.Time) uint32 {
	return c.tsOffset + uint32(now.Sub(c.epoch)/time.Millisecond)
}

// sendSYN starts (or retries) the handshake.
func (c *tcpConn) sendSYN(now time.Time) {
	c.sndUna, c.sndNxt, c.sndMax = c.iss, c.iss+1, c.iss+1
	o := tcpOut{seq: c.iss, flags: flagSYN, wnd: uint16(min(c.rcv.free(), 0xffff)), syn: true,
		mss: uint16(c.ourMSS()), wscale: c.rcvShift, ts: true, tsVal: c.tsNow(now)}
	c.emitOut(&o, 0, 0)
	if c.synAt.IsZero() {
		c.synAt = now
	}
	c.rtoAt = now.Add(c.rto)
}

// synSent handles a segment in SYN-SENT (RFC 9293 3.10.7.3).
func (c *tcpConn) synSent(seg *segment, now time.Time) {
	if seg.flags&flagACK != 0 && seg.ack != c.iss+1 {
		if seg.flags&flagRST == 0 {
			c.sendRST(seg.ack, 0, false)
		}
		return
	}
	if seg.flags&flagRST != 0 {
		if seg.flags&flagACK != 0 {
			c.fail(syscall.ECONNREFUSED)
		}
		return
	}
	if seg.flags&flagSYN == 0 || seg.flags&flagACK == 0 {
		return // simultaneous open is not something a client needs
	}
	c.irs = seg.seq
	c.rcvNxt = seg.seq + 1
	c.sndUna = seg.ack
	if seg.mss != 0 {
		c.peerMSS = int(seg.mss)
	}
	if seg.wscale >= 0 {
		c.wscaleOK = true
		c.sndShift = uint8(seg.wscale)
	} else {
		c.rcvShift = 0
	}
	c.tsOK = seg.ts
	if c.tsOK {
		c.tsRecent = seg.tsVal
	}
	c.sackOK = seg.sackOK
	c.sndWnd = uint32(seg.wnd) // never scaled in a SYN
	c.sndWl1, c.sndWl2 = seg.seq, seg.ack
	if c.backoffs == 0 {
		c.rttSample(now.Sub(c.synAt))
	}
	smss := c.smss()
	c.cwnd = min(10*smss, max(2*smss, 14600)) // RFC 6928
	c.ssthresh = 1 << 30
	c.backoffs = 0
	c.rtoAt = time.Time{}
	c.state = stateEstablished
	c.ackNow = true
	close(c.established)
}

// ourMSS is the MSS we advertise: what fits our route's MTU behind
// option-less IPv4 and TCP headers.
func (c *tcpConn) ourMSS() int { return c.mtu - 40 }

// smss is the most payload a data segment without SACK blocks carries.
func (c *tcpConn) smss() int {
	n := min(c.peerMSS, c.ourMSS())
	if c.tsOK {
		n -= 12
	}
	return max(n, 64)
}

func (c *tcpConn) rttSample(r time.Duration) {
	if r <= 0 {
		r = time.Millisecond
	}
	if c.srtt == 0 {
		c.srtt, c.rttvar = r, r/2
	} else {
		d := c.srtt - r
		if d < 0 {
			d = -d
		}
		c.rttvar = (3*c.rttvar + d) / 4
		c.srtt = (7*c.srtt + r) / 8
	}
	c.rto = min(max(c.srtt+max(4*c.rttvar, time.Millisecond), c.s.opts.MinRTO), maxRTO)
}

// input processes one batch of received frames.
func (c *tcpConn) input(b *actors.Batch, now time.Time) {
	n, bytes := 0, 0
	for _, f := range b.Bufs {
		if c.state == stateClosed {
			break
		}
		pkt := f[frames.HeaderLen:]
		ihl := int(pkt[0]&0xf) * 4 // validated by the dispatcher
		tl := int(binary.BigEndian.Uint16(pkt[2:4]))
		seg, err := parseTCP(pkt[ihl:tl], c.dst, c.src)
		if err != nil {
			c.stats.badSegsIn.Add(1)
			continue
		}
		n++
		bytes += len(seg.payload)
		c.segment(&seg, now)
		if c.ackPending >= 2 && c.state != stateClosed {
			c.sendACK(now) // every other segment (RFC 9293 3.8.6.3)
		}
	}
	b.Release()
	c.stats.segsIn.Add(uint64(n))
	c.s.tcpCounters.Add(n, bytes)
}

// rcvWindow is the space the receive ring has beyond rcvNxt.
func (c *tcpConn) rcvWindow() uint32 {
	free := c.rcv.size() - int(c.rcvTail-c.rcv.head.Load())
	if !c.wscaleOK {
		free = min(free, 0xffff)
	}
	return uint32(free)
}

// segment handles one segment in a synchronized state (RFC 9293 3.10.7.4).
func (c *tcpConn) segment(seg *segment, now time.Time) {
	if c.state == stateSynSent {
		c.synSent(seg, now)
		return
	}
	rst := seg.flags&flagRST != 0
	// PAWS (RFC 7323 5.3).
	if c.tsOK && seg.ts && !rst && int32(seg.tsVal-c.tsRecent) < 0 {
		c.ackNow = true
		return
	}
	wnd := c.rcvWindow()
	segLen := seg.seqLen()
	ok := false
	switch {
	case segLen == 0 && wnd == 0:
		ok = seg.seq == c.rcvNxt
	case segLen == 0:
		ok = seqGEQ(seg.seq, c.rcvNxt) && seqLT(seg.seq, c.rcvNxt+wnd)
	case wnd == 0:
		ok = false
	default:
		end := seg.seq + segLen - 1
		ok = (seqGEQ(seg.seq, c.rcvNxt) && seqLT(seg.seq, c.rcvNxt+wnd)) ||
			(seqGEQ(end, c.rcvNxt) && seqLT(end, c.rcvNxt+wnd))
	}
	if !ok {
		if !rst {
			c.ackNow = true
			if segLen > 0 {
				c.stats.dropped.Add(1)
			}
		}
		// A FIN we already took, sent again: the ACK above answers it.
		return
	}
	if rst {
		// RFC 5961: only an exact match resets; others get a challenge ACK.
		if seg.seq == c.rcvNxt {
			c.fail(syscall.ECONNRESET)
		} else {
			c.ackNow = true
		}
		return
	}
	if seg.flags&flagSYN != 0 {
		c.ackNow = true // challenge ACK (RFC 5961 4.2)
		return
	}
	if seg.flags&flagACK == 0 {
		return
	}
	if c.tsOK && seg.ts && seqLEQ(seg.seq, c.rcvNxt) {
		c.tsRecent = seg.tsVal
	}
	c.processACK(seg, now)
	if c.state == stateClosed {
		return
	}
	if len(seg.payload) > 0 {
		if c.closed.Load() {
			// Nobody will read this: tell the peer (RFC 9293 3.10.7.4, as
			// Linux does) rather than let it wait.
			c.sendRST(c.sndNxt, c.rcvNxt, true)
			c.fail(syscall.ECONNRESET)
			return
		}
		c.receiveData(seg)
	}
	if seg.flags&flagFIN != 0 && !c.finRcvd {
		c.finRcvd = true
		c.finSeq = seg.seq + uint32(len(seg.payload))
	}
	if c.finRcvd && !c.finConsumed && c.rcvNxt == c.finSeq {
		c.finConsumed = true
		c.rcvNxt++
		c.ackNow = true
		c.rcvEOF.Store(true)
		signal(c.rcvSignal)
		switch c.state {
		case stateEstablished:
			c.state = stateCloseWait
		case stateFinWait1:
			c.state = stateClosing // our FIN is not acked yet (else we were in FIN-WAIT-2)
		case stateFinWait2:
			c.enterTimeWait(now)
		}
	} else if seg.flags&flagFIN != 0 && c.finConsumed {
		c.ackNow = true // retransmitted FIN
	}
}

func (c *tcpConn) enterTimeWait(now time.Time) {
	c.state = stateTimeWait
	c.rtoAt, c.persistAt = time.Time{}, time.Time{}
	c.closeAt = now.Add(c.s.opts.TimeWait)
}

// receiveData places a segment's payload in the receive ring, in order or
// as out-of-order data past rcvNxt.
func (c *tcpConn) receiveData(seg *segment) {
	seq, p := seg.seq, seg.payload
	if seqLT(seq, c.rcvNxt) {
		d := int(c.rcvNxt - seq)
		if d >= len(p) {
			c.ackNow = true
			return
		}
		p, seq = p[d:], c.rcvNxt
	}
	free := int(c.rcvWindow())
	off := int(seq - c.rcvNxt)
	if off >= free {
		c.ackNow = true
		c.stats.dropped.Add(1)
		return
	}
	if off+len(p) > free {
		p = p[:free-off]
	}
	if off > 0 {
		if !c.addOOO(seq, seq+uint32(len(p))) {
			c.stats.dropped.Add(1)
			c.ackNow = true
			return
		}
		c.rcv.copyIn(c.rcvTail+uint64(off), p)
		c.lastOOO = seq
		c.stats.oooSegs.Add(1)
		c.ackNow = true // duplicate ACK with SACK, for the sender's fast retransmit
		return
	}
	c.rcv.copyIn(c.rcvTail, p)
	adv := uint32(len(p))
	if len(c.ooo) > 0 {
		// The hole may have closed: take the out-of-order data now in line.
		end := c.rcvNxt + adv
		i := 0
		for ; i < len(c.ooo) && seqLEQ(c.ooo[i].start, end); i++ {
			end = seqMax(end, c.ooo[i].end)
		}
		if i > 0 {
			c.ooo = c.ooo[:copy(c.ooo, c.ooo[i:])]
			c.ackNow = true // RFC 5681 4.2: ACK at once when a hole fills
		}
		adv = end - c.rcvNxt
	}
	c.rcvNxt += adv
	c.rcvTail += uint64(adv)
	c.rcv.tail.Store(c.rcvTail)
	// Count full-sized segments, not packets: a segment the NIC took whole
	// from the host (larger than our MSS) is as many as it holds, and is
	// ACKed at once like two would be (RFC 9293 3.8.6.3).
	mss := c.ourMSS()
	c.ackPending += (len(p) + mss - 1) / mss
	c.rcvReady = true
}

// addOOO records [start, end) as held out of order, merging ranges.
func (c *tcpConn) addOOO(start, end uint32) bool {
	i := 0
	for i < len(c.ooo) && seqLT(c.ooo[i].end, start) {
		i++
	}
	j := i
	for j < len(c.ooo) && seqLEQ(c.ooo[j].start, end) {
		if seqLT(c.ooo[j].start, start) {
			start = c.ooo[j].start
		}
		end = seqMax(end, c.ooo[j].end)
		j++
	}
	if i == j {
		if len(c.ooo) >= maxOOORanges {
			return false
		}
		c.ooo = append(c.ooo, sackBlock{})
		copy(c.ooo[i+1:], c.ooo[i:])
		c.ooo[i] = sackBlock{start, end}
		return true
	}
	c.ooo[i] = sackBlock{start, end}
	c.ooo = append(c.ooo[:i+1], c.ooo[j:]...)
	return true
}

// sackBlocks lists the SACK blocks to send: the one holding the latest
// segment first (RFC 2018 4), then the others from the highest.
func (c *tcpConn) sackBlocks(n int) []sackBlock {
	out := c.sackOut[:0]
	first := -1
	for i, b := range c.ooo {
		if seqLEQ(b.start, c.lastOOO) && seqLT(c.lastOOO, b.end) {
			first = i
			out = append(out, b)
			break
		}
	}
	for i := len(c.ooo) - 1; i >= 0 && len(out) < n; i-- {
		if i != first {
			out = append(out, c.ooo[i])
		}
	}
	return out
}

// processACK handles the acknowledgment and window fields.
func (c *tcpConn) processACK(seg *segment, now time.Time) {
	ack := seg.ack
	if seqGT(ack, c.sndMax) {
		c.ackNow = true
		return
	}
	if seqLT(ack, c.sndUna) {
		return // old
	}
	windowChanged := false
	if seqLT(c.sndWl1, seg.seq) || (c.sndWl1 == seg.seq && seqLEQ(c.sndWl2, ack)) {
		w := uint32(seg.wnd) << c.sndShift
		windowChanged = w != c.sndWnd
		c.sndWnd = w
		c.sndWl1, c.sndWl2 = seg.seq, ack
		if w > 0 {
			c.persistAt, c.persistBackoffs = time.Time{}, 0
		}
	}
	sackedBefore := 0
	if c.sackOK && seg.nsack > 0 {
		sackedBefore = c.sackedBytes()
		for _, b := range seg.sack[:seg.nsack] {
			if seqLT(c.sndUna, b.start) && seqLT(b.start, b.end) && seqLEQ(b.end, c.sndMax) {
				c.addSACKed(b)
			}
		}
	}
	if ack == c.sndUna {
		// A duplicate ACK (RFC 5681 2).
		// With SACK only ACKs that SACK new data count (RFC 6675 2), so
		// window updates neither hide loss nor fake it.
		dup := !windowChanged
		if c.sackOK {
			dup = seg.nsack > 0 && c.sackedBytes() > sackedBefore
		}
		if c.sndMax != c.sndUna && len(seg.payload) == 0 && seg.flags&flagFIN == 0 && dup {
			c.stats.dupAcksIn.Add(1)
			c.dupAcks++
			if c.inRecovery {
				if !c.sackOK {
					c.cwnd += c.smss() // RFC 6582 3.2 step 4: inflate
				} else if n := len(c.sacked); n > 0 && seqGEQ(c.sacked[n-1].end, c.rtxMark+uint32(3*c.smss())) {
					// Data sent after our retransmissions is SACKed while
					// the holes stay: the retransmissions were lost too
					// (RFC 8985's insight, by sequence rather than time).
					c.rtxNext, c.rtxMark = c.sndUna, c.sndMax
				}
			} else if c.dupAcks >= c.dupThresh() || c.sackedBytes() >= 3*c.smss() {
				c.enterRecovery()
			}
		}
		return
	}
	acked := int(ack - c.sndUna)
	// RTT: from the echoed timestamp (RFC 7323 4), else Karn-timed segments.
	if c.tsOK && seg.ts && seg.tsEcr != 0 {
		c.rttSample(time.Duration(c.tsNow(now)-seg.tsEcr) * time.Millisecond)
	} else if c.rttTiming && seqGT(ack, c.rttSeq) {
		c.rttTiming = false
		c.rttSample(now.Sub(c.rttStart))
	}
	dataAcked := acked
	finAcked := c.finSent && seqGT(ack, c.finSeqOut)
	if finAcked && seqLEQ(c.sndUna, c.finSeqOut) {
		dataAcked--
	}
	if dataAcked > 0 {
		c.snd.head.Add(uint64(dataAcked))
		signal(c.sndSignal)
	}
	c.sndUna = ack
	if seqLT(c.sndNxt, c.sndUna) {
		c.sndNxt = c.sndUna
	}
	i := 0
	for i < len(c.sacked) && seqLEQ(c.sacked[i].end, ack) {
		i++
	}
	c.sacked = c.sacked[:copy(c.sacked, c.sacked[i:])]
	if len(c.sacked) > 0 && seqLT(c.sacked[0].start, ack) {
		c.sacked[0].start = ack
	}
	smss := c.smss()
	if c.inRecovery {
		if seqGEQ(ack, c.recover) {
			c.inRecovery = false
			c.cwnd = c.ssthresh
		} else if !c.sackOK || len(c.sacked) == 0 {
			// Partial ACK (RFC 6582 3.2 step 5): the next hole is lost too.
			c.retransmit(c.sndUna)
			if !c.sackOK {
				c.cwnd = max(c.cwnd-acked+smss, smss)
			}
		}
	} else if c.cwnd < c.ssthresh {
		c.cwnd += min(acked, smss) // slow start, RFC 5681 with ABC L=1
	} else {
		c.cwnd += max(smss*smss/c.cwnd, 1)
	}
	c.dupAcks = 0
	c.backoffs = 0
	c.tlpAt, c.tlpDone = time.Time{}, false
	if c.sndUna == c.sndMax {
		c.rtoAt = time.Time{}
	} else {
		c.rtoAt = now.Add(c.rto)
	}
	if finAcked {
		switch c.state {
		case stateFinWait1:
			c.state = stateFinWait2
			c.closeAt = now.Add(finWait2Timeout)
		case stateClosing:
			c.enterTimeWait(now)
		case stateLastAck:
			c.fail(nil)
		}
	}
}

func (c *tcpConn) addSACKed(b sackBlock) {
	i := 0
	for i < len(c.sacked) && seqLT(c.sacked[i].end, b.start) {
		i++
	}
	j := i
	for j < len(c.sacked) && seqLEQ(c.sacked[j].start, b.end) {
		if seqLT(c.sacked[j].start, b.start) {
			b.start = c.sacked[j].start
		}
		b.end = seqMax(b.end, c.sacked[j].end)
		j++
	}
	if i == j {
		if len(c.sacked) >= maxSACKed {
			return
		}
		c.sacked = append(c.sacked, sackBlock{})
		copy(c.sacked[i+1:], c.sacked[i:])
		c.sacked[i] = b
		return
	}
	c.sacked[i] = b
	c.sacked = append(c.sacked[:i+1], c.sacked[j:]...)
}

func (c *tcpConn) sackedBytes() int {
	n := 0
	for _, b := range c.sacked {
		n += int(b.end - b.start)
	}
	return n
}

func (c *tcpConn) flight() int { return int(c.sndMax - c.sndUna) }

// enterRecovery starts fast retransmit and recovery (RFC 5681 3.2, RFC 6582).
func (c *tcpConn) enterRecovery() {
	smss := c.smss()
	c.inRecovery = true
	c.recover = c.sndMax
	c.ssthresh = max(c.flight()/2, 2*smss)
	if c.sackOK {
		c.cwnd = c.ssthresh // RFC 6675: the pipe estimate does the rest
	} else {
		c.cwnd = c.ssthresh + 3*smss
	}
	c.rtxNext, c.rtxMark = c.sndUna, c.sndMax
	c.stats.fastRetransmits.Add(1)
	c.retransmit(c.sndUna)
	c.rttTiming = false
}

// dupThresh is the duplicate ACKs that start recovery: 3, or fewer when
// so few segments are out that 3 can never come (early retransmit, RFC
// 5827, which with limited transmit keeps small windows out of timeouts).
func (c *tcpConn) dupThresh() int {
	oseg := (c.flight() + c.smss() - 1) / c.smss()
	if oseg < 4 && c.sackOK {
		return max(oseg-1, 1)
	}
	return 3
}

// pipe estimates the bytes in flight during SACK recovery (RFC 6675
// SetPipe, simplified: an unSACKed byte below the highest SACKed one is
// lost unless we retransmitted it).
func (c *tcpConn) pipe() int {
	high := c.sndUna
	if n := len(c.sacked); n > 0 {
		high = c.sacked[n-1].end
	}
	return int(c.sndMax-high) + c.holeBytes(c.sndUna, c.rtxNext)
}

// holeBytes counts the unSACKed bytes in [from, to).
func (c *tcpConn) holeBytes(from, to uint32) int {
	if !seqLT(from, to) {
		return 0
	}
	n := int(to - from)
	for _, b := range c.sacked {
		s, e := seqMax(b.start, from), b.end
		if seqLT(to, e) {
			e = to
		}
		if seqLT(s, e) {
			n -= int(e - s)
		}
	}
	return n
}

// nextHole finds the first unSACKed range at or after from that lies below
// a SACKed block (RFC 6675 NextSeg rule 1).
func (c *tcpConn) nextHole(from uint32) (start, end uint32, ok bool) {
	s := from
	for _, b := range c.sacked {
		if seqLEQ(b.end, s) {
			continue
		}
		if seqLT(s, b.start) {
			return s, b.start, true
		}
		s = b.end
	}
	return 0, 0, false
}

// recoverySend retransmits the holes the SACK scoreboard shows while the
// pipe has room.
func (c *tcpConn) recoverySend() {
	for c.pipe() < c.cwnd {
		s, e, ok := c.nextHole(seqMax(c.rtxNext, c.sndUna))
		if !ok {
			return
		}
		n := c.sendFrom(s, e)
		if n == 0 {
			return
		}
		c.rtxNext = s + uint32(n)
		c.stats.retransmittedSegs.Add(1)
	}
}

// retransmit resends one segment's worth from seq, stopping at the next
// SACKed block.
func (c *tcpConn) retransmit(seq uint32) {
	end := c.sndMax
	for _, b := range c.sacked {
		if seqGT(b.start, seq) {
			end = b.start
			break
		}
	}
	if n := c.sendFrom(seq, end); c.inRecovery && seqLT(c.rtxNext, seq+uint32(n)) {
		c.rtxNext = seq + uint32(n)
	}
	c.stats.retransmittedSegs.Add(1)
}

// sendFrom sends one segment starting at seq, of at most one SMSS and not
// past end; it carries our FIN if that is the next thing at seq. It returns
// the sequence space sent.
func (c *tcpConn) sendFrom(seq, end uint32) int {
	dataEnd := end
	if c.finSent && seqGT(dataEnd, c.finSeqOut) {
		dataEnd = c.finSeqOut
	}
	var o tcpOut
	c.fillOut(&o, seq, flagACK)
	// RFC 6691: the MSS leaves out options, so they come off the payload.
	limit := min(c.peerMSS, c.ourMSS()) - o.optLen()
	n := 0
	if seqLT(seq, dataEnd) {
		n = min(int(dataEnd-seq), max(limit, 1))
	}
	if c.finSent && seq+uint32(n) == c.finSeqOut && seqGT(end, c.finSeqOut) {
		o.flags |= flagFIN
	}
	if n == 0 && o.flags&flagFIN == 0 {
		return 0
	}
	if n > 0 && seq+uint32(n) == c.dataSeq(c.snd.tail.Load()) {
		o.flags |= flagPSH
	}
	c.emitOut(&o, c.sndPos(seq), n)
	if o.flags&flagFIN != 0 {
		return n + 1
	}
	return n
}

// dataSeq is the sequence number of send-ring position pos.
func (c *tcpConn) dataSeq(pos uint64) uint32 { return c.iss + 1 + uint32(pos) }

// sndPos is the send-ring position of sequence number seq ≥ sndUna.
func (c *tcpConn) sndPos(seq uint32) uint64 {
	return c.snd.head.Load() + uint64(seq-c.dataSeq(c.snd.head.Load()))
}

// fillOut fills the fields every segment of ours carries.
func (c *tcpConn) fillOut(o *tcpOut, seq uint32, flags uint8) {
	o.seq, o.ack, o.flags = seq, c.rcvNxt, flags
	w := c.rcvWindow()
	o.wnd = uint16(min(w>>c.rcvShift, 0xffff))
	if c.tsOK {
		o.ts, o.tsVal, o.tsEcr = true, c.tsNow(c.now), c.tsRecent
	}
	if c.sackOK && len(c.ooo) > 0 {
		n := 4
		if c.tsOK {
			n = 3
		}
		o.sacks = c.sackBlocks(n)
	}
	// Ask the reader to tell us when a small window opens again, so the
	// update goes out then (RFC 9293 3.8.6.2.2).
	if int(w) < c.rcv.size()/4 {
		c.wndSmall.Store(true)
	}
}

// emitOut builds a segment with n payload bytes from send-ring position
// pos into the TX batch.
func (c *tcpConn) emitOut(o *tcpOut, pos uint64, n int) {
	hl := tcpHeaderLen + o.optLen()
	total := ipv4HeaderLen + hl + n
	buf := c.txBuf(frames.HeaderLen + total)
	if buf == nil {
		return
	}
	ip := buf[frames.HeaderLen:]
	c.ipID++
	putIPv4(ip, total, c.ipID, protoTCP, c.src, c.dst)
	if n > 0 {
		c.snd.copyOut(pos, ip[ipv4HeaderLen+hl:total])
	}
	putTCP(ip[ipv4HeaderLen:], c.laddr.Port(), c.raddr.Port(), o, n, c.src, c.dst)
	if o.flags&flagACK != 0 {
		c.ackPending, c.ackNow, c.delackAt = 0, false, time.Time{}
	}
	c.stats.segsOut.Add(1)
	c.s.tcpCounters.Add(1, n)
}

func (c *tcpConn) txBuf(n int) []byte {
	if c.tx == nil {
		c.tx = c.s.pool.Get()
	}
	buf := c.tx.Append(n)
	if buf == nil {
		c.flush()
		c.tx = c.s.pool.Get()
		buf = c.tx.Append(n)
	}
	return buf
}

// flush hands the TX batch to the demux.
func (c *tcpConn) flush() {
	if c.tx == nil {
		return
	}
	b := c.tx
	c.tx = nil
	if b.Len() == 0 {
		b.Release()
		return
	}
	select {
	case c.s.demux.Out() <- frames.Outbound{Batch: b, NextHop: c.nextHop}:
	case <-c.abort:
		b.Release()
	}
}

func (c *tcpConn) sendACK(now time.Time) {
	var o tcpOut
	c.fillOut(&o, c.sndNxt, flagACK)
	c.emitOut(&o, 0, 0)
}

func (c *tcpConn) sendRST(seq, ack uint32, withACK bool) {
	o := tcpOut{seq: seq, ack: ack, flags: flagRST}
	if withACK {
		o.flags |= flagACK
	}
	c.emitOut(&o, 0, 0)
}

// userEvents takes what Read, Write and Close asked for.
func (c *tcpConn) userEvents() {
	if c.wndUpdate.Swap(false) {
		c.ackNow = true
	}
	if c.rstOnClose.Load() && c.state != stateClosed {
		if c.state != stateSynSent {
			c.sendRST(c.sndNxt, c.rcvNxt, true)
		}
		c.fail(nil)
	}
}

// timers runs whatever timer is due.
func (c *tcpConn) timers(now time.Time) {
	if !c.closeAt.IsZero() && !now.Before(c.closeAt) {
		c.closeAt = time.Time{}
		if c.state == stateTimeWait || c.state == stateFinWait2 {
			c.fail(nil)
			return
		}
	}
	if !c.rtoAt.IsZero() && !now.Before(c.rtoAt) {
		c.onRTO(now)
		if c.state == stateClosed {
			return
		}
	}
	if !c.tlpAt.IsZero() && !now.Before(c.tlpAt) {
		// Resend the last segment: its (S)ACK shows what a lost tail or a
		// lost ACK hid, long before the retransmission timer would.
		c.tlpAt, c.tlpDone = time.Time{}, true
		if c.state != stateSynSent && c.sndUna != c.sndMax && !c.inRecovery {
			c.stats.tailProbes.Add(1)
			c.sendFrom(c.sndMax-uint32(min(c.flight(), c.smss())), c.sndMax)
		}
	}
	if !c.persistAt.IsZero() && !now.Before(c.persistAt) {
		// Zero-window probe: an old sequence number draws an ACK with the
		// current window without committing data (as Linux does).
		c.stats.probes.Add(1)
		var o tcpOut
		c.fillOut(&o, c.sndUna-1, flagACK)
		c.emitOut(&o, 0, 0)
		c.persistBackoffs++
		c.persistAt = now.Add(min(c.rto<<min(c.persistBackoffs, 10), maxRTO))
	}
	if !c.delackAt.IsZero() && !now.Before(c.delackAt) {
		c.sendACK(now)
	}
}

// onRTO handles a retransmission timeout (RFC 6298 5.4-5.7, RFC 5681 3.1).
func (c *tcpConn) onRTO(now time.Time) {
	c.backoffs++
	c.rto = min(c.rto*2, maxRTO)
	c.stats.rtoRetransmits.Add(1)
	if c.state == stateSynSent {
		if c.backoffs > synRetries {
			c.fail(syscall.ETIMEDOUT)
			return
		}
		c.sendSYN(now)
		return
	}
	if c.backoffs > dataRetries {
		c.fail(syscall.ETIMEDOUT)
		return
	}
	smss := c.smss()
	c.ssthresh = max(c.flight()/2, 2*smss)
	c.cwnd = smss
	c.inRecovery = false
	c.dupAcks = 0
	c.sacked = c.sacked[:0] // RFC 2018 8: the receiver may have reneged
	c.rttTiming = false
	c.tlpAt, c.tlpDone = time.Time{}, false
	c.sndNxt = c.sndUna // go back N; output resends within cwnd
	c.rtoAt = now.Add(c.rto)
}

// output sends new (or, after a timeout, unacknowledged) data and our FIN
// as the windows allow, and any ACK that is due.
func (c *tcpConn) output(now time.Time) {
	switch c.state {
	case stateSynSent, stateTimeWait, stateClosed:
		if c.ackNow && c.state == stateTimeWait {
			c.sendACK(now)
		}
		return
	}
	wantFin := c.wrClosed.Load()
	sackRecovery := c.inRecovery && c.sackOK
	if sackRecovery {
		c.recoverySend()
	}
	for {
		tail := c.dataSeq(c.snd.tail.Load())
		wnd := min(uint32(c.cwnd), c.sndWnd)
		inflight := c.sndNxt - c.sndUna
		if !c.inRecovery && c.dupAcks > 0 && c.dupAcks < 3 {
			// Limited transmit (RFC 3042): a new segment for each of the
			// first two duplicate ACKs, so a small window still draws three.
			wnd = min(uint32(c.cwnd+c.dupAcks*c.smss()), c.sndWnd)
		}
		if sackRecovery {
			// New data goes out as the pipe allows (RFC 6675 NextSeg rule 2).
			wnd = c.sndWnd
			if c.pipe() >= c.cwnd {
				wnd = 0
			}
		}
		if c.finSent && c.sndNxt == c.finSeqOut {
			// Only the FIN is left (resent after a timeout).
			c.sendFrom(c.sndNxt, c.sndNxt+1)
			c.sndNxt++
			c.stats.retransmittedSegs.Add(1)
			break
		}
		avail := int32(tail - c.sndNxt)
		if avail <= 0 {
			if wantFin && !c.finSent && (c.state == stateEstablished || c.state == stateCloseWait) {
				c.finSent = true
				c.finSeqOut = c.sndNxt
				c.sndNxt++
				c.sndMax = c.sndNxt
				c.sendFrom(c.finSeqOut, c.sndNxt)
				if c.state == stateEstablished {
					c.state = stateFinWait1
				} else {
					c.state = stateLastAck
				}
				if c.rtoAt.IsZero() {
					c.rtoAt = now.Add(c.rto)
				}
			}
			break
		}
		if inflight >= wnd {
			break
		}
		end := c.sndNxt + min(uint32(avail), wnd-inflight)
		if c.finSent && seqGT(end, c.finSeqOut) {
			end = c.finSeqOut
		}
		// Skip what the receiver already holds (after a timeout's go-back).
		for _, b := range c.sacked {
			if seqLEQ(b.start, c.sndNxt) && seqLT(c.sndNxt, b.end) {
				c.sndNxt = b.end
			}
		}
		if seqGEQ(c.sndNxt, end) {
			if seqGT(c.sndNxt, c.sndMax) {
				c.sndMax = c.sndNxt
			}
			continue
		}
		if c.finSent && seqGEQ(c.sndNxt, c.finSeqOut) {
			continue
		}
		// Stop at a SACKed block so the next pass skips it.
		for _, b := range c.sacked {
			if seqGT(b.start, c.sndNxt) && seqLT(b.start, end) {
				end = b.start
				break
			}
		}
		sent := c.sendFrom(c.sndNxt, end)
		if sent == 0 {
			break
		}
		if seqLT(c.sndNxt, c.sndMax) {
			c.stats.retransmittedSegs.Add(1)
		} else if !c.rttTiming && !c.tsOK {
			c.rttTiming, c.rttSeq, c.rttStart = true, c.sndNxt, now
		}
		c.sndNxt += uint32(sent)
		if seqGT(c.sndNxt, c.sndMax) {
			c.sndMax = c.sndNxt
		}
		if c.rtoAt.IsZero() {
			c.rtoAt = now.Add(c.rto)
		}
	}
	if c.sndUna != c.sndMax && !c.inRecovery && !c.tlpDone && c.tlpAt.IsZero() && c.srtt > 0 {
		pto := max(2*c.srtt, 10*time.Millisecond)
		if c.flight() <= c.smss() {
			pto += 200 * time.Millisecond // the peer may delay a lone segment's ACK
		}
		if at := now.Add(pto); c.rtoAt.IsZero() || at.Before(c.rtoAt) {
			c.tlpAt = at
		}
	}
	// Persist: data waits, the peer's window is shut and nothing is in
	// flight to draw a window update.
	if c.sndWnd == 0 && c.sndUna == c.sndMax && int32(c.dataSeq(c.snd.tail.Load())-c.sndNxt) > 0 {
		if c.persistAt.IsZero() {
			c.persistAt = now.Add(c.rto)
		}
	} else {
		c.persistAt, c.persistBackoffs = time.Time{}, 0
	}
	if c.ackNow || c.ackPending >= 2 {
		c.sendACK(now)
	} else if c.ackPending > 0 && c.delackAt.IsZero() {
		c.delackAt = now.Add(c.s.opts.DelayedACK)
	}
}

// hardError handles a hard network error for this connection: fatal while
// connecting, a soft error afterwards (RFC 1122 4.2.3.9), since a lost ARP
// or ICMP answer mid-stream is better ridden out by retransmission.
func (c *tcpConn) hardError(err error) {
	if c.state == stateSynSent {
		c.fail(err)
	}
}

func (c *tcpConn) String() string {
	return fmt.Sprintf("tcp %v->%v", c.laddr, c.raddr)
}

var errStackStopped = errors.New("network stack stopped")
