package stack

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/ociboot/ociboot/actors"
	"github.com/ociboot/ociboot/frames"
)

// Options tunes a Stack. Zero fields take the defaults in brackets.
type Options struct {
	Logf       func(format string, args ...any)
	RecvBuffer int           // TCP receive buffer per connection [4 MiB]
	SendBuffer int           // TCP send buffer per connection [256 KiB]
	UDPQueue   int           // datagrams queued per UDP endpoint [64]
	MinRTO     time.Duration // floor of the retransmission timeout [200ms]
	DelayedACK time.Duration // delayed-ACK timer [40ms]
	TimeWait   time.Duration // TIME-WAIT length [2s: ports are random, the loader is short-lived]
	Frames     frames.Options
}

// Route sends packets for Dst through Via (an invalid or unspecified Via:
// Dst is on-link).
type Route struct {
	Dst netip.Prefix
	Via netip.Addr
}

// Config is the interface's IPv4 configuration (a DHCP lease or static).
type Config struct {
	Addr    netip.Prefix // our address and subnet
	Gateway netip.Addr   // default router; invalid: none
	Routes  []Route      // more specific routes (DHCP option 121)
	MTU     int          // 0: the link's
}

// Resolver turns names into addresses (services' DNS resolver).
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// Stats are the IP layer's drop counts.
type Stats struct {
	Malformed, Fragments, NotForUs, NoPort, ConnQueueFull uint64
	EchoReplies, Unreachables                             uint64
}

// Stack is one interface's IPv4 stack.
type Stack struct {
	link  frames.Link
	demux *frames.Demux
	pool  *actors.Pool
	opts  Options
	ip    *ipActor

	cfgp     atomic.Pointer[netConfig] // nil until Configure
	mu       sync.Mutex
	udp      map[uint16]*UDPConn
	tcp      map[connKey]*tcpConn
	resolver Resolver

	tcpCounters actors.Counters
	ipID        atomic.Uint32
	statsMu     sync.Mutex
	stats       Stats
}

// New returns a stack over link. Register Actors with the supervisor before
// using it.
func New(link frames.Link, opts Options) *Stack {
	if opts.Logf == nil {
		opts.Logf = func(string, ...any) {}
	}
	if opts.RecvBuffer <= 0 {
		opts.RecvBuffer = 4 << 20
	}
	if opts.SendBuffer <= 0 {
		opts.SendBuffer = 256 << 10
	}
	if opts.UDPQueue <= 0 {
		opts.UDPQueue = 64
	}
	if opts.MinRTO <= 0 {
		opts.MinRTO = 200 * time.Millisecond
	}
	if opts.DelayedACK <= 0 {
		opts.DelayedACK = 40 * time.Millisecond
	}
	if opts.TimeWait <= 0 {
		opts.TimeWait = 2 * time.Second
	}
	if opts.Frames.Logf == nil {
		opts.Frames.Logf = opts.Logf
	}
	s := &Stack{
		link: link,
		pool: link.Pool(),
		opts: opts,
		udp:  map[uint16]*UDPConn{},
		tcp:  map[connKey]*tcpConn{},
	}
	fopts := opts.Frames
	fopts.Unresolved = func(err *frames.ResolveError, pkts [][]byte) {
		s.unresolved(err, pkts)
		if opts.Frames.Unresolved != nil {
			opts.Frames.Unresolved(err, pkts)
		}
	}
	s.demux = frames.NewDemux(link, fopts)
	s.ip = &ipActor{s: s}
	return s
}

// Actors are the stack's long-lived actors, in start order: the frames
// demux, then the IP dispatcher. Stopping the dispatcher closes every
// connection and endpoint.
func (s *Stack) Actors() []actors.Actor { return []actors.Actor{s.demux, s.ip} }

// Demux is the frames-layer actor (for its ARP and drop statistics).
func (s *Stack) Demux() *frames.Demux { return s.demux }

