package stack

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/ociboot/ociboot/frames"
	"github.com/ociboot/ociboot/nic/csum"
)

const udpHeaderLen = 8

type datagram struct {
	data []byte
	from netip.AddrPort
}

// UDPConn is a UDP endpoint bound to a local port, as a net.PacketConn.
// Before Configure it still sends (from 0.0.0.0, broadcast for
// 255.255.255.255) and receives whatever the destination address, which is
// what a DHCP client needs.
type UDPConn struct {
	s         *Stack
	laddr     netip.AddrPort
	q         chan datagram
	closed    chan struct{}
	closeOnce sync.Once
	rd, wd    deadline
}

var _ net.PacketConn = (*UDPConn)(nil)

// ListenUDP binds a UDP endpoint; port 0 picks a free ephemeral port. A
// specified address only receives datagrams sent to it (or broadcast).
func (s *Stack) ListenUDP(laddr netip.AddrPort) (*UDPConn, error) {
	if laddr.Addr().IsValid() && !laddr.Addr().Is4() {
		return nil, &net.OpError{Op: "listen", Net: "udp", Addr: net.UDPAddrFromAddrPort(laddr), Err: syscall.EAFNOSUPPORT}
	}
	if !laddr.Addr().IsValid() {
		laddr = netip.AddrPortFrom(netip.IPv4Unspecified(), laddr.Port())
	}
	u := &UDPConn{s: s, q: make(chan datagram, s.opts.UDPQueue), closed: make(chan struct{})}
	s.mu.Lock()
	defer s.mu.Unlock()
	port := laddr.Port()
	if port == 0 {
		for range 64 {
			p := uint16(49152 + rand.IntN(65536-49152))
			if s.udp[p] == nil {
				port = p
				break
			}
		}
	}
	if port == 0 || s.udp[port] != nil {
		return nil, &net.OpError{Op: "listen", Net: "udp", Addr: net.UDPAddrFromAddrPort(laddr), Err: syscall.EADDRINUSE}
	}
	u.laddr = netip.AddrPortFrom(laddr.Addr(), port)
	s.udp[port] = u
	return u, nil
}

// udpInput validates a datagram and queues it for its endpoint.
func (s *Stack) udpInput(h *ipv4, p []byte) {
	if len(p) < udpHeaderLen {
		s.count(func(st *Stats) { st.Malformed++ })
		return
	}
	l := int(binary.BigEndian.Uint16(p[4:6]))
	if l < udpHeaderLen || l > len(p) {
		s.count(func(st *Stats) { st.Malformed++ })
		return
	}
	p = p[:l]
	if binary.BigEndian.Uint16(p[6:8]) != 0 && csum.Fold(csum.Sum(pseudoSum(h.src, h.dst, protoUDP, l), p)) != 0 {
		s.count(func(st *Stats) { st.Malformed++ })
		return
	}
	port := binary.BigEndian.Uint16(p[2:4])
	s.mu.Lock()
	u := s.udp[port]
	s.mu.Unlock()
	dst := netip.AddrFrom4(h.dst)
	if u == nil || (!u.laddr.Addr().IsUnspecified() && dst != u.laddr.Addr() && dst != frames.Broadcast) {
		s.count(func(st *Stats) { st.NoPort++ })
		return
	}
	d := datagram{data: append([]byte(nil), p[udpHeaderLen:]...), from: netip.AddrPortFrom(netip.AddrFrom4(h.src), binary.BigEndian.Uint16(p[0:2]))}
	select {
	case u.q <- d:
	default:
		s.count(func(st *Stats) { st.NoPort++ })
	}
}

func (u *UDPConn) opErr(op string, addr net.Addr, err error) error {
	return &net.OpError{Op: op, Net: "udp", Source: u.LocalAddr(), Addr: addr, Err: err}
}

// ReadFromUDPAddrPort reads one datagram; a longer one is truncated to p.
func (u *UDPConn) ReadFromUDPAddrPort(p []byte) (int, netip.AddrPort, error) {
	dl := u.rd.wait()
	if expired(dl) {
		return 0, netip.AddrPort{}, u.opErr("read", nil, os.ErrDeadlineExceeded)
	}
	select {
	case <-u.closed:
		return 0, netip.AddrPort{}, u.opErr("read", nil, net.ErrClosed)
	default:
	}
	select {
	case d := <-u.q:
		return copy(p, d.data), d.from, nil
	case <-u.closed:
		return 0, netip.AddrPort{}, u.opErr("read", nil, net.ErrClosed)
	case <-dl:
		return 0, netip.AddrPort{}, u.opErr("read", nil, os.ErrDeadlineExceeded)
	}
}

// ReadFrom implements net.PacketConn.
func (u *UDPConn) ReadFrom(p []byte) (int, net.Addr, error) {
	n, from, err := u.ReadFromUDPAddrPort(p)
	if err != nil {
		return 0, nil, err
	}
	return n, net.UDPAddrFromAddrPort(from), nil
}

