package stack

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ociboot/ociboot/frames"
	"github.com/ociboot/ociboot/nic/csum"
	"github.com/ociboot/ociboot/stack/internal/gvisorlink"
)

const bigWnd = 0xffff // ×2^7 ≈ 8 MiB

func connOf(c net.Conn) *tcpConn { return c.(*TCPConn).c }

func TestRetransmitAfterRTO(t *testing.T) {
	// A 100ms floor keeps the RTO ahead of the tail probe (≥ 210ms for a
	// lone segment), so the retransmission seen is the timer's.
	p := newScriptPeer(t, Options{MinRTO: 100 * time.Millisecond})
	sc := p.dial(bigWnd)
	dropped := false
	p.setDrop(func(s *segment) bool {
		if len(s.payload) > 0 && !dropped {
			dropped = true
			return true
		}
		return false
	})
	if _, err := sc.c.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	seg := p.expect("retransmission")
	if string(seg.payload) != "hello" || seg.seq != sc.ourISS+1 {
		t.Fatalf("retransmission: seq %d payload %q", seg.seq, seg.payload)
	}
	if n := connOf(sc.c).stats.rtoRetransmits.Load(); n != 1 {
		t.Fatalf("RTO retransmissions = %d, want 1", n)
	}
	sc.ackTo(seg.seq+5, bigWnd)
}

func TestFastRetransmit(t *testing.T) {
	p := newScriptPeer(t, Options{MinRTO: 5 * time.Second})
	sc := p.dial(bigWnd)
	data := bytes.Repeat([]byte("0123456789abcdef"), 10*1448/16)
	if _, err := sc.c.Write(data); err != nil {
		t.Fatal(err)
	}
	var segs []segment
	got := 0
	for got < len(data) {
		s := p.expect("data")
		if len(s.payload) == 0 {
			continue
		}
		segs = append(segs, s)
		got += len(s.payload)
	}
	if len(segs) < 4 {
		t.Fatalf("only %d segments for %d bytes", len(segs), len(data))
	}
	// The first segment is "lost": three duplicate ACKs with SACK blocks.
	una := segs[0].seq
	for i := 1; i <= 3; i++ {
		end := segs[i].seq + uint32(len(segs[i].payload))
		sc.ackTo(una, bigWnd, sackBlock{segs[1].seq, end})
	}
	var re segment
	for {
		re = p.expect("fast retransmission")
		if len(re.payload) > 0 && re.seq == una {
			break // anything else is a tail probe from a slow test machine
		}
	}
	if re.seq != una || !bytes.Equal(re.payload, segs[0].payload) {
		t.Fatalf("retransmitted seq %d (%d bytes), want seq %d", re.seq, len(re.payload), una)
	}
	st := &connOf(sc.c).stats
	if st.fastRetransmits.Load() != 1 || st.rtoRetransmits.Load() != 0 {
		t.Fatalf("fast retransmits %d, RTO retransmits %d; want 1, 0", st.fastRetransmits.Load(), st.rtoRetransmits.Load())
	}
	sc.ackTo(una+uint32(len(data)), bigWnd)
}

func TestPeerReset(t *testing.T) {
	p := newScriptPeer(t, Options{})
	sc := p.dial(bigWnd)
	// An in-window RST that is not exact draws a challenge ACK (RFC 5961).
	saved := sc.sndNxt
	sc.sndNxt += 100
	sc.send(flagRST, 0, nil)
	if a := p.expect("challenge ACK"); a.flags != flagACK || a.ack != saved {
		t.Fatalf("challenge ACK: flags %#x ack %d want ack %d", a.flags, a.ack, saved)
	}
	sc.sndNxt = saved
	sc.send(flagRST, 0, nil)
	_, err := sc.c.Read(make([]byte, 10))
	if err == nil || !strings.Contains(err.Error(), "reset") || !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("Read after RST: %v, want a connection reset error", err)
	}
	if _, err := sc.c.Write([]byte("x")); err == nil {
		t.Fatal("Write after RST succeeded")
	}
}