// TCPCounters aggregates all TCP connection actors: segments and payload
// bytes in and out, busy time.
func (s *Stack) TCPCounters() *actors.Counters { return &s.tcpCounters }

// Stats returns a copy of the IP layer's counts.
func (s *Stack) Stats() Stats {
	s.statsMu.Lock()
	defer s.statsMu.Unlock()
	return s.stats
}

func (s *Stack) count(f func(*Stats)) {
	s.statsMu.Lock()
	f(&s.stats)
	s.statsMu.Unlock()
}

// SetResolver sets the resolver DialContext uses for names.
func (s *Stack) SetResolver(r Resolver) {
	s.mu.Lock()
	s.resolver = r
	s.mu.Unlock()
}

// Configure sets the interface address and routes, and announces the
// address with a gratuitous ARP.
func (s *Stack) Configure(c Config) error {
	if !c.Addr.Addr().Is4() {
		return fmt.Errorf("stack: configure: address %v is not IPv4", c.Addr)
	}
	if c.Gateway.IsValid() && !c.Gateway.Is4() {
		return fmt.Errorf("stack: configure: gateway %v is not IPv4", c.Gateway)
	}
	if c.MTU <= 0 || c.MTU > s.link.MTU() {
		c.MTU = s.link.MTU()
	}
	if c.MTU < 576 {
		return fmt.Errorf("stack: configure: MTU %d below the IPv4 minimum of 576", c.MTU)
	}
	c.Routes = append([]Route(nil), c.Routes...)
	nc := &netConfig{Config: c, addr: c.Addr.Addr().As4(), bcast: c.Addr.Addr().As4()}
	if c.Addr.Bits() < 31 {
		nc.bcast = lastAddr(c.Addr).As4()
	}
	s.cfgp.Store(nc)
	s.demux.SetAddr(c.Addr.Addr())
	return nil
}

// netConfig is a Config with what the receive path compares per packet.
type netConfig struct {
	Config
	addr, bcast [4]byte
}

// config returns the configuration and whether there is one.
func (s *Stack) config() (Config, bool) {
	if nc := s.cfgp.Load(); nc != nil {
		return nc.Config, true
	}
	return Config{MTU: s.link.MTU()}, false
}

// route picks the source address, next hop and MTU for dst.
func (s *Stack) route(dst netip.Addr) (src, nextHop netip.Addr, mtu int, err error) {
	cfg, up := s.config()
	src = netip.IPv4Unspecified()
	if up {
		src = cfg.Addr.Addr()
	}
	if dst == frames.Broadcast {
		return src, frames.Broadcast, cfg.MTU, nil
	}
	if !up {
		return src, nextHop, 0, fmt.Errorf("no address configured: %w", syscall.ENETUNREACH)
	}
	if !dst.Is4() {
		return src, nextHop, 0, fmt.Errorf("%v is not IPv4: %w", dst, syscall.ENETUNREACH)
	}
	subnet := cfg.Addr.Masked()
	if subnet.Contains(dst) {
		if dst == lastAddr(subnet) && subnet.Bits() < 31 {
			return src, frames.Broadcast, cfg.MTU, nil
		}
		return src, dst, cfg.MTU, nil
	}
	best := -1
	for _, r := range cfg.Routes {
		if r.Dst.Contains(dst) && r.Dst.Bits() > best {
			best = r.Dst.Bits()
			nextHop = r.Via
			if !nextHop.IsValid() || nextHop.IsUnspecified() {
				nextHop = dst
			}
		}
	}
	if best >= 0 {
		return src, nextHop, cfg.MTU, nil
	}
	if cfg.Gateway.IsValid() && !cfg.Gateway.IsUnspecified() {
		return src, cfg.Gateway, cfg.MTU, nil
	}
	return src, nextHop, 0, fmt.Errorf("no route to %v: %w", dst, syscall.ENETUNREACH)
}

