package stack

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"syscall"

	"github.com/ociboot/ociboot/frames"
	"github.com/ociboot/ociboot/nic/csum"
)

// ICMP types handled.
const (
	icmpEchoReply   = 0
	icmpUnreachable = 3
	icmpEcho        = 8
)

// icmpInput answers echo requests and passes destination-unreachable
// errors to the TCP connection they concern.
func (s *Stack) icmpInput(h *ipv4, p []byte) {
	if len(p) < 8 || csum.Checksum(p) != 0 {
		s.count(func(st *Stats) { st.Malformed++ })
		return
	}
	switch p[0] {
	case icmpEcho:
		if netip.AddrFrom4(h.dst) == frames.Broadcast {
			return // no answers to broadcast pings (RFC 1122 3.2.2.6 allows silence)
		}
		s.echoReply(h, p)
	case icmpUnreachable:
		s.unreachable(h, p)
	}
}

func (s *Stack) echoReply(h *ipv4, p []byte) {
	_, nextHop, mtu, err := s.route(netip.AddrFrom4(h.src))
	if err != nil || ipv4HeaderLen+len(p) > mtu {
		return
	}
	b := s.pool.Get()
	buf := b.Append(frames.HeaderLen + ipv4HeaderLen + len(p))
	if buf == nil {
		b.Release()
		return
	}
	ip := buf[frames.HeaderLen:]
	putIPv4(ip, ipv4HeaderLen+len(p), uint16(s.ipID.Add(1)), protoICMP, h.dst, h.src)
	m := ip[ipv4HeaderLen:]
	copy(m, p)
	m[0], m[1] = icmpEchoReply, 0
	m[2], m[3] = 0, 0
	binary.BigEndian.PutUint16(m[2:4], csum.Checksum(m))
	if s.sendNow(b, nextHop) {
		s.count(func(st *Stats) { st.EchoReplies++ })
	}
}

// unreachable maps an ICMP destination unreachable onto the TCP
// connection named by the quoted header (RFC 1122 3.2.2.1).
func (s *Stack) unreachable(h *ipv4, p []byte) {
	s.count(func(st *Stats) { st.Unreachables++ })
	q := p[8:]
	if len(q) < ipv4HeaderLen || q[0]>>4 != 4 {
		return
	}
	ihl := int(q[0]&0xf) * 4
	if ihl < ipv4HeaderLen || len(q) < ihl+8 || q[9] != protoTCP {
		return
	}
	t := q[ihl:]
	key := connKey{
		raddr: [4]byte(q[16:20]),
		rport: binary.BigEndian.Uint16(t[2:4]),
		lport: binary.BigEndian.Uint16(t[0:2]),
	}
	code := p[1]
	var errno syscall.Errno
	switch code {
	case 0, 6, 9, 11: // net unreachable/unknown/prohibited
		errno = syscall.ENETUNREACH
	case 2, 3: // protocol or port unreachable
		errno = syscall.ECONNREFUSED
	case 4: // fragmentation needed: we set DF and size to the MTU; ignore
		return
	default:
		errno = syscall.EHOSTUNREACH
	}
	s.connError(key, fmt.Errorf("%w (ICMP destination unreachable, code %d, from %v)", errno, code, netip.AddrFrom4(h.src)))
}
