package services

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ociboot/ociboot/actors"
)

// DHCPConfig configures the DHCPv4 client.
type DHCPConfig struct {
	// Conn is bound to 0.0.0.0:68; it sends to 255.255.255.255:67 as an
	// Ethernet broadcast from 0.0.0.0 and receives replies to port 68
	// whatever their destination address. Renewals are unicast to the
	// server. The client owns Conn while it runs but does not close it.
	Conn net.PacketConn
	MAC  net.HardwareAddr

	// Timeout bounds obtaining a lease (30 s when zero). Retransmissions
	// start after Retransmit (1 s) and double, with jitter, up to
	// MaxRetransmit (8 s): faster than RFC 2131's 4 s start, since a boot
	// waits on it.
	Timeout       time.Duration
	Retransmit    time.Duration
	MaxRetransmit time.Duration

	// Arch is option 93, the client system architecture (RFC 4578); zero
	// picks it from runtime.GOARCH (ClientArch).
	Arch uint16
	// VendorClass is option 60. Empty means "ociboot:Arch:000NN:UNDI:003016":
	// our own class, shaped like the PXE and HTTP boot ones so servers that
	// split it on colons cope, but not "PXEClient" or "HTTPClient", which
	// would make servers configured for firmware network boot answer with a
	// TFTP file or an EFI URL meant for someone else. Operators match it
	// with, e.g., dnsmasq's dhcp-vendorclass=set:ociboot,ociboot.
	VendorClass string
	// UUID, when 16 bytes long, is sent as option 97 (client machine
	// identifier, the SMBIOS UUID).
	UUID []byte
	// Hostname, when set, is sent as option 12.
	Hostname string
	// Broadcast asks servers to broadcast their replies (the BOOTP flag),
	// for networks whose relays cannot unicast to an unconfigured client.
	Broadcast bool

	// Logf prints console messages (nil: silent).
	Logf func(format string, args ...any)
	// OnBound, if set, is called with every lease bound, including renewed
	// ones, before Ready is closed for the first.
	OnBound func(Lease)
}

// DHCP is the DHCPv4 client actor (RFC 2131). It obtains a lease, becomes
// ready, then renews the lease at T1 while it runs. A static DHCP (from
// NewStaticDHCP) sends nothing and is ready at once.
type DHCP struct {
	cfg      DHCPConfig
	static   bool
	lease    atomic.Pointer[Lease]
	ready    chan struct{}
	once     sync.Once
	counters actors.Counters
	buf      []byte

	// setDeadline sets the read deadline unless Run's context has ended.
	setDeadline func(time.Time) bool
}

// Defaults for DHCPConfig's zero values.
const (
	DefaultDHCPTimeout       = 30 * time.Second
	DefaultDHCPRetransmit    = time.Second
	DefaultDHCPMaxRetransmit = 8 * time.Second
)

// NewDHCP returns a DHCP client over cfg.Conn.
func NewDHCP(cfg DHCPConfig) (*DHCP, error) {
	if cfg.Conn == nil {
		return nil, errors.New("dhcp: no connection")
	}
	if len(cfg.MAC) == 0 || len(cfg.MAC) > 16 {
		return nil, fmt.Errorf("dhcp: hardware address %q", cfg.MAC)
	}
	if cfg.UUID != nil && len(cfg.UUID) != 16 {
		return nil, fmt.Errorf("dhcp: UUID of %d bytes, want 16", len(cfg.UUID))
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultDHCPTimeout
	}
	if cfg.Retransmit <= 0 {
		cfg.Retransmit = DefaultDHCPRetransmit
	}
	if cfg.MaxRetransmit < cfg.Retransmit {
		cfg.MaxRetransmit = max(DefaultDHCPMaxRetransmit, cfg.Retransmit)
	}
	if cfg.Arch == 0 {
		cfg.Arch = ClientArch(runtime.GOARCH)
	}
	if cfg.VendorClass == "" {
		cfg.VendorClass = fmt.Sprintf("ociboot:Arch:%05d:UNDI:003016", cfg.Arch)
	}
	if cfg.Logf == nil {
		cfg.Logf = func(string, ...any) {}
	}
	return &DHCP{cfg: cfg, ready: make(chan struct{}), buf: make([]byte, 1500)}, nil
}

// NewStaticDHCP returns a DHCP actor that hands out the fixed lease l and
// is ready immediately. If l has routers but no routes, a default route via
// the first router is added.
func NewStaticDHCP(l Lease, logf func(format string, args ...any)) *DHCP {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	l.LeaseTime, l.T1, l.T2 = 0, 0, 0
	if l.Acquired.IsZero() {
		l.Acquired = time.Now()
	}
	l.fillRoutes()
	d := &DHCP{cfg: DHCPConfig{Logf: logf}, static: true, ready: make(chan struct{})}
	d.lease.Store(&l)
	close(d.ready)
	return d
}