func TestZeroWindowProbe(t *testing.T) {
	p := newScriptPeer(t, Options{})
	sc := p.dial(0) // window shut from the start
	msg := []byte("waiting for the window")
	if _, err := sc.c.Write(msg); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		probe := p.expect("zero-window probe")
		if len(probe.payload) != 0 || probe.seq != sc.rcvNxt-1 {
			t.Fatalf("probe %d: seq %d len %d, want seq %d and no data", i, probe.seq, len(probe.payload), sc.rcvNxt-1)
		}
		sc.ackTo(sc.rcvNxt, 0)
	}
	if n := connOf(sc.c).stats.probes.Load(); n < 2 {
		t.Fatalf("probes = %d", n)
	}
	sc.ackTo(sc.rcvNxt, 8) // 1 KiB
	seg := p.expectFlags("data after the window opened", flagACK)
	for len(seg.payload) == 0 {
		seg = p.expect("data after the window opened")
	}
	if !bytes.Equal(seg.payload, msg) {
		t.Fatalf("sent %q after the window opened, want %q", seg.payload, msg)
	}
}

func TestSimultaneousClose(t *testing.T) {
	p := newScriptPeer(t, Options{TimeWait: 50 * time.Millisecond})
	sc := p.dial(bigWnd)
	tc := connOf(sc.c)
	sc.c.Close()
	fin := p.expectFlags("our FIN", flagFIN)
	// The peer's FIN crosses ours: it does not acknowledge our FIN.
	sc.send(flagFIN|flagACK, bigWnd, nil)
	ack := p.expect("ACK of the peer's FIN")
	if ack.flags&flagACK == 0 || ack.ack != sc.sndNxt {
		t.Fatalf("answer to crossing FIN: flags %#x ack %d want ack %d", ack.flags, ack.ack, sc.sndNxt)
	}
	sc.ackTo(fin.seq+1, bigWnd) // CLOSING → TIME-WAIT
	select {
	case <-tc.dead:
	case <-time.After(10 * time.Second):
		t.Fatal("connection did not end after TIME-WAIT")
	}
	if err := tc.error(); err != nil {
		t.Fatalf("orderly close ended with %v", err)
	}
	p.s.mu.Lock()
	n := len(p.s.tcp)
	p.s.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d connections left in the table", n)
	}
}

func TestPassiveClose(t *testing.T) {
	p := newScriptPeer(t, Options{})
	sc := p.dial(bigWnd)
	tc := connOf(sc.c)
	sc.send(flagACK|flagPSH, bigWnd, []byte("bye"))
	sc.send(flagFIN|flagACK, bigWnd, nil)
	got, err := io.ReadAll(sc.c)
	if err != nil || string(got) != "bye" {
		t.Fatalf("ReadAll = %q, %v", got, err)
	}
	sc.c.Close()
	fin := p.expectFlags("our FIN", flagFIN)
	if fin.ack != sc.sndNxt {
		t.Fatalf("FIN acks %d, want %d", fin.ack, sc.sndNxt)
	}
	sc.ackTo(fin.seq+1, bigWnd) // LAST-ACK → CLOSED
	select {
	case <-tc.dead:
	case <-time.After(10 * time.Second):
		t.Fatal("connection did not end in LAST-ACK")
	}
}

func TestCloseWithUnreadDataResets(t *testing.T) {
	p := newScriptPeer(t, Options{})
	sc := p.dial(bigWnd)
	sc.send(flagACK|flagPSH, bigWnd, []byte("unread"))
	for {
		a := p.expect("ACK of data")
		if a.ack == sc.sndNxt {
			break
		}
	}
	sc.c.Close()
	if r := p.expectFlags("RST", flagRST); r.seq != sc.rcvNxt {
		t.Fatalf("RST seq %d, want %d", r.seq, sc.rcvNxt)
	}
}

