package stack

import (
	"context"
	"encoding/binary"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/ociboot/ociboot/actors"
	"github.com/ociboot/ociboot/frames"
	"github.com/ociboot/ociboot/nic/csum"
)

// scriptPeer is a hand-driven TCP peer on a fake link: it answers ARP by
// itself and hands every TCP segment our stack sends to the test, which
// answers with segments it builds.
type scriptPeer struct {
	t    testing.TB
	s    *Stack
	pool *actors.Pool
	rx   chan *actors.Batch
	tx   chan *actors.Batch
	segs chan segment
	ip   [4]byte
	port uint16
	mac  frames.MAC

	mu     sync.Mutex
	drop   func(*segment) bool // drop our segments it matches
	ourMAC frames.MAC
}

func (p *scriptPeer) MAC() net.HardwareAddr    { return ourMAC }
func (p *scriptPeer) MTU() int                 { return 1500 }
func (p *scriptPeer) RX() <-chan *actors.Batch { return p.rx }
func (p *scriptPeer) TX() chan<- *actors.Batch { return p.tx }
func (p *scriptPeer) Pool() *actors.Pool       { return p.pool }

func newScriptPeer(t testing.TB, opts Options) *scriptPeer {
	p := newUnconfiguredScriptPeer(t, opts)
	if err := p.s.Configure(Config{Addr: ourAddr}); err != nil {
		t.Fatal(err)
	}
	return p
}

func newUnconfiguredScriptPeer(t testing.TB, opts Options) *scriptPeer {
	p := &scriptPeer{
		t:    t,
		pool: actors.NewPool(1514, 64),
		rx:   make(chan *actors.Batch, 64),
		tx:   make(chan *actors.Batch, 64),
		segs: make(chan segment, 1024),
		ip:   peerIP.As4(),
		port: 8080,
		mac:  frames.MAC(peerMAC),
	}
	copy(p.ourMAC[:], ourMAC)
	if opts.Logf == nil {
		opts.Logf = t.Logf
	}
	p.s = New(p, opts)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, a := range p.s.Actors() {
		wg.Add(1)
		go func() { defer wg.Done(); a.Run(ctx) }()
	}
	wg.Add(1)
	go func() { defer wg.Done(); p.pump(ctx) }()
	t.Cleanup(func() { cancel(); wg.Wait() })
	return p
}

// pump reads what our stack sends.
func (p *scriptPeer) pump(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case b := <-p.tx:
			for _, f := range b.Bufs {
				p.frame(ctx, f)
			}
			b.Release()
		}
	}
}

func (p *scriptPeer) frame(ctx context.Context, f []byte) {
	h, _ := frames.ParseHeader(f)
	switch h.Type {
	case frames.TypeARP:
		a, ok := frames.ParseARP(f[frames.HeaderLen:])
		if ok && a.Op == frames.ARPRequest && a.TargetIP == netip.AddrFrom4(p.ip) {
			b := p.pool.Get()
			r := b.Append(frames.HeaderLen + frames.ARPLen)
			frames.Header{Dst: a.SenderMAC, Src: p.mac, Type: frames.TypeARP}.Put(r)
			frames.ARP{Op: frames.ARPReply, SenderMAC: p.mac, SenderIP: a.TargetIP, TargetMAC: a.SenderMAC, TargetIP: a.SenderIP}.Put(r[frames.HeaderLen:])
			select {
			case p.rx <- b:
			case <-ctx.Done():
			}
		}
	case frames.TypeIPv4:
		ih, payload, err := parseIPv4(f[frames.HeaderLen:])
		if err != nil {
			p.t.Errorf("our stack sent a bad IPv4 packet: %v", err)
			return
		}
		if ih.proto != protoTCP {
			return
		}
		seg, err := parseTCP(payload, ih.src, ih.dst)
		if err != nil {
			p.t.Errorf("our stack sent a bad TCP segment: %v", err)
			return
		}
		seg.payload = append([]byte(nil), seg.payload...)
		p.mu.Lock()
		drop := p.drop != nil && p.drop(&seg)
		p.mu.Unlock()
		if !drop {
			p.segs <- seg
		}
	}
}

func (p *scriptPeer) setDrop(f func(*segment) bool) {
	p.mu.Lock()
	p.drop = f
	p.mu.Unlock()
}

// sendUDP sends a datagram from the peer's port 67 to dst:68.
func (p *scriptPeer) sendUDP(dst netip.Addr, payload []byte, corrupt bool) {
	b := p.pool.Get()
	total := ipv4HeaderLen + udpHeaderLen + len(payload)
	buf := appendFrame(b, frames.HeaderLen+total)
	frames.Header{Dst: p.ourMAC, Src: p.mac, Type: frames.TypeIPv4}.Put(buf)
	ip := buf[frames.HeaderLen:]
	putIPv4(ip, total, 1, protoUDP, p.ip, dst.As4())
	u := ip[ipv4HeaderLen:]
	binary.BigEndian.PutUint16(u[0:2], 67)
	binary.BigEndian.PutUint16(u[2:4], 68)
	binary.BigEndian.PutUint16(u[4:6], uint16(udpHeaderLen+len(payload)))
	u[6], u[7] = 0, 0
	copy(u[udpHeaderLen:], payload)
	binary.BigEndian.PutUint16(u[6:8], csum.Fold(csum.Sum(pseudoSum(p.ip, dst.As4(), protoUDP, len(u)), u)))
	if corrupt {
		u[len(u)-1] ^= 0xff
	}
	p.rx <- b
}