// ClientArch is the option 93 value for a Go architecture: the UEFI (not
// HTTP boot) entries of IANA's processor architecture types.
func ClientArch(goarch string) uint16 {
	switch goarch {
	case "386":
		return 0x06
	case "amd64":
		return 0x07
	case "arm":
		return 0x0a
	case "arm64":
		return 0x0b
	case "riscv64":
		return 0x1b
	case "loong64":
		return 0x27
	}
	return 0x07
}

// Name implements actors.Actor.
func (d *DHCP) Name() string { return "dhcp" }

// Counters implements actors.Metered: DHCP messages and bytes, both ways.
func (d *DHCP) Counters() *actors.Counters { return &d.counters }

// Ready implements actors.Readier: closed once a lease is bound.
func (d *DHCP) Ready() <-chan struct{} { return d.ready }

// Lease returns the lease currently bound, if any.
func (d *DHCP) Lease() (Lease, bool) {
	if l := d.lease.Load(); l != nil {
		return *l, true
	}
	return Lease{}, false
}

// Run implements actors.Actor. It returns an error when no lease could be
// had within the timeout, and starts over when a lease runs out unrenewed.
func (d *DHCP) Run(ctx context.Context) error {
	if d.static {
		l, _ := d.Lease()
		d.cfg.Logf("dhcp: static configuration %v", &l)
		<-ctx.Done()
		return nil
	}
	stop := d.watch(ctx)
	defer stop()
	for {
		start := time.Now()
		l, err := d.acquire(ctx, start)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return err
		}
		d.bind(l, fmt.Sprintf("dhcp: lease %v, %.3fs", &l, time.Since(start).Seconds()))
		err = d.maintain(ctx, l)
		if ctx.Err() != nil {
			return nil
		}
		d.lease.Store(nil)
		d.cfg.Logf("dhcp: %v; starting over", err)
	}
}

// watch makes a pending read return when ctx is cancelled. The mutex keeps
// a later setDeadline from undoing the cancellation.
func (d *DHCP) watch(ctx context.Context) (stop func() bool) {
	var mu sync.Mutex
	cancelled := false
	d.setDeadline = func(t time.Time) bool {
		mu.Lock()
		defer mu.Unlock()
		if cancelled {
			return false
		}
		d.cfg.Conn.SetReadDeadline(t)
		return true
	}
	return context.AfterFunc(ctx, func() {
		mu.Lock()
		cancelled = true
		d.cfg.Conn.SetReadDeadline(time.Unix(1, 0))
		mu.Unlock()
	})
}

func (d *DHCP) bind(l Lease, msg string) {
	d.lease.Store(&l)
	d.cfg.Logf("%s", msg)
	if d.cfg.OnBound != nil {
		d.cfg.OnBound(l)
	}
	d.once.Do(func() { close(d.ready) })
}