// lastAddr is the subnet's broadcast address.
func lastAddr(p netip.Prefix) netip.Addr {
	a := p.Masked().Addr().As4()
	host := uint32(1)<<(32-p.Bits()) - 1
	v := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3]) | host
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// forUs reports whether a packet to dst is ours: our address, a broadcast,
// or (before an address is set) anything, for DHCP's sake.
func (s *Stack) forUs(dst [4]byte, proto uint8) bool {
	if dst == [4]byte{255, 255, 255, 255} {
		return true
	}
	nc := s.cfgp.Load()
	if nc == nil {
		return proto == protoUDP
	}
	return dst == nc.addr || dst == nc.bcast
}

// send hands a one-packet batch to the demux without blocking (the
// dispatcher must never wait on the demux, which may be waiting on it).
func (s *Stack) sendNow(b *actors.Batch, nextHop netip.Addr) bool {
	select {
	case s.demux.Out() <- frames.Outbound{Batch: b, NextHop: nextHop}:
		return true
	default:
		b.Release()
		return false
	}
}

// ipActor is the IP dispatcher: it validates each received IPv4 packet,
// answers ICMP, queues UDP datagrams and hands TCP segments to their
// connection actors, keeping a batch together when it is all for one
// connection (the bulk-transfer case).
type ipActor struct {
	s        *Stack
	counters actors.Counters
}

func (a *ipActor) Name() string               { return "ip" }
func (a *ipActor) Counters() *actors.Counters { return &a.counters }

func (a *ipActor) Run(ctx context.Context) error {
	defer a.s.shutdown(errStackStopped)
	up := a.s.demux.Up()
	for {
		select {
		case <-ctx.Done():
			return nil
		case b := <-up:
			start := time.Now()
			a.counters.SetQueue(len(up))
			a.counters.Add(b.Len(), b.Bytes())
			a.s.input(b)
			a.counters.BusySince(start)
		}
	}
}

// shutdown closes every connection and endpoint.
func (s *Stack) shutdown(err error) {
	s.mu.Lock()
	conns := make([]*tcpConn, 0, len(s.tcp))
	for _, c := range s.tcp {
		conns = append(conns, c)
	}
	eps := make([]*UDPConn, 0, len(s.udp))
	for _, u := range s.udp {
		eps = append(eps, u)
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.abortWith(err)
	}
	for _, u := range eps {
		u.Close()
	}
}

// input dispatches one batch of received IPv4 frames.
func (s *Stack) input(b *actors.Batch) {
	var primary *tcpConn
	var others map[*tcpConn]*actors.Batch
	var last *tcpConn
	n := 0
	for i, f := range b.Bufs {
		pkt := f[frames.HeaderLen:]
		h, payload, err := parseIPv4(pkt)
		if err != nil {
			if err == errFragment {
				s.count(func(st *Stats) { st.Fragments++ })
			} else {
				s.count(func(st *Stats) { st.Malformed++ })
			}
			continue
		}
		if !s.forUs(h.dst, h.proto) {
			s.count(func(st *Stats) { st.NotForUs++ })
			continue
		}
		switch h.proto {
		case protoICMP:
			s.icmpInput(&h, payload)
		case protoUDP:
			s.udpInput(&h, payload)
		case protoTCP:
			if len(payload) < tcpHeaderLen {
				s.count(func(st *Stats) { st.Malformed++ })
				continue
			}
			key := connKey{raddr: h.src, rport: uint16(payload[0])<<8 | uint16(payload[1]), lport: uint16(payload[2])<<8 | uint16(payload[3])}
			c := last
			if c == nil || c.key != key {
				s.mu.Lock()
				c = s.tcp[key]
				s.mu.Unlock()
			}
			if c == nil {
				s.noConn(&h, payload)
				continue
			}
			last = c
			if primary == nil {
				primary = c
			}
			if c == primary {
				b.Bufs[n], b.Bufs[i] = b.Bufs[i], b.Bufs[n]
				n++
				continue
			}
			// A second connection in the same batch: copy (rare).
			if others == nil {
				others = map[*tcpConn]*actors.Batch{}
			}
			ob := others[c]
			if ob == nil {
				ob = s.pool.Get()
				others[c] = ob
			}
			if buf := ob.Append(len(f)); buf != nil {
				copy(buf, f)
			}
		}
	}
	b.Bufs = b.Bufs[:n]
	if primary != nil && n > 0 {
		s.deliver(primary, b)
	} else {
		b.Release()
	}
	for c, ob := range others {
		s.deliver(c, ob)
	}
}