func TestICMPUnreachableAbortsConnect(t *testing.T) {
	p := newScriptPeer(t, Options{})
	errc := make(chan error, 1)
	go func() {
		_, err := p.s.DialTCP(context.Background(), netip.AddrPortFrom(peerIP, p.port))
		errc <- err
	}()
	syn := p.expectFlags("SYN", flagSYN)
	// Quote our SYN's IP header and first 8 TCP bytes in a port unreachable.
	b := p.pool.Get()
	total := ipv4HeaderLen + 8 + ipv4HeaderLen + 8
	buf := b.Append(frames.HeaderLen + total)
	frames.Header{Dst: p.ourMAC, Src: p.mac, Type: frames.TypeIPv4}.Put(buf)
	ip := buf[frames.HeaderLen:]
	ours := ourAddr.Addr().As4()
	putIPv4(ip, total, 7, protoICMP, p.ip, ours)
	m := ip[ipv4HeaderLen:]
	clear(m[:8])
	m[0], m[1] = icmpUnreachable, 3
	putIPv4(m[8:], 60, 1, protoTCP, ours, p.ip)
	q := m[8+ipv4HeaderLen:]
	q[0], q[1], q[2], q[3] = byte(syn.srcPort>>8), byte(syn.srcPort), byte(p.port>>8), byte(p.port)
	q[4], q[5], q[6], q[7] = byte(syn.seq>>24), byte(syn.seq>>16), byte(syn.seq>>8), byte(syn.seq)
	cs := csum.Checksum(m)
	m[2], m[3] = byte(cs>>8), byte(cs)
	p.rx <- b
	select {
	case err := <-errc:
		if err == nil || !errors.Is(err, syscall.ECONNREFUSED) || !strings.Contains(err.Error(), "ICMP") {
			t.Fatalf("dial error %v, want connection refused naming ICMP", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("dial did not fail on ICMP port unreachable")
	}
}

func TestConnectRefused(t *testing.T) {
	p := newPair(t, gvisorlink.Config{}, Options{})
	_, err := p.s.DialContext(context.Background(), "tcp", "10.0.0.2:9")
	if err == nil || !strings.Contains(err.Error(), "connection refused") || !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial to a closed port: %v", err)
	}
}

func TestConnectTimeoutHonoursContext(t *testing.T) {
	p := newPair(t, gvisorlink.Config{}, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err := p.s.DialContext(ctx, "tcp", "10.0.0.77:80") // nobody answers ARP
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("dial: %v, want the context's deadline", err)
	}
	p.s.mu.Lock()
	n := len(p.s.tcp)
	p.s.mu.Unlock()
	for i := 0; n != 0 && i < 100; i++ {
		time.Sleep(10 * time.Millisecond)
		p.s.mu.Lock()
		n = len(p.s.tcp)
		p.s.mu.Unlock()
	}
	if n != 0 {
		t.Fatal("the abandoned connection stayed in the table")
	}
}

func TestConnectFailsWhenARPGoesUnanswered(t *testing.T) {
	for _, tc := range []struct {
		name, addr, hop string
	}{
		{"on-link host", "10.0.0.9:80", "10.0.0.9"},
		{"dead gateway", "192.0.2.1:443", "10.0.0.254"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newPair(t, gvisorlink.Config{}, Options{Frames: frames.Options{Cache: frames.CacheConfig{Retry: 50 * time.Millisecond}}})
			if err := p.s.Configure(Config{Addr: ourAddr, Gateway: netip.MustParseAddr("10.0.0.254")}); err != nil {
				t.Fatal(err)
			}
			// The context outlives the ARP tries by far: the error must
			// come from the resolution, not from the deadline.
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			_, err := p.s.DialContext(ctx, "tcp", tc.addr)
			if !errors.Is(err, syscall.EHOSTUNREACH) || !strings.Contains(err.Error(), "no ARP reply from "+tc.hop) {
				t.Fatalf("dial %s: %v, want host unreachable naming %s", tc.addr, err, tc.hop)
			}
			if st := p.s.Demux().Stats(); st.TXUnresolved == 0 {
				t.Fatalf("demux stats %+v: nothing counted as unresolved", st)
			}
		})
	}
}

func TestDeadlines(t *testing.T) {
	p := newPair(t, gvisorlink.Config{}, Options{SendBuffer: 64 << 10})
	ln := p.listen(t, 7)
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			accepted <- c
		}
	}()
	c, err := p.s.DialContext(context.Background(), "tcp", "10.0.0.2:7")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	peer := <-accepted
	defer peer.Close()

	c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	_, err = c.Read(make([]byte, 1))
	var ne net.Error
	if !errors.Is(err, os.ErrDeadlineExceeded) || !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("Read past the deadline: %v", err)
	}
	c.SetReadDeadline(time.Time{})
	peer.Write([]byte("x"))
	if n, err := c.Read(make([]byte, 1)); n != 1 || err != nil {
		t.Fatalf("Read after clearing the deadline: %d, %v", n, err)
	}
	c.SetReadDeadline(time.Now().Add(-time.Second))
	peer.Write([]byte("y"))
	time.Sleep(50 * time.Millisecond)
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read with a past deadline: %v", err)
	}
	c.SetReadDeadline(time.Time{})
	if b := make([]byte, 1); func() bool { n, _ := c.Read(b); return n != 1 || b[0] != 'y' }() {
		t.Fatal("data was lost by the timed-out Read")
	}

	// The peer does not read: our writes fill its window and our buffer.
	c.SetWriteDeadline(time.Now().Add(300 * time.Millisecond))
	n, err := c.Write(make([]byte, 64<<20))
	if !errors.Is(err, os.ErrDeadlineExceeded) || n >= 64<<20 {
		t.Fatalf("Write past the deadline: %d, %v", n, err)
	}
}