// acquire runs discover, offer, request, ack until a lease is bound or the
// timeout passes.
func (d *DHCP) acquire(ctx context.Context, start time.Time) (Lease, error) {
	deadline := start.Add(d.cfg.Timeout)
	var offers, naks int
	var lastNak string
	bcast := &net.UDPAddr{IP: net.IPv4bcast, Port: 67}
	for time.Now().Before(deadline) {
		xid := rand.Uint32()
		offer, _, err := d.exchange(ctx, start, deadline, 0, bcast, func(secs uint16) []byte {
			return d.message(msgDiscover, xid, secs, netip.Addr{}, nil).marshal()
		}, func(m *dhcpMessage, from net.Addr) bool {
			if !d.mine(m, xid) || m.messageType() != msgOffer {
				return false
			}
			if _, _, err := leaseFrom(m, time.Now()); err != nil {
				d.cfg.Logf("dhcp: ignoring OFFER from %v: %v", from, err)
				return false
			}
			return true
		})
		if err != nil {
			return Lease{}, err
		}
		if offer == nil {
			break
		}
		offers++
		server := offer.serverID()
		yiaddr := offer.yiaddr
		var warnings []error
		var lease Lease
		// RFC 2131 §4.4.1: give up on this offer after a few requests and
		// go back to discovery.
		reply, sent, err := d.exchange(ctx, start, deadline, 4, bcast, func(secs uint16) []byte {
			extra := []dhcpOption{{optRequestedIP, yiaddr.AsSlice()}}
			if server.IsValid() {
				extra = append(extra, dhcpOption{optServerID, server.AsSlice()})
			}
			return d.message(msgRequest, xid, secs, netip.Addr{}, extra).marshal()
		}, func(m *dhcpMessage, from net.Addr) bool {
			if !d.mine(m, xid) || (server.IsValid() && m.serverID().IsValid() && m.serverID() != server) {
				return false
			}
			switch m.messageType() {
			case msgNak:
				return true
			case msgAck:
				var err error
				lease, warnings, err = leaseFrom(m, time.Now())
				if err != nil {
					d.cfg.Logf("dhcp: ignoring ACK from %v: %v", from, err)
					return false
				}
				return true
			}
			return false
		})
		if err != nil {
			return Lease{}, err
		}
		if reply == nil {
			continue
		}
		if reply.messageType() == msgNak {
			naks++
			lastNak = fmt.Sprintf("%v", reply.serverID())
			if msg := cString(reply.opts[optMessage]); msg != "" {
				lastNak += fmt.Sprintf(": %q", msg)
			}
			d.cfg.Logf("dhcp: NAK from %s; starting over", lastNak)
			// A pause, so a server that refuses every request is not
			// answered with a tight loop of discoveries.
			if !sleepUntil(ctx, time.Now().Add(d.cfg.Retransmit)) {
				return Lease{}, ctx.Err()
			}
			continue
		}
		for _, w := range warnings {
			d.cfg.Logf("dhcp: ignoring %v", w)
		}
		lease.Acquired = sent
		if !lease.Server.IsValid() {
			lease.Server = server
		}
		return lease, nil
	}
	switch {
	case offers == 0:
		return Lease{}, fmt.Errorf("dhcp: no answer from any DHCP server after %v on %v", d.cfg.Timeout, d.cfg.MAC)
	case naks > 0:
		return Lease{}, fmt.Errorf("dhcp: no lease after %v on %v: %d offers, %d NAKs (last from %s)", d.cfg.Timeout, d.cfg.MAC, offers, naks, lastNak)
	default:
		return Lease{}, fmt.Errorf("dhcp: no lease after %v on %v: %d offers, no ACK", d.cfg.Timeout, d.cfg.MAC, offers)
	}
}

// maintain renews l at T1 (unicast to its server) and rebinds at T2
// (broadcast) until a new lease is bound, which it then maintains in turn.
// It returns when ctx is done or the lease ends.
func (d *DHCP) maintain(ctx context.Context, l Lease) error {
	for {
		if l.LeaseTime == 0 {
			<-ctx.Done()
			return nil
		}
		t1, t2, end := l.Acquired.Add(l.T1), l.Acquired.Add(l.T2), l.Acquired.Add(l.LeaseTime)
		if !sleepUntil(ctx, t1) {
			return nil
		}
		var next *Lease
		for _, phase := range []struct {
			name  string
			until time.Time
			to    netip.Addr
		}{{"renewing", t2, l.Server}, {"rebinding", end, netip.AddrFrom4([4]byte{255, 255, 255, 255})}} {
			if !phase.to.IsValid() || time.Now().After(phase.until) {
				continue
			}
			xid := rand.Uint32()
			var nl Lease
			to := &net.UDPAddr{IP: phase.to.AsSlice(), Port: 67}
			reply, sent, err := d.exchange(ctx, t1, phase.until, 0, to, func(secs uint16) []byte {
				return d.message(msgRequest, xid, secs, l.Addr.Addr(), nil).marshal()
			}, func(m *dhcpMessage, from net.Addr) bool {
				if !d.mine(m, xid) {
					return false
				}
				if m.messageType() == msgNak {
					return true
				}
				if m.messageType() != msgAck {
					return false
				}
				var err error
				nl, _, err = leaseFrom(m, time.Now())
				return err == nil
			})
			if err != nil || ctx.Err() != nil {
				return err
			}
			if reply == nil {
				continue
			}
			if reply.messageType() == msgNak {
				return fmt.Errorf("lease %v refused on %s (NAK from %v)", l.Addr, phase.name, reply.serverID())
			}
			nl.Acquired = sent
			next = &nl
			break
		}
		if next == nil {
			return fmt.Errorf("lease %v expired without renewal", l.Addr)
		}
		l = *next
		d.bind(l, fmt.Sprintf("dhcp: renewed %v", &l))
	}
}

// mine reports whether m is a reply to our transaction xid.
func (d *DHCP) mine(m *dhcpMessage, xid uint32) bool {
	return m.op == opReply && m.xid == xid && string(m.chaddr) == string(d.cfg.MAC)
}

