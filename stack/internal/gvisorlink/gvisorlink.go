// Package gvisorlink connects a frames.Link to a gVisor netstack in the same
// process, so host tests run our stack against one nobody here wrote. The
// link can lose, reorder and duplicate frames in either direction, with
// decisions drawn from a seeded generator so a failing run can be replayed.
package gvisorlink

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/ociboot/ociboot/actors"
	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/link/channel"
	"gvisor.dev/gvisor/pkg/tcpip/link/ethernet"
	"gvisor.dev/gvisor/pkg/tcpip/network/arp"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/icmp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"
)

// Impair says what happens to frames in one direction; each is a
// probability per frame.
type Impair struct {
	Loss, Reorder, Dup float64
}

// Config describes the link and the gVisor peer on its far end.
type Config struct {
	MAC      net.HardwareAddr // ours (the frames side)
	PeerMAC  net.HardwareAddr
	PeerAddr netip.Prefix // the gVisor stack's address and subnet
	MTU      int          // IP MTU [1500]
	Seed     uint64
	ToPeer   Impair
	FromPeer Impair
}

// Counts are what the impairments did.
type Counts struct {
	Frames, Lost, Reordered, Duplicated atomic.Uint64
}

// Link is a frames.Link whose far end is a gVisor stack.
type Link struct {
	Peer             *stack.Stack
	ToPeer, FromPeer Counts

	cfg    Config
	ch     *channel.Endpoint
	pool   *actors.Pool
	rx     chan *actors.Batch
	tx     chan *actors.Batch
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New starts the gVisor peer and the two pump goroutines.
func New(cfg Config) (*Link, error) {
	if cfg.MTU == 0 {
		cfg.MTU = 1500
	}
	s := stack.New(stack.Options{
		NetworkProtocols:   []stack.NetworkProtocolFactory{ipv4.NewProtocol, arp.NewProtocol},
		TransportProtocols: []stack.TransportProtocolFactory{tcp.NewProtocol, udp.NewProtocol, icmp.NewProtocol4},
	})
	sack := tcpip.TCPSACKEnabled(true)
	if err := s.SetTransportProtocolOption(tcp.ProtocolNumber, &sack); err != nil {
		return nil, fmt.Errorf("gvisorlink: enable SACK: %v", err)
	}
	ch := channel.New(1024, uint32(cfg.MTU+14), tcpip.LinkAddress(cfg.PeerMAC))
	if err := s.CreateNIC(1, ethernet.New(ch)); err != nil {
		return nil, fmt.Errorf("gvisorlink: create NIC: %v", err)
	}
	pa := tcpip.ProtocolAddress{
		Protocol:          ipv4.ProtocolNumber,
		AddressWithPrefix: tcpip.AddrFrom4(cfg.PeerAddr.Addr().As4()).WithPrefix(),
	}
	pa.AddressWithPrefix.PrefixLen = cfg.PeerAddr.Bits()
	if err := s.AddProtocolAddress(1, pa, stack.AddressProperties{}); err != nil {
		return nil, fmt.Errorf("gvisorlink: add address: %v", err)
	}
	s.SetRouteTable([]tcpip.Route{{Destination: pa.AddressWithPrefix.Subnet(), NIC: 1}})
	ctx, cancel := context.WithCancel(context.Background())
	l := &Link{
		Peer:   s,
		cfg:    cfg,
		ch:     ch,
		pool:   actors.NewPool(cfg.MTU+14, 64),
		rx:     make(chan *actors.Batch, 64),
		tx:     make(chan *actors.Batch, 64),
		cancel: cancel,
	}
	l.wg.Add(2)
	go l.fromPeer(ctx, rand.New(rand.NewPCG(cfg.Seed, 1)))
	go l.toPeer(ctx, rand.New(rand.NewPCG(cfg.Seed, 2)))
	return l, nil
}

func (l *Link) MAC() net.HardwareAddr    { return l.cfg.MAC }
func (l *Link) MTU() int                 { return l.cfg.MTU }
func (l *Link) RX() <-chan *actors.Batch { return l.rx }
func (l *Link) TX() chan<- *actors.Batch { return l.tx }
func (l *Link) Pool() *actors.Pool       { return l.pool }

// Close stops the pumps and the gVisor stack.
func (l *Link) Close() {
	l.cancel()
	l.wg.Wait()
	l.Peer.Close()
	l.Peer.Wait()
}

// impair applies im to frames in order, returning what goes on the wire.
func impair(frames [][]byte, im Impair, r *rand.Rand, c *Counts) [][]byte {
	out := make([][]byte, 0, len(frames)+1)
	var held []byte
	for _, f := range frames {
		c.Frames.Add(1)
		if im.Loss > 0 && r.Float64() < im.Loss {
			c.Lost.Add(1)
			continue
		}
		dup := im.Dup > 0 && r.Float64() < im.Dup
		if held == nil && im.Reorder > 0 && r.Float64() < im.Reorder {
			c.Reordered.Add(1)
			held = f
		} else {
			out = append(out, f)
			if held != nil {
				out = append(out, held)
				held = nil
			}
		}
		if dup {
			c.Duplicated.Add(1)
			out = append(out, f)
		}
	}
	if held != nil {
		out = append(out, held)
	}
	return out
}

// fromPeer moves gVisor's outgoing frames to RX, in batches of what is
// queued.
func (l *Link) fromPeer(ctx context.Context, r *rand.Rand) {
	defer l.wg.Done()
	var frames [][]byte
	for {
		pkt := l.ch.ReadContext(ctx)
		if pkt == nil {
			return
		}
		frames = frames[:0]
		for pkt != nil {
			frames = append(frames, pkt.ToView().AsSlice())
			pkt.DecRef()
			if len(frames) == l.pool.BatchSize() {
				break
			}
			pkt = l.ch.Read()
		}
		b := l.pool.Get()
		for _, f := range impair(frames, l.cfg.FromPeer, r, &l.FromPeer) {
			buf := b.Append(len(f))
			if buf == nil {
				if !l.deliver(ctx, b) {
					return
				}
				b = l.pool.Get()
				buf = b.Append(len(f))
			}
			copy(buf, f)
		}
		if b.Len() == 0 {
			b.Release()
			continue
		}
		if !l.deliver(ctx, b) {
			return
		}
	}
}

func (l *Link) deliver(ctx context.Context, b *actors.Batch) bool {
	select {
	case l.rx <- b:
		return true
	case <-ctx.Done():
		b.Release()
		return false
	}
}

// toPeer injects our frames into gVisor.
func (l *Link) toPeer(ctx context.Context, r *rand.Rand) {
	defer l.wg.Done()
	for {
		select {
		case <-ctx.Done():
			return
		case b := <-l.tx:
			for _, f := range impair(b.Bufs, l.cfg.ToPeer, r, &l.ToPeer) {
				pkt := stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: buffer.MakeWithData(f)})
				l.ch.InjectInbound(0, pkt)
				pkt.DecRef()
			}
			b.Release()
		}
	}
}