func TestReceiveWindowFills(t *testing.T) {
	// A small receive buffer and a reader that waits: our window closes,
	// then reading must reopen it.
	p := newPair(t, gvisorlink.Config{}, Options{RecvBuffer: 64 << 10})
	ln := p.listen(t, 7)
	const size = 4 << 20
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(i * 7)
	}
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		c.Write(data)
		c.Close()
	}()
	c, err := p.s.DialContext(context.Background(), "tcp", "10.0.0.2:7")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	time.Sleep(200 * time.Millisecond) // let the window shut
	got, err := io.ReadAll(c)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read %d bytes (%v), want %d intact", len(got), err, size)
	}
}

func TestAckEveryOtherSegmentAndWindow(t *testing.T) {
	p := newScriptPeer(t, Options{DelayedACK: 5 * time.Second})
	sc := p.dial(bigWnd)
	seg := bytes.Repeat([]byte{7}, 1000)
	start := sc.sndNxt
	for range 4 {
		sc.send(flagACK, bigWnd, seg)
	}
	for i, want := range []uint32{start + 2000, start + 4000} {
		a := p.expect("ACK")
		if a.ack != want {
			t.Fatalf("ACK %d acks %d, want %d (one ACK per two segments)", i, a.ack-start, want-start)
		}
		// The window is the free receive buffer, scaled by 2^7.
		if got, wantWnd := int(a.wnd)<<7, 4<<20-int(want-start); got > wantWnd || got < wantWnd-128 {
			t.Fatalf("window %d, want about %d", got, wantWnd)
		}
	}
	// A lone segment waits for the delayed-ACK timer: nothing yet.
	sc.send(flagACK, bigWnd, seg)
	select {
	case a := <-p.segs:
		t.Fatalf("a lone segment was ACKed at once (ack %d)", a.ack-start)
	case <-time.After(100 * time.Millisecond):
	}
	// Out-of-order data is ACKed at once, with a SACK block.
	sc.sndNxt += 1000
	sc.send(flagACK, bigWnd, seg)
	a := p.expect("duplicate ACK")
	if a.ack != start+5000 || a.nsack != 1 || a.sack[0] != (sackBlock{start + 6000, start + 7000}) {
		t.Fatalf("dup ACK: ack %d, SACK %v", a.ack-start, a.sack[:a.nsack])
	}
}

// TestLargeSegments: segments larger than our MSS (the NIC took them
// whole from the host) are read intact and each is ACKed at once, as the
// two or more full-sized segments it stands for would be.
func TestLargeSegments(t *testing.T) {
	p := newScriptPeer(t, Options{DelayedACK: 5 * time.Second})
	sc := p.dial(bigWnd)
	start := sc.sndNxt
	var data []byte
	for i := range 3 {
		seg := bytes.Repeat([]byte{byte('a' + i)}, 20000+i*1000)
		data = append(data, seg...)
		sc.send(flagACK, bigWnd, seg)
		if a := p.expect("ACK of a large segment"); a.ack != start+uint32(len(data)) {
			t.Fatalf("ACK %d acks %d, want %d", i, a.ack-start, len(data))
		}
	}
	got := make([]byte, len(data))
	if _, err := io.ReadFull(sc.c, got); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read %v, data intact %v", err, bytes.Equal(got, data))
	}
}

func TestTailLossProbe(t *testing.T) {
	p := newScriptPeer(t, Options{MinRTO: 10 * time.Second})
	sc := p.dial(bigWnd)
	data := bytes.Repeat([]byte("x"), 3*1448)
	if _, err := sc.c.Write(data); err != nil {
		t.Fatal(err)
	}
	var last segment
	for got := 0; got < len(data); got += len(last.payload) {
		last = p.expect("data")
	}
	// No ACK comes: the probe resends the last segment long before the
	// 10s retransmission timeout.
	probe := p.expect("tail loss probe")
	if probe.seq != last.seq || len(probe.payload) != len(last.payload) {
		t.Fatalf("probe seq %d len %d, want the last segment (seq %d len %d)", probe.seq, len(probe.payload), last.seq, len(last.payload))
	}
	if st := &connOf(sc.c).stats; st.tailProbes.Load() != 1 || st.rtoRetransmits.Load() != 0 {
		t.Fatalf("tail probes %d, RTO retransmissions %d", st.tailProbes.Load(), st.rtoRetransmits.Load())
	}
	sc.ackTo(last.seq+uint32(len(last.payload)), bigWnd)
}
