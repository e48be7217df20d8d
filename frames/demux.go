package frames

import (
	"context"
	"net/netip"
	"sync"
	"time"

	"github.com/ociboot/ociboot/actors"
)

// Options configures a Demux. Zero fields take defaults.
type Options struct {
	Logf    func(format string, args ...any)
	UpQueue int // batches of IPv4 frames buffered towards the stack [256]
	Cache   CacheConfig
	// Unresolved, when set, is told of a next hop that did not answer ARP
	// after its tries, with the IPv4 packets that waited for it (each
	// starting at HeaderLen), so their senders can fail at once instead of
	// retrying into silence. It runs on the demux's goroutine: it must not
	// block, and must not keep the packets.
	Unresolved func(err *ResolveError, packets [][]byte)
}

// Demux is the ARP/IPv4 demux actor. It reads frame batches from the link,
// answers and learns from ARP, and passes IPv4 frames up (Up). It takes the
// stack's outgoing packets (Out), resolves their next hop, adds the Ethernet
// header in place and sends them to the link in the same batches.
//
// The link must keep draining TX while it waits to deliver RX (and the other
// way round): the demux blocks on each in turn.
type Demux struct {
	link       Link
	mac        MAC
	logf       func(string, ...any)
	unresolved func(*ResolveError, [][]byte)
	up         chan *actors.Batch
	out        chan Outbound
	cache      *Cache
	counters   actors.Counters

	mu   sync.Mutex
	addr netip.Addr // our IPv4 address; invalid until set
	garp chan struct{}

	// Dropped counts frames the demux discarded (not for us, malformed,
	// unresolved, queue full); read it only after Run returned or in tests
	// through Stats.
	stats Stats
	smu   sync.Mutex
}

// Stats are the demux's drop and ARP counts.
type Stats struct {
	RXNotForUs, RXMalformed, RXOtherType uint64
	ARPRequestsIn, ARPRepliesIn          uint64
	ARPRequestsOut, ARPRepliesOut        uint64
	TXUnresolved, TXQueueFull            uint64
}

// NewDemux returns the demux for link.
func NewDemux(link Link, opts Options) *Demux {
	if opts.Logf == nil {
		opts.Logf = func(string, ...any) {}
	}
	if opts.UpQueue <= 0 {
		opts.UpQueue = 256
	}
	d := &Demux{
		link:       link,
		logf:       opts.Logf,
		unresolved: opts.Unresolved,
		up:         make(chan *actors.Batch, opts.UpQueue),
		out:        make(chan Outbound, 64),
		cache:      NewCache(opts.Cache),
		garp:       make(chan struct{}, 1),
	}
	copy(d.mac[:], link.MAC())
	return d
}

// Name implements actors.Actor.
func (d *Demux) Name() string { return "frames" }

// Counters implements actors.Metered: frames and bytes received and sent.
func (d *Demux) Counters() *actors.Counters { return &d.counters }

// Up delivers batches of received IPv4 frames; the IP packet starts at
// HeaderLen of each buffer. The receiver owns each batch.
func (d *Demux) Up() <-chan *actors.Batch { return d.up }

// Out takes packets to send. The demux owns each batch sent to it.
func (d *Demux) Out() chan<- Outbound { return d.out }

// MAC is the link's address.
func (d *Demux) MAC() MAC { return d.mac }

// SetAddr sets our IPv4 address (the zero Addr unsets it): ARP requests
// for it are answered from then on, and a gratuitous ARP announces it.
func (d *Demux) SetAddr(a netip.Addr) {
	d.mu.Lock()
	d.addr = a
	d.mu.Unlock()
	if a.IsValid() {
		select {
		case d.garp <- struct{}{}:
		default:
		}
	}
}

func (d *Demux) ourAddr() netip.Addr {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.addr
}

// Stats returns a copy of the drop and ARP counts.
func (d *Demux) Stats() Stats {
	d.smu.Lock()
	defer d.smu.Unlock()
	return d.stats
}

func (d *Demux) count(f func(*Stats)) {
	d.smu.Lock()
	f(&d.stats)
	d.smu.Unlock()
}

// Run implements actors.Actor.
func (d *Demux) Run(ctx context.Context) error {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	var timerAt time.Time
	defer func() {
		// Drain what the stack already handed us so the pool gets it back.
		for {
			select {
			case o := <-d.out:
				o.Batch.Release()
			default:
				return
			}
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return nil
		case b := <-d.link.RX():
			d.counters.SetQueue(len(d.link.RX()))
			start := time.Now()
			d.receive(ctx, b)
			d.counters.BusySince(start)
		case o := <-d.out:
			start := time.Now()
			d.send(ctx, o)
			d.counters.BusySince(start)
		case <-d.garp:
			if a := d.ourAddr(); a.IsValid() {
				d.request(ctx, a, a) // RFC 5227 announcement: sender = target = us
			}
		case <-timer.C:
			timerAt = time.Time{}
		}
		if d.cache.Pending() > 0 || !timerAt.IsZero() {
			now := time.Now()
			if timerAt.IsZero() || !now.Before(timerAt) {
				reqs, failed, next := d.cache.Tick(now)
				for _, ip := range reqs {
					d.request(ctx, d.ourAddr(), ip)
				}
				for _, u := range failed {
					d.giveUp(u)
				}
				timerAt = next
				if !next.IsZero() {
					timer.Reset(next.Sub(now))
				}
			}
		}
	}
}