// appendFrame adds an n-byte frame buffer to b; one larger than the MTU is
// a segment the host handed over whole, as a NIC with receive offloads
// delivers it, and gets a buffer of its own.
func appendFrame(b *actors.Batch, n int) []byte {
	if buf := b.Append(n); buf != nil {
		return buf
	}
	buf := make([]byte, n)
	b.Bufs = append(b.Bufs, buf)
	return buf
}

// send sends a segment from the peer to our stack's port lport.
func (p *scriptPeer) send(lport uint16, o tcpOut, payload []byte) {
	b := p.pool.Get()
	total := ipv4HeaderLen + tcpHeaderLen + o.optLen() + len(payload)
	buf := appendFrame(b, frames.HeaderLen+total)
	frames.Header{Dst: p.ourMAC, Src: p.mac, Type: frames.TypeIPv4}.Put(buf)
	ip := buf[frames.HeaderLen:]
	dst := ourAddr.Addr().As4()
	putIPv4(ip, total, 1, protoTCP, p.ip, dst)
	copy(ip[ipv4HeaderLen+tcpHeaderLen+o.optLen():], payload)
	putTCP(ip[ipv4HeaderLen:], p.port, lport, &o, len(payload), p.ip, dst)
	p.rx <- b
}

// expect returns our next segment, failing the test after a while.
func (p *scriptPeer) expect(what string) segment {
	p.t.Helper()
	select {
	case s := <-p.segs:
		return s
	case <-time.After(10 * time.Second):
		p.t.Fatalf("no segment from our stack: waited for %s", what)
	}
	return segment{}
}

// expectFlags waits for a segment carrying flags, skipping pure ACKs.
func (p *scriptPeer) expectFlags(what string, flags uint8) segment {
	p.t.Helper()
	for {
		s := p.expect(what)
		if s.flags&flags == flags {
			return s
		}
		if s.flags&^(flagACK|flagPSH) != 0 || len(s.payload) > 0 {
			p.t.Fatalf("waiting for %s: got flags %#x seq %d len %d", what, s.flags, s.seq, len(s.payload))
		}
	}
}

// conn is one connection the script drives.
type scriptConn struct {
	p      *scriptPeer
	c      net.Conn
	lport  uint16
	iss    uint32 // the peer's
	ourISS uint32
	rcvNxt uint32 // the peer's view: next seq from us
	sndNxt uint32 // the peer's next seq
}

// dial connects through the handshake; the peer advertises wnd (scaled by
// 2^7) and the usual options.
func (p *scriptPeer) dial(wnd uint16) *scriptConn {
	p.t.Helper()
	type res struct {
		c   net.Conn
		err error
	}
	done := make(chan res, 1)
	go func() {
		c, err := p.s.DialTCP(context.Background(), netip.AddrPortFrom(peerIP, p.port))
		done <- res{c, err}
	}()
	syn := p.expectFlags("SYN", flagSYN)
	if syn.mss != 1460 || syn.wscale != 7 || !syn.sackOK || !syn.ts {
		p.t.Fatalf("SYN options: mss %d wscale %d sackOK %v ts %v", syn.mss, syn.wscale, syn.sackOK, syn.ts)
	}
	sc := &scriptConn{p: p, lport: syn.srcPort, iss: 1000, ourISS: syn.seq, rcvNxt: syn.seq + 1, sndNxt: 1001}
	p.send(sc.lport, tcpOut{seq: sc.iss, ack: sc.rcvNxt, flags: flagSYN | flagACK, wnd: wnd, syn: true, mss: 1460, wscale: 7, ts: true, tsVal: 1, tsEcr: syn.tsVal}, nil)
	r := <-done
	if r.err != nil {
		p.t.Fatalf("dial: %v", r.err)
	}
	sc.c = r.c
	ack := p.expect("ACK of SYN-ACK")
	if ack.flags != flagACK || ack.ack != sc.sndNxt {
		p.t.Fatalf("handshake ACK: flags %#x ack %d", ack.flags, ack.ack)
	}
	p.t.Cleanup(func() { sc.c.Close() })
	return sc
}

func (sc *scriptConn) send(flags uint8, wnd uint16, payload []byte, sacks ...sackBlock) {
	o := tcpOut{seq: sc.sndNxt, ack: sc.rcvNxt, flags: flags, wnd: wnd, ts: true, tsVal: 2, sacks: sacks}
	sc.p.send(sc.lport, o, payload)
	sc.sndNxt += uint32(len(payload))
	if flags&(flagFIN|flagSYN) != 0 {
		sc.sndNxt++
	}
}

// ackTo acknowledges our data up to seq.
func (sc *scriptConn) ackTo(seq uint32, wnd uint16, sacks ...sackBlock) {
	sc.rcvNxt = seq
	sc.send(flagACK, wnd, nil, sacks...)
}
