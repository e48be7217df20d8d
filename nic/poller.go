package nic

import (
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"
	"time"

	"github.com/ociboot/ociboot/actors"
	"github.com/ociboot/ociboot/nic/virtio"
)

// Poller tuning. A batch of 32 frames amortises a channel operation over
// ~48 KB; the idle ladder spins briefly (frames come in bursts) and then
// sleeps at most maxIdle, which bounds how late an idle loader notices a
// frame: efirt sleeps the CPU until the earliest timer.
const (
	batchFrames = 32
	rxQueue     = 64 // batches the layer above may lag behind
	spinRounds  = 8
	maxIdle     = time.Millisecond
)

// Poller is the NIC actor: it moves batches of frames between a Device and
// the layer above. It implements the frames layer's Link.
type Poller struct {
	dev   Device
	logf  func(format string, args ...any)
	pool  *actors.Pool
	rx    chan *actors.Batch
	tx    chan *actors.Batch
	ready chan struct{}
	c     actors.Counters

	txq []*actors.Batch // batches taken from tx, not yet fully sent
	off int             // frames of txq[0] already sent
}

// NewPoller returns the actor for dev. logf may be nil.
func NewPoller(dev Device, logf func(format string, args ...any)) *Poller {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	return &Poller{
		dev:   dev,
		logf:  logf,
		pool:  actors.NewPool(dev.MaxFrame(), batchFrames),
		rx:    make(chan *actors.Batch, rxQueue),
		tx:    make(chan *actors.Batch, rxQueue),
		ready: make(chan struct{}),
	}
}

// Name implements actors.Actor.
func (p *Poller) Name() string { return "nic" }

// Counters are frames and bytes moved in both directions.
func (p *Poller) Counters() *actors.Counters { return &p.c }

// Ready is closed once the link is up.
func (p *Poller) Ready() <-chan struct{} { return p.ready }

// MAC is the card's address.
func (p *Poller) MAC() net.HardwareAddr { return p.dev.MAC() }

// MTU is the card's MTU.
func (p *Poller) MTU() int { return p.dev.MTU() }

// RX delivers batches of received frames; the receiver releases them.
func (p *Poller) RX() <-chan *actors.Batch { return p.rx }

// TX takes batches of frames to send; the poller releases them.
func (p *Poller) TX() chan<- *actors.Batch { return p.tx }

// Pool is where senders get batches whose buffers hold a whole frame.
func (p *Poller) Pool() *actors.Pool { return p.pool }

// Run polls the device until ctx is cancelled or the device fails.
func (p *Poller) Run(ctx context.Context) error {
	defer p.drop()
	p.waitLink(ctx)
	timer := time.NewTimer(maxIdle)
	defer timer.Stop()
	idle := 0
	for ctx.Err() == nil {
		start := time.Now()
		sent, err := p.transmit()
		if err != nil {
			return err
		}
		got, err := p.receive(ctx)
		if err != nil {
			return err
		}
		if sent+got > 0 {
			p.c.BusySince(start)
			idle = 0
			runtime.Gosched() // let the layers above take what we delivered
			continue
		}
		if idle++; idle < spinRounds || len(p.txq) > 0 {
			runtime.Gosched()
			continue
		}
		timer.Reset(min(time.Duration(idle-spinRounds+1)*100*time.Microsecond, maxIdle))
		select {
		case b := <-p.tx:
			p.txq = append(p.txq, b)
		case <-timer.C:
		case <-ctx.Done():
		}
		timer.Stop() // since Go 1.23 a stopped or reset timer delivers no stale tick
	}
	return nil
}

// waitLink waits for the link to come up before declaring the NIC ready,
// saying so once when it is down at first.
func (p *Poller) waitLink(ctx context.Context) {
	for said := false; !p.dev.LinkUp(); {
		if !said {
			p.logf("nic: waiting for the link to come up on %v", p.dev)
			said = true
		}
		select {
		case <-time.After(10 * time.Millisecond):
		case <-ctx.Done():
			return
		}
	}
	close(p.ready)
}

// transmit sends queued frames until the device's queue is full.
func (p *Poller) transmit() (int, error) {
	total := 0
	for {
		if len(p.txq) == 0 {
			select {
			case b := <-p.tx:
				p.txq = append(p.txq, b)
			default:
				return total, nil
			}
		}
		b := p.txq[0]
		n, err := p.dev.Transmit(b.Bufs[p.off:])
		for _, f := range b.Bufs[p.off : p.off+n] {
			p.c.Add(1, len(f))
		}
		total += n
		p.off += n
		if err != nil {
			if !errors.Is(err, virtio.ErrFrameSize) {
				return total, fmt.Errorf("nic: transmit on %v: %w", p.dev, err)
			}
			// One bad frame from above costs that frame, not the NIC.
			p.logf("nic: dropped a frame: %v", err)
			p.off++
			continue
		}
		if p.off < len(b.Bufs) {
			return total, nil // queue full: try again after receiving
		}
		b.Release()
		p.txq[0] = nil
		p.txq = p.txq[1:]
		p.off = 0
	}
}

// receive takes one batch of frames from the device and hands it up. While
// the layer above is behind it keeps taking frames to send, so neither
// side can block the other.
func (p *Poller) receive(ctx context.Context) (int, error) {
	b := p.pool.Full()
	n, err := p.dev.Receive(b.Bufs)
	if n == 0 {
		b.Release()
		if err != nil {
			return 0, fmt.Errorf("nic: receive on %v: %w", p.dev, err)
		}
		return 0, nil
	}
	b.Bufs = b.Bufs[:n]
	p.c.Add(n, b.Bytes())
	for {
		p.c.SetQueue(len(p.rx) + len(p.txq))
		select {
		case p.rx <- b:
			if err != nil {
				return n, fmt.Errorf("nic: receive on %v: %w", p.dev, err)
			}
			return n, nil
		case t := <-p.tx:
			p.txq = append(p.txq, t)
		case <-ctx.Done():
			b.Release()
			return n, nil
		}
	}
}

// drop releases what is still queued when the poller stops.
func (p *Poller) drop() {
	for _, b := range p.txq {
		b.Release()
	}
	p.txq = nil
	for {
		select {
		case b := <-p.tx:
			b.Release()
		default:
			return
		}
	}
}
