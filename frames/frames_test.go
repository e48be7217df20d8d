package frames

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ociboot/ociboot/actors"
)

func TestHeaderRoundTrip(t *testing.T) {
	h := Header{Dst: BroadcastMAC, Src: MAC{2, 0, 0, 0, 0, 1}, Type: TypeARP}
	b := make([]byte, HeaderLen)
	h.Put(b)
	got, ok := ParseHeader(b)
	if !ok || got != h {
		t.Fatalf("ParseHeader = %+v, %v", got, ok)
	}
	if _, ok := ParseHeader(b[:13]); ok {
		t.Fatal("a 13-byte frame parsed")
	}
	if !BroadcastMAC.IsMulticast() || (MAC{2, 0, 0, 0, 0, 1}).IsMulticast() {
		t.Fatal("IsMulticast")
	}
}

func TestARPParse(t *testing.T) {
	a := ARP{Op: ARPReply, SenderMAC: MAC{2, 0, 0, 0, 0, 2}, SenderIP: netip.MustParseAddr("10.0.0.2"),
		TargetMAC: MAC{2, 0, 0, 0, 0, 1}, TargetIP: netip.MustParseAddr("10.0.0.1")}
	b := make([]byte, ARPLen)
	a.Put(b)
	got, ok := ParseARP(b)
	if !ok || got != a {
		t.Fatalf("ParseARP = %+v, %v", got, ok)
	}
	if _, ok := ParseARP(b[:ARPLen-1]); ok {
		t.Fatal("truncated ARP parsed")
	}
	bad := bytes.Clone(b)
	bad[1] = 6 // IEEE 802 hardware type
	if _, ok := ParseARP(bad); ok {
		t.Fatal("non-Ethernet ARP parsed")
	}
	bad = bytes.Clone(b)
	bad[5] = 16 // IPv6-sized protocol address
	if _, ok := ParseARP(bad); ok {
		t.Fatal("ARP with 16-byte protocol addresses parsed")
	}
}

func TestCachePendingAndTimeouts(t *testing.T) {
	c := NewCache(CacheConfig{TTL: 10 * time.Second, Retry: time.Second, Tries: 3, MaxPending: 2})
	ip := netip.MustParseAddr("10.0.0.9")
	t0 := time.Unix(1000, 0)
	if _, ok, _ := c.Lookup(ip, t0); ok {
		t.Fatal("empty cache answered")
	}
	if req, dropped := c.Queue(ip, []byte{1}, t0); !req || dropped {
		t.Fatalf("first Queue: request %v dropped %v", req, dropped)
	}
	if req, dropped := c.Queue(ip, []byte{2}, t0); req || dropped {
		t.Fatalf("second Queue: request %v dropped %v", req, dropped)
	}
	if _, dropped := c.Queue(ip, []byte{3}, t0); !dropped {
		t.Fatal("queue beyond MaxPending accepted")
	}
	if reqs, failed, next := c.Tick(t0.Add(500 * time.Millisecond)); len(reqs) != 0 || len(failed) != 0 || !next.Equal(t0.Add(time.Second)) {
		t.Fatalf("early Tick: %v %v %v", reqs, failed, next)
	}
	for i := 1; i <= 2; i++ {
		reqs, failed, _ := c.Tick(t0.Add(time.Duration(i) * time.Second))
		if len(reqs) != 1 || reqs[0] != ip || len(failed) != 0 {
			t.Fatalf("retry %d: requests %v failed %v", i, reqs, failed)
		}
	}
	reqs, failed, next := c.Tick(t0.Add(3 * time.Second))
	if len(reqs) != 0 || len(failed) != 1 || !next.IsZero() || c.Pending() != 0 {
		t.Fatalf("after the last try: requests %v failed %v next %v pending %d", reqs, failed, next, c.Pending())
	}
	if u := failed[0]; u.Addr != ip || len(u.Packets) != 2 || u.Packets[0][0] != 1 || u.Packets[1][0] != 2 {
		t.Fatalf("gave up on %v with packets %v, want %v with [[1] [2]]", u.Addr, u.Packets, ip)
	}

	// Resolution releases what waited.
	t1 := t0.Add(10 * time.Second)
	c.Queue(ip, []byte{4}, t1)
	mac := MAC{2, 0, 0, 0, 0, 9}
	if p := c.Update(ip, mac, t1, false); len(p) != 1 || p[0][0] != 4 {
		t.Fatalf("Update returned %v", p)
	}
	if got, ok, req := c.Lookup(ip, t1.Add(9*time.Second)); !ok || req || got != mac {
		t.Fatalf("fresh Lookup = %v %v %v", got, ok, req)
	}
	// Stale: still answers, asks for a refresh once per retry interval,
	// and is forgotten when refreshes go unanswered.
	stale := t1.Add(11 * time.Second)
	if _, ok, req := c.Lookup(ip, stale); !ok || !req {
		t.Fatalf("stale Lookup: ok %v request %v", ok, req)
	}
	if _, ok, req := c.Lookup(ip, stale); !ok || req {
		t.Fatalf("second stale Lookup: ok %v request %v", ok, req)
	}
	c.Lookup(ip, stale.Add(time.Second))
	c.Lookup(ip, stale.Add(2*time.Second))
	if _, ok, _ := c.Lookup(ip, stale.Add(3*time.Second)); ok {
		t.Fatal("an unanswered stale entry is still used")
	}
	// Learning without create only refreshes known addresses.
	other := netip.MustParseAddr("10.0.0.10")
	c.Update(other, mac, t1, false)
	if _, ok, _ := c.Lookup(other, t1); ok {
		t.Fatal("Update without create added an entry")
	}
}