func (s *Stack) deliver(c *tcpConn, b *actors.Batch) {
	select {
	case c.in <- b:
	default:
		c.stats.dropped.Add(uint64(b.Len()))
		s.count(func(st *Stats) { st.ConnQueueFull++ })
		b.Release()
	}
}

// unresolved fails the connections whose packets waited for a next hop
// that never answered ARP: a connect then ends at once with a host
// unreachable error instead of retrying SYNs into silence.
func (s *Stack) unresolved(err *frames.ResolveError, pkts [][]byte) {
	var last connKey
	for _, p := range pkts {
		h, payload, perr := parseIPv4(p[frames.HeaderLen:])
		if perr != nil || h.proto != protoTCP || len(payload) < 4 {
			continue
		}
		key := connKey{
			raddr: h.dst,
			rport: binary.BigEndian.Uint16(payload[2:4]),
			lport: binary.BigEndian.Uint16(payload[0:2]),
		}
		if key != last {
			s.connError(key, err)
			last = key
		}
	}
}

// connError hands a hard network error (ICMP unreachable, failed ARP) to
// the connection it concerns, without blocking the caller's actor.
func (s *Stack) connError(key connKey, err error) {
	s.mu.Lock()
	c := s.tcp[key]
	s.mu.Unlock()
	if c == nil {
		return
	}
	select {
	case c.hardErr <- err:
	default: // one pending error is enough to act on
	}
}

// noConn answers a segment for no connection with a reset (RFC 9293
// 3.10.7.1), after checking it is a real segment.
func (s *Stack) noConn(h *ipv4, payload []byte) {
	seg, err := parseTCP(payload, h.src, h.dst)
	if err != nil {
		s.count(func(st *Stats) { st.Malformed++ })
		return
	}
	s.count(func(st *Stats) { st.NoPort++ })
	if seg.flags&flagRST != 0 || netip.AddrFrom4(h.dst) == frames.Broadcast {
		return
	}
	o := tcpOut{flags: flagRST}
	if seg.flags&flagACK != 0 {
		o.seq = seg.ack
	} else {
		o.flags |= flagACK
		o.ack = seg.seq + seg.seqLen()
	}
	_, nextHop, _, err := s.route(netip.AddrFrom4(h.src))
	if err != nil {
		return
	}
	b := s.pool.Get()
	buf := b.Append(frames.HeaderLen + ipv4HeaderLen + tcpHeaderLen)
	ip := buf[frames.HeaderLen:]
	putIPv4(ip, ipv4HeaderLen+tcpHeaderLen, uint16(s.ipID.Add(1)), protoTCP, h.dst, h.src)
	putTCP(ip[ipv4HeaderLen:], seg.dstPort, seg.srcPort, &o, 0, h.dst, h.src)
	s.sendNow(b, nextHop)
}

// registerConn adds c under a free ephemeral port.
func (s *Stack) registerConn(c *tcpConn) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range 64 {
		port := uint16(49152 + rand.IntN(65536-49152))
		key := c.key
		key.lport = port
		if _, busy := s.tcp[key]; busy {
			continue
		}
		c.key = key
		c.laddr = netip.AddrPortFrom(c.laddr.Addr(), port)
		s.tcp[key] = c
		return nil
	}
	return syscall.EADDRINUSE
}