// WriteToUDPAddrPort sends p to addr in one datagram (no fragmentation: it
// must fit the MTU).
func (u *UDPConn) WriteToUDPAddrPort(p []byte, addr netip.AddrPort) (int, error) {
	na := net.UDPAddrFromAddrPort(addr)
	select {
	case <-u.closed:
		return 0, u.opErr("write", na, net.ErrClosed)
	default:
	}
	dl := u.wd.wait()
	if expired(dl) {
		return 0, u.opErr("write", na, os.ErrDeadlineExceeded)
	}
	dst := addr.Addr().Unmap()
	if !dst.Is4() {
		return 0, u.opErr("write", na, syscall.EAFNOSUPPORT)
	}
	src, nextHop, mtu, err := u.s.route(dst)
	if err != nil {
		return 0, u.opErr("write", na, err)
	}
	if !u.laddr.Addr().IsUnspecified() {
		src = u.laddr.Addr()
	}
	total := ipv4HeaderLen + udpHeaderLen + len(p)
	if total > mtu {
		return 0, u.opErr("write", na, fmt.Errorf("%d-byte datagram exceeds MTU %d: %w", len(p), mtu, syscall.EMSGSIZE))
	}
	b := u.s.pool.Get()
	buf := b.Append(frames.HeaderLen + total)
	if buf == nil {
		b.Release()
		return 0, u.opErr("write", na, syscall.EMSGSIZE)
	}
	ip := buf[frames.HeaderLen:]
	s4, d4 := src.As4(), dst.As4()
	putIPv4(ip, total, uint16(u.s.ipID.Add(1)), protoUDP, s4, d4)
	h := ip[ipv4HeaderLen:]
	binary.BigEndian.PutUint16(h[0:2], u.laddr.Port())
	binary.BigEndian.PutUint16(h[2:4], addr.Port())
	binary.BigEndian.PutUint16(h[4:6], uint16(udpHeaderLen+len(p)))
	h[6], h[7] = 0, 0
	copy(h[udpHeaderLen:], p)
	cs := csum.Fold(csum.Sum(pseudoSum(s4, d4, protoUDP, udpHeaderLen+len(p)), h[:udpHeaderLen+len(p)]))
	if cs == 0 {
		cs = 0xffff // RFC 768: zero means no checksum
	}
	binary.BigEndian.PutUint16(h[6:8], cs)
	select {
	case u.s.demux.Out() <- frames.Outbound{Batch: b, NextHop: nextHop}:
		return len(p), nil
	case <-u.closed:
		b.Release()
		return 0, u.opErr("write", na, net.ErrClosed)
	case <-dl:
		b.Release()
		return 0, u.opErr("write", na, os.ErrDeadlineExceeded)
	}
}

// WriteTo implements net.PacketConn.
func (u *UDPConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	var ap netip.AddrPort
	switch a := addr.(type) {
	case *net.UDPAddr:
		ap = a.AddrPort()
	default:
		var err error
		if ap, err = netip.ParseAddrPort(addr.String()); err != nil {
			return 0, u.opErr("write", addr, fmt.Errorf("bad address: %w", err))
		}
	}
	return u.WriteToUDPAddrPort(p, ap)
}

// Close unbinds the endpoint.
func (u *UDPConn) Close() error {
	first := false
	u.closeOnce.Do(func() {
		first = true
		close(u.closed)
		u.s.mu.Lock()
		if u.s.udp[u.laddr.Port()] == u {
			delete(u.s.udp, u.laddr.Port())
		}
		u.s.mu.Unlock()
	})
	if !first {
		return u.opErr("close", nil, net.ErrClosed)
	}
	return nil
}

func (u *UDPConn) LocalAddr() net.Addr { return net.UDPAddrFromAddrPort(u.laddr) }

func (u *UDPConn) SetDeadline(t time.Time) error {
	u.rd.set(t)
	u.wd.set(t)
	return nil
}
func (u *UDPConn) SetReadDeadline(t time.Time) error  { u.rd.set(t); return nil }
func (u *UDPConn) SetWriteDeadline(t time.Time) error { u.wd.set(t); return nil }

// udpConnected is a UDP endpoint talking to one peer, as a net.Conn (DNS).
type udpConnected struct {
	*UDPConn
	raddr netip.AddrPort
}

// Read reads the next datagram from the peer, skipping any other sender.
func (c *udpConnected) Read(p []byte) (int, error) {
	for {
		n, from, err := c.ReadFromUDPAddrPort(p)
		if err != nil {
			return 0, err
		}
		if from == c.raddr {
			return n, nil
		}
	}
}

func (c *udpConnected) Write(p []byte) (int, error) { return c.WriteToUDPAddrPort(p, c.raddr) }
func (c *udpConnected) RemoteAddr() net.Addr        { return net.UDPAddrFromAddrPort(c.raddr) }