// fakeLink is a Link the test drives.
type fakeLink struct {
	pool *actors.Pool
	rx   chan *actors.Batch
	tx   chan *actors.Batch
}

var (
	ourMAC  = MAC{2, 0, 0, 0, 0, 1}
	peerMAC = MAC{2, 0, 0, 0, 0, 2}
	ourIP   = netip.MustParseAddr("10.0.0.1")
	peerIP  = netip.MustParseAddr("10.0.0.2")
)

func (l *fakeLink) MAC() net.HardwareAddr    { return net.HardwareAddr(ourMAC[:]) }
func (l *fakeLink) MTU() int                 { return 1500 }
func (l *fakeLink) RX() <-chan *actors.Batch { return l.rx }
func (l *fakeLink) TX() chan<- *actors.Batch { return l.tx }
func (l *fakeLink) Pool() *actors.Pool       { return l.pool }

func startDemux(t *testing.T) (*Demux, *fakeLink) {
	return startDemuxWith(t, Options{})
}

// startDemuxWith runs a demux over a fakeLink; opts' zero Logf and Cache
// take the test's log and a short retry interval.
func startDemuxWith(t *testing.T, opts Options) (*Demux, *fakeLink) {
	l := &fakeLink{pool: actors.NewPool(1514, 16), rx: make(chan *actors.Batch, 16), tx: make(chan *actors.Batch, 16)}
	if opts.Logf == nil {
		opts.Logf = t.Logf
	}
	if opts.Cache == (CacheConfig{}) {
		opts.Cache = CacheConfig{Retry: 50 * time.Millisecond}
	}
	d := NewDemux(l, opts)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); d.Run(ctx) }()
	t.Cleanup(func() { cancel(); wg.Wait() })
	return d, l
}

// sent returns the next frame the demux transmitted.
func sent(t *testing.T, l *fakeLink) []byte {
	t.Helper()
	select {
	case b := <-l.tx:
		if b.Len() != 1 {
			t.Fatalf("batch of %d frames", b.Len())
		}
		f := bytes.Clone(b.Bufs[0])
		b.Release()
		return f
	case <-time.After(5 * time.Second):
		t.Fatal("nothing transmitted")
	}
	return nil
}