// giveUp drops the packets of a next hop that did not answer ARP, after
// telling their senders.
func (d *Demux) giveUp(u Unresolved) {
	d.count(func(s *Stats) { s.TXUnresolved += uint64(len(u.Packets)) })
	err := &ResolveError{Addr: u.Addr}
	d.logf("frames: %v: dropped %d packets", err, len(u.Packets))
	if d.unresolved != nil {
		d.unresolved(err, u.Packets)
	}
}

// receive handles one RX batch: ARP is answered here, IPv4 frames for us
// are compacted to the front (swapping, so every buffer stays with the
// batch for reuse) and the batch goes up.
func (d *Demux) receive(ctx context.Context, b *actors.Batch) {
	d.counters.Add(b.Len(), b.Bytes())
	n := 0
	for i, f := range b.Bufs {
		h, ok := ParseHeader(f)
		if !ok {
			d.count(func(s *Stats) { s.RXMalformed++ })
			continue
		}
		if h.Dst != d.mac && !h.Dst.IsMulticast() {
			d.count(func(s *Stats) { s.RXNotForUs++ })
			continue
		}
		switch h.Type {
		case TypeIPv4:
			b.Bufs[n], b.Bufs[i] = b.Bufs[i], b.Bufs[n]
			n++
		case TypeARP:
			d.arp(ctx, f[HeaderLen:])
		default:
			d.count(func(s *Stats) { s.RXOtherType++ })
		}
	}
	if n == 0 {
		b.Release()
		return
	}
	b.Bufs = b.Bufs[:n]
	select {
	case d.up <- b:
	case <-ctx.Done():
		b.Release()
	}
}

// arp learns from an ARP packet and answers requests for our address.
func (d *Demux) arp(ctx context.Context, p []byte) {
	a, ok := ParseARP(p)
	if !ok {
		d.count(func(s *Stats) { s.RXMalformed++ })
		return
	}
	ours := d.ourAddr()
	forUs := ours.IsValid() && a.TargetIP == ours
	now := time.Now()
	if a.SenderIP.IsValid() && !a.SenderIP.IsUnspecified() && a.SenderMAC != d.mac {
		if pending := d.cache.Update(a.SenderIP, a.SenderMAC, now, forUs); len(pending) > 0 {
			d.flushPending(ctx, a.SenderMAC, pending)
		}
	}
	switch a.Op {
	case ARPRequest:
		d.count(func(s *Stats) { s.ARPRequestsIn++ })
		if !forUs {
			return
		}
		d.transmitARP(ctx, ARP{Op: ARPReply, SenderMAC: d.mac, SenderIP: ours, TargetMAC: a.SenderMAC, TargetIP: a.SenderIP}, a.SenderMAC)
		d.count(func(s *Stats) { s.ARPRepliesOut++ })
	case ARPReply:
		d.count(func(s *Stats) { s.ARPRepliesIn++ })
	}
}

// request broadcasts an ARP request for target from sender (0.0.0.0 when
// unconfigured: an RFC 5227 probe).
func (d *Demux) request(ctx context.Context, sender, target netip.Addr) {
	d.transmitARP(ctx, ARP{Op: ARPRequest, SenderMAC: d.mac, SenderIP: sender, TargetIP: target}, BroadcastMAC)
	d.count(func(s *Stats) { s.ARPRequestsOut++ })
}

func (d *Demux) transmitARP(ctx context.Context, a ARP, dst MAC) {
	b := d.link.Pool().Get()
	f := b.Append(HeaderLen + ARPLen)
	if f == nil {
		b.Release()
		return
	}
	Header{Dst: dst, Src: d.mac, Type: TypeARP}.Put(f)
	a.Put(f[HeaderLen:])
	d.transmit(ctx, b)
}

// send frames an outbound batch for its next hop, or queues its packets
// until the next hop resolves.
func (d *Demux) send(ctx context.Context, o Outbound) {
	b := o.Batch
	if b.Len() == 0 {
		b.Release()
		return
	}
	dst := BroadcastMAC
	if o.NextHop.IsValid() && o.NextHop != Broadcast {
		now := time.Now()
		mac, ok, refresh := d.cache.Lookup(o.NextHop, now)
		if refresh {
			d.request(ctx, d.ourAddr(), o.NextHop)
		}
		if !ok {
			for _, p := range b.Bufs {
				req, dropped := d.cache.Queue(o.NextHop, append([]byte(nil), p...), now)
				if dropped {
					d.count(func(s *Stats) { s.TXQueueFull++ })
				}
				if req {
					d.request(ctx, d.ourAddr(), o.NextHop)
				}
			}
			b.Release()
			return
		}
		dst = mac
	}
	h := Header{Dst: dst, Src: d.mac, Type: TypeIPv4}
	for _, p := range b.Bufs {
		h.Put(p)
	}
	d.transmit(ctx, b)
}

// flushPending sends the packets that waited for mac.
func (d *Demux) flushPending(ctx context.Context, mac MAC, pending [][]byte) {
	h := Header{Dst: mac, Src: d.mac, Type: TypeIPv4}
	b := d.link.Pool().Get()
	for _, p := range pending {
		f := b.Append(len(p))
		if f == nil {
			d.transmit(ctx, b)
			b = d.link.Pool().Get()
			if f = b.Append(len(p)); f == nil {
				continue // larger than a pool buffer: cannot be sent
			}
		}
		copy(f, p)
		h.Put(f)
	}
	if b.Len() > 0 {
		d.transmit(ctx, b)
	} else {
		b.Release()
	}
}

func (d *Demux) transmit(ctx context.Context, b *actors.Batch) {
	d.counters.Add(b.Len(), b.Bytes())
	select {
	case d.link.TX() <- b:
	case <-ctx.Done():
		b.Release()
	}
}