// exchange sends the message build makes, retransmitting with exponential
// backoff and jitter, until accept takes a reply, deadline passes, or
// (when tries > 0) tries sends went unanswered. A nil message and nil error
// mean no answer. sent is when the last message went out; secs counts from
// began, when the client started acquiring or renewing (RFC 2131).
func (d *DHCP) exchange(ctx context.Context, began, deadline time.Time, tries int, to net.Addr,
	build func(secs uint16) []byte, accept func(*dhcpMessage, net.Addr) bool) (reply *dhcpMessage, sent time.Time, err error) {
	interval := d.cfg.Retransmit
	malformed := 0
	for try := 0; tries == 0 || try < tries; try++ {
		now := time.Now()
		if !now.Before(deadline) {
			return nil, sent, nil
		}
		secs := uint16(min(now.Sub(began)/time.Second, 0xffff))
		pkt := build(secs)
		if _, err := d.cfg.Conn.WriteTo(pkt, to); err != nil {
			return nil, sent, fmt.Errorf("dhcp: sending to %v: %w", to, err)
		}
		sent = now
		d.counters.Add(1, len(pkt))
		// Jitter of ±25% keeps a rack of machines booting together from
		// retransmitting in step.
		wait := interval + time.Duration(rand.Int64N(int64(interval)/2+1)) - interval/4
		until := now.Add(wait)
		if until.After(deadline) {
			until = deadline
		}
		for {
			m, from, bad, err := d.read(ctx, until)
			if err != nil {
				return nil, sent, err
			}
			if bad != nil {
				if malformed++; malformed <= 3 {
					d.cfg.Logf("dhcp: ignoring malformed reply from %v: %v", from, bad)
				}
				continue
			}
			if m == nil {
				break // retransmit
			}
			t := time.Now()
			ok := accept(m, from)
			d.counters.BusySince(t)
			if ok {
				return m, sent, nil
			}
		}
		interval = min(interval*2, d.cfg.MaxRetransmit)
	}
	return nil, sent, nil
}

// read returns the next message that arrives before until, or none when
// the time is up. bad says why a datagram that arrived did not parse.
func (d *DHCP) read(ctx context.Context, until time.Time) (m *dhcpMessage, from net.Addr, bad, err error) {
	if !d.setDeadline(until) {
		return nil, nil, nil, ctx.Err()
	}
	n, from, err := d.cfg.Conn.ReadFrom(d.buf)
	if err != nil {
		if ctx.Err() != nil {
			return nil, nil, nil, ctx.Err()
		}
		var ne net.Error
		if errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
			return nil, nil, nil, nil
		}
		return nil, nil, nil, fmt.Errorf("dhcp: receiving: %w", err)
	}
	d.counters.Add(1, n)
	m, bad = parseDHCP(d.buf[:n])
	return m, from, bad, nil
}

// message builds a client message of type typ. ciaddr is set when renewing.
func (d *DHCP) message(typ byte, xid uint32, secs uint16, ciaddr netip.Addr, extra []dhcpOption) *dhcpRequest {
	arch := []byte{byte(d.cfg.Arch >> 8), byte(d.cfg.Arch)}
	opts := []dhcpOption{
		{optMessageType, []byte{typ}},
		{optClientID, append([]byte{1}, d.cfg.MAC...)},
		{optMaxMessageSize, []byte{1500 >> 8, 1500 & 0xff}},
		{optParamRequest, []byte{optSubnetMask, optRouter, optDNS, optDomainName, optMTU,
			optLeaseTime, optServerID, optT1, optT2, optTFTPServerName, optBootFileName,
			optDomainSearch, optClasslessRoutes}},
		{optVendorClass, []byte(d.cfg.VendorClass)},
		{optClientArch, arch},
		// UNDI 3.16, as PXE and HTTP boot clients send it: some servers only
		// treat a client as a network-boot client when it is present.
		{optClientNDI, []byte{1, 3, 16}},
	}
	if len(d.cfg.UUID) == 16 {
		opts = append(opts, dhcpOption{optClientUUID, append([]byte{0}, d.cfg.UUID...)})
	}
	if d.cfg.Hostname != "" {
		opts = append(opts, dhcpOption{optHostname, []byte(d.cfg.Hostname)})
	}
	opts = append(opts, extra...)
	return &dhcpRequest{xid: xid, secs: secs, broadcast: d.cfg.Broadcast, ciaddr: ciaddr, mac: d.cfg.MAC, opts: opts}
}

// sleepUntil waits until t; false means ctx ended first.
func sleepUntil(ctx context.Context, t time.Time) bool {
	timer := time.NewTimer(time.Until(t))
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-ctx.Done():
		return false
	}
}