func arpFrame(l *fakeLink, a ARP, dst MAC) *actors.Batch {
	b := l.pool.Get()
	f := b.Append(HeaderLen + ARPLen)
	Header{Dst: dst, Src: a.SenderMAC, Type: TypeARP}.Put(f)
	a.Put(f[HeaderLen:])
	return b
}

func TestDemuxARP(t *testing.T) {
	d, l := startDemux(t)
	d.SetAddr(ourIP)
	// Gratuitous ARP announces the address.
	f := sent(t, l)
	h, _ := ParseHeader(f)
	a, ok := ParseARP(f[HeaderLen:])
	if h.Dst != BroadcastMAC || !ok || a.Op != ARPRequest || a.SenderIP != ourIP || a.TargetIP != ourIP || a.SenderMAC != ourMAC {
		t.Fatalf("gratuitous ARP: %+v %+v", h, a)
	}
	// A request for someone else is not answered; one for us is.
	l.rx <- arpFrame(l, ARP{Op: ARPRequest, SenderMAC: peerMAC, SenderIP: peerIP, TargetIP: netip.MustParseAddr("10.0.0.77")}, BroadcastMAC)
	l.rx <- arpFrame(l, ARP{Op: ARPRequest, SenderMAC: peerMAC, SenderIP: peerIP, TargetIP: ourIP}, BroadcastMAC)
	f = sent(t, l)
	h, _ = ParseHeader(f)
	a, _ = ParseARP(f[HeaderLen:])
	if h.Dst != peerMAC || a.Op != ARPReply || a.SenderIP != ourIP || a.SenderMAC != ourMAC || a.TargetIP != peerIP || a.TargetMAC != peerMAC {
		t.Fatalf("ARP reply: %+v %+v", h, a)
	}
	// The requester was learnt: a packet to it goes straight out.
	b := l.pool.Get()
	copy(b.Append(HeaderLen + 20)[HeaderLen:], "an IPv4 packet, 20 b")
	d.Out() <- Outbound{Batch: b, NextHop: peerIP}
	f = sent(t, l)
	if h, _ := ParseHeader(f); h.Dst != peerMAC || h.Src != ourMAC || h.Type != TypeIPv4 || string(f[HeaderLen:]) != "an IPv4 packet, 20 b" {
		t.Fatalf("framed packet: %+v %q", h, f[HeaderLen:])
	}
	if st := d.Stats(); st.ARPRequestsIn != 2 || st.ARPRepliesOut != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestDemuxResolvesAndFlushesQueue(t *testing.T) {
	d, l := startDemux(t)
	d.SetAddr(ourIP)
	sent(t, l) // gratuitous ARP
	gw := netip.MustParseAddr("10.0.0.254")
	gwMAC := MAC{2, 0, 0, 0, 0, 0xfe}
	for i := range 3 {
		b := l.pool.Get()
		p := b.Append(HeaderLen + 20)
		p[HeaderLen] = byte(i)
		d.Out() <- Outbound{Batch: b, NextHop: gw}
	}
	f := sent(t, l)
	a, _ := ParseARP(f[HeaderLen:])
	if a.Op != ARPRequest || a.TargetIP != gw || a.SenderIP != ourIP {
		t.Fatalf("request: %+v", a)
	}
	// No answer yet: the demux asks again.
	if a, _ := ParseARP(sent(t, l)[HeaderLen:]); a.Op != ARPRequest || a.TargetIP != gw {
		t.Fatalf("retry: %+v", a)
	}
	l.rx <- arpFrame(l, ARP{Op: ARPReply, SenderMAC: gwMAC, SenderIP: gw, TargetMAC: ourMAC, TargetIP: ourIP}, ourMAC)
	var got []byte
	for len(got) < 3 {
		select {
		case b := <-l.tx:
			for _, f := range b.Bufs {
				h, _ := ParseHeader(f)
				if h.Type == TypeARP {
					continue
				}
				if h.Dst != gwMAC {
					t.Fatalf("queued packet sent to %v", h.Dst)
				}
				got = append(got, f[HeaderLen])
			}
			b.Release()
		case <-time.After(5 * time.Second):
			t.Fatalf("only %d queued packets flushed", len(got))
		}
	}
	if !bytes.Equal(got, []byte{0, 1, 2}) {
		t.Fatalf("flushed in order %v", got)
	}
}

func TestDemuxReportsUnresolved(t *testing.T) {
	type report struct {
		err     *ResolveError
		packets [][]byte
	}
	reports := make(chan report, 1)
	d, l := startDemuxWith(t, Options{Unresolved: func(err *ResolveError, packets [][]byte) {
		var cp [][]byte
		for _, p := range packets {
			cp = append(cp, bytes.Clone(p))
		}
		reports <- report{err, cp}
	}})
	d.SetAddr(ourIP)
	sent(t, l) // gratuitous ARP
	dead := netip.MustParseAddr("10.0.0.9")
	b := l.pool.Get()
	copy(b.Append(HeaderLen + 20)[HeaderLen:], "a SYN to a dead host")
	d.Out() <- Outbound{Batch: b, NextHop: dead}
	for i := range 3 { // the default tries, then silence
		if a, _ := ParseARP(sent(t, l)[HeaderLen:]); a.Op != ARPRequest || a.TargetIP != dead {
			t.Fatalf("request %d: %+v", i+1, a)
		}
	}
	select {
	case r := <-reports:
		if r.err.Addr != dead || len(r.packets) != 1 || string(r.packets[0][HeaderLen:]) != "a SYN to a dead host" {
			t.Fatalf("report for %v with %q", r.err.Addr, r.packets)
		}
		if !errors.Is(r.err, syscall.EHOSTUNREACH) || r.err.Error() != "no ARP reply from 10.0.0.9 (host unreachable)" {
			t.Fatalf("error %q does not say host unreachable", r.err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the failed resolution was not reported")
	}
	if st := d.Stats(); st.TXUnresolved != 1 || st.ARPRequestsOut != 4 {
		t.Fatalf("stats %+v", st)
	}
}

func TestDemuxReceive(t *testing.T) {
	d, l := startDemux(t)
	b := l.pool.Get()
	mk := func(dst MAC, typ uint16, n int) {
		f := b.Append(n)
		if n >= HeaderLen {
			Header{Dst: dst, Src: peerMAC, Type: typ}.Put(f)
			if n > HeaderLen {
				f[HeaderLen] = byte(b.Len())
			}
		}
	}
	mk(ourMAC, TypeIPv4, 60)                // 1: up
	mk(MAC{2, 9, 9, 9, 9, 9}, TypeIPv4, 60) // not for us
	mk(ourMAC, 0x86dd, 60)                  // IPv6: not handled
	mk(ourMAC, TypeIPv4, 10)                // truncated
	mk(BroadcastMAC, TypeIPv4, 60)          // 5: up
	mk(ourMAC, TypeARP, HeaderLen+ARPLen-1) // truncated ARP
	l.rx <- b
	select {
	case up := <-d.Up():
		if up.Len() != 2 || up.Bufs[0][HeaderLen] != 1 || up.Bufs[1][HeaderLen] != 5 {
			t.Fatalf("up: %d frames", up.Len())
		}
		up.Release()
	case <-time.After(5 * time.Second):
		t.Fatal("nothing went up")
	}
	st := d.Stats()
	if st.RXNotForUs != 1 || st.RXOtherType != 1 || st.RXMalformed != 2 {
		t.Fatalf("stats %+v", st)
	}
}

func TestDemuxBroadcastNextHop(t *testing.T) {
	d, l := startDemux(t)
	b := l.pool.Get()
	b.Append(HeaderLen + 28)
	d.Out() <- Outbound{Batch: b, NextHop: Broadcast}
	if h, _ := ParseHeader(sent(t, l)); h.Dst != BroadcastMAC {
		t.Fatalf("broadcast went to %v", h.Dst)
	}
}