func (s *Stack) removeConn(c *tcpConn) {
	s.mu.Lock()
	if s.tcp[c.key] == c {
		delete(s.tcp, c.key)
	}
	s.mu.Unlock()
}

// DialTCP connects to raddr. ctx bounds the handshake only.
func (s *Stack) DialTCP(ctx context.Context, raddr netip.AddrPort) (net.Conn, error) {
	opErr := func(err error) error {
		return &net.OpError{Op: "dial", Net: "tcp", Addr: net.TCPAddrFromAddrPort(raddr), Err: err}
	}
	if !raddr.Addr().Is4() || raddr.Addr().IsUnspecified() || raddr.Port() == 0 {
		return nil, opErr(fmt.Errorf("cannot connect to %v", raddr))
	}
	src, nextHop, mtu, err := s.route(raddr.Addr())
	if err != nil {
		return nil, opErr(err)
	}
	if nextHop == frames.Broadcast {
		return nil, opErr(fmt.Errorf("%v is a broadcast address", raddr.Addr()))
	}
	c := newTCPConn(s, src, 0, raddr, nextHop, mtu)
	if err := s.registerConn(c); err != nil {
		return nil, opErr(err)
	}
	go c.run()
	select {
	case <-c.established:
		return &TCPConn{c}, nil
	case <-c.dead:
		err := c.error()
		if err == nil {
			err = errStackStopped
		}
		return nil, opErr(err)
	case <-ctx.Done():
		c.abortWith(ctx.Err())
		return nil, opErr(ctx.Err())
	}
}

// DialContext connects to address on network "tcp"/"tcp4" (names through
// the Resolver, each address tried in order) or "udp"/"udp4" (a connected
// UDP conn).
func (s *Stack) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	host, portStr, err := net.SplitHostPort(address)
	if err != nil {
		return nil, &net.OpError{Op: "dial", Net: network, Err: err}
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		return nil, &net.OpError{Op: "dial", Net: network, Err: fmt.Errorf("bad port %q", portStr)}
	}
	var addrs []netip.Addr
	if a, err := netip.ParseAddr(host); err == nil {
		addrs = []netip.Addr{a.Unmap()}
	} else {
		s.mu.Lock()
		r := s.resolver
		s.mu.Unlock()
		if r == nil {
			return nil, &net.OpError{Op: "dial", Net: network, Err: &net.DNSError{Err: "no resolver configured", Name: host, IsNotFound: true}}
		}
		all, err := r.LookupNetIP(ctx, "ip4", host)
		if err != nil {
			return nil, &net.OpError{Op: "dial", Net: network, Err: err}
		}
		for _, a := range all {
			if a.Unmap().Is4() {
				addrs = append(addrs, a.Unmap())
			}
		}
		if len(addrs) == 0 {
			return nil, &net.OpError{Op: "dial", Net: network, Err: &net.DNSError{Err: "no IPv4 address", Name: host, IsNotFound: true}}
		}
	}
	switch network {
	case "tcp", "tcp4":
		var firstErr error
		for _, a := range addrs {
			c, err := s.DialTCP(ctx, netip.AddrPortFrom(a, uint16(port)))
			if err == nil {
				return c, nil
			}
			if firstErr == nil {
				firstErr = err
			}
			if ctx.Err() != nil {
				break
			}
		}
		return nil, firstErr
	case "udp", "udp4":
		u, err := s.ListenUDP(netip.AddrPortFrom(netip.IPv4Unspecified(), 0))
		if err != nil {
			return nil, &net.OpError{Op: "dial", Net: network, Err: err}
		}
		return &udpConnected{UDPConn: u, raddr: netip.AddrPortFrom(addrs[0], uint16(port))}, nil
	}
	return nil, &net.OpError{Op: "dial", Net: network, Err: net.UnknownNetworkError(network)}
}
