package services

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"net/netip"
	"strings"
	"time"
)

// BOOTP/DHCP wire constants (RFC 2131, RFC 2132).
const (
	dhcpHeaderLen = 236 // fixed fields up to and including file
	dhcpMinLen    = dhcpHeaderLen + 4
	bootpMinLen   = 300 // some servers and relays drop shorter requests

	opRequest = 1
	opReply   = 2

	flagBroadcast = 0x8000
)

var magicCookie = [4]byte{99, 130, 83, 99}

// DHCP message types (option 53).
const (
	msgDiscover = 1
	msgOffer    = 2
	msgRequest  = 3
	msgAck      = 5
	msgNak      = 6
)

// Option codes used here.
const (
	optPad             = 0
	optSubnetMask      = 1
	optRouter          = 3
	optDNS             = 6
	optHostname        = 12
	optDomainName      = 15
	optMTU             = 26
	optRequestedIP     = 50
	optLeaseTime       = 51
	optOverload        = 52
	optMessageType     = 53
	optServerID        = 54
	optParamRequest    = 55
	optMessage         = 56
	optMaxMessageSize  = 57
	optT1              = 58
	optT2              = 59
	optVendorClass     = 60
	optClientID        = 61
	optTFTPServerName  = 66
	optBootFileName    = 67
	optClientArch      = 93
	optClientNDI       = 94
	optClientUUID      = 97
	optDomainSearch    = 119
	optClasslessRoutes = 121
	optEnd             = 255
)

// dhcpMessage is a decoded BOOTP/DHCP message. Options that occur several
// times are concatenated (RFC 3396), in the order options field, file, sname.
type dhcpMessage struct {
	op     byte
	xid    uint32
	secs   uint16
	flags  uint16
	ciaddr netip.Addr
	yiaddr netip.Addr
	siaddr netip.Addr
	giaddr netip.Addr
	chaddr []byte
	sname  string // empty when the field carries options (option 52)
	file   string
	opts   map[byte][]byte
}

// parseDHCP decodes a message. It never panics, whatever b holds.
func parseDHCP(b []byte) (*dhcpMessage, error) {
	if len(b) < dhcpMinLen {
		return nil, fmt.Errorf("message of %d bytes, shorter than %d", len(b), dhcpMinLen)
	}
	if [4]byte(b[dhcpHeaderLen:dhcpMinLen]) != magicCookie {
		return nil, errors.New("no magic cookie (a BOOTP message?)")
	}
	hlen := int(b[2])
	if hlen > 16 {
		return nil, fmt.Errorf("hardware address length %d", hlen)
	}
	m := &dhcpMessage{
		op:     b[0],
		xid:    binary.BigEndian.Uint32(b[4:]),
		secs:   binary.BigEndian.Uint16(b[8:]),
		flags:  binary.BigEndian.Uint16(b[10:]),
		ciaddr: netip.AddrFrom4([4]byte(b[12:16])),
		yiaddr: netip.AddrFrom4([4]byte(b[16:20])),
		siaddr: netip.AddrFrom4([4]byte(b[20:24])),
		giaddr: netip.AddrFrom4([4]byte(b[24:28])),
		chaddr: append([]byte(nil), b[28:28+hlen]...),
		opts:   map[byte][]byte{},
	}
	if err := parseOptions(b[dhcpMinLen:], m.opts, "options"); err != nil {
		return nil, err
	}
	overload := byte(0)
	if v, ok := m.opts[optOverload]; ok {
		if len(v) != 1 || v[0] < 1 || v[0] > 3 {
			return nil, fmt.Errorf("option overload (52) value %x", v)
		}
		overload = v[0]
	}
	sname, file := b[44:108], b[108:236]
	if overload&1 != 0 {
		if err := parseOptions(file, m.opts, "file field"); err != nil {
			return nil, err
		}
	} else {
		m.file = cString(file)
	}
	if overload&2 != 0 {
		if err := parseOptions(sname, m.opts, "sname field"); err != nil {
			return nil, err
		}
	} else {
		m.sname = cString(sname)
	}
	return m, nil
}

// parseOptions appends the options in b to opts. A missing end option is
// tolerated; an option running past the end of b is not.
func parseOptions(b []byte, opts map[byte][]byte, where string) error {
	for i := 0; i < len(b); {
		code := b[i]
		switch code {
		case optPad:
			i++
			continue
		case optEnd:
			return nil
		}
		if i+1 >= len(b) {
			return fmt.Errorf("option %d in %s has no length", code, where)
		}
		n := int(b[i+1])
		if i+2+n > len(b) {
			return fmt.Errorf("option %d in %s: length %d runs past the end", code, where, n)
		}
		// Copy: the caller's buffer is recycled.
		opts[code] = append(opts[code], b[i+2:i+2+n]...)
		i += 2 + n
	}
	return nil
}

// cString is a NUL-terminated field as a string.
func cString(b []byte) string {
	for i, c := range b {
		if c == 0 {
			return string(b[:i])
		}
	}
	return string(b)
}

// messageType is option 53, or 0 when absent or malformed.
func (m *dhcpMessage) messageType() byte {
	if v := m.opts[optMessageType]; len(v) == 1 {
		return v[0]
	}
	return 0
}

// serverID is option 54, if present and well formed.
func (m *dhcpMessage) serverID() netip.Addr {
	a, _ := oneAddr(m.opts[optServerID])
	return a
}

func oneAddr(v []byte) (netip.Addr, bool) {
	if len(v) != 4 {
		return netip.Addr{}, false
	}
	return netip.AddrFrom4([4]byte(v)), true
}

func addrList(code byte, v []byte) ([]netip.Addr, error) {
	if len(v) == 0 || len(v)%4 != 0 {
		return nil, fmt.Errorf("option %d: length %d is not a multiple of 4", code, len(v))
	}
	out := make([]netip.Addr, 0, len(v)/4)
	for i := 0; i < len(v); i += 4 {
		out = append(out, netip.AddrFrom4([4]byte(v[i:i+4])))
	}
	return out, nil
}

func seconds(code byte, v []byte) (time.Duration, error) {
	if len(v) != 4 {
		return 0, fmt.Errorf("option %d: length %d, want 4", code, len(v))
	}
	return time.Duration(binary.BigEndian.Uint32(v)) * time.Second, nil
}

const infiniteLease = 0xffffffff

// leaseFrom turns an ACK (or an OFFER) into a Lease. Problems with options
// the lease can do without are returned as warnings and the option is
// dropped; problems with the address, mask or lease time are errors.
func leaseFrom(m *dhcpMessage, acquired time.Time) (l Lease, warnings []error, err error) {
	if !usableAddr(m.yiaddr) {
		return l, nil, fmt.Errorf("offered address %v is not a unicast address", m.yiaddr)
	}
	bitsLen := classfulBits(m.yiaddr)
	if v, ok := m.opts[optSubnetMask]; ok {
		if bitsLen, err = maskBits(v); err != nil {
			return l, nil, err
		}
	}
	l.Addr = netip.PrefixFrom(m.yiaddr, bitsLen)
	l.Server = m.serverID()
	l.Acquired = acquired
	l.NextServer = m.siaddr
	l.ServerName, l.BootFile = m.sname, m.file
	warn := func(err error) { warnings = append(warnings, err) }

	if v, ok := m.opts[optLeaseTime]; ok {
		if len(v) != 4 {
			return l, nil, fmt.Errorf("lease time (51): length %d, want 4", len(v))
		}
		if s := binary.BigEndian.Uint32(v); s != infiniteLease {
			if s == 0 {
				return l, nil, errors.New("lease time of 0 seconds")
			}
			l.LeaseTime = time.Duration(s) * time.Second
		}
	} else if m.messageType() == msgAck {
		return l, nil, errors.New("ACK without a lease time (51)")
	}
	if l.LeaseTime != 0 {
		// RFC 2131 §4.4.5 defaults; a server's own values must be ordered.
		l.T1, l.T2 = l.LeaseTime/2, l.LeaseTime*7/8
		if v, ok := m.opts[optT1]; ok {
			if d, err := seconds(optT1, v); err != nil {
				warn(err)
			} else if d < l.LeaseTime {
				l.T1 = d
			}
		}
		if v, ok := m.opts[optT2]; ok {
			if d, err := seconds(optT2, v); err != nil {
				warn(err)
			} else if d < l.LeaseTime {
				l.T2 = d
			}
		}
		if l.T1 > l.T2 {
			l.T1 = l.T2
		}
	}

	if v, ok := m.opts[optRouter]; ok {
		if l.Routers, err = addrList(optRouter, v); err != nil {
			warn(err)
		}
	}
	if v, ok := m.opts[optClasslessRoutes]; ok {
		if l.Routes, err = parseClasslessRoutes(v); err != nil {
			warn(err)
		}
	}
	if v, ok := m.opts[optDNS]; ok {
		if l.DNS, err = addrList(optDNS, v); err != nil {
			warn(err)
		}
	}
	if v, ok := m.opts[optDomainName]; ok {
		if d := strings.TrimSuffix(cString(v), "."); validDomain(d) {
			l.Domain = d
		} else {
			warn(fmt.Errorf("option 15: domain name %q", d))
		}
	}
	if v, ok := m.opts[optDomainSearch]; ok {
		if l.Search, err = parseSearchList(v); err != nil {
			warn(err)
		}
	}
	if v, ok := m.opts[optMTU]; ok {
		if len(v) != 2 || binary.BigEndian.Uint16(v) < 68 {
			warn(fmt.Errorf("option 26: interface MTU %x", v))
		} else {
			l.MTU = int(binary.BigEndian.Uint16(v))
		}
	}
	if v, ok := m.opts[optTFTPServerName]; ok {
		l.ServerName = cString(v)
	}
	if v, ok := m.opts[optBootFileName]; ok {
		l.BootFile = cString(v)
	}
	l.fillRoutes()
	return l, warnings, nil
}

// usableAddr reports whether a is an IPv4 address a host may take.
func usableAddr(a netip.Addr) bool {
	return a.Is4() && !a.IsUnspecified() && !a.IsMulticast() && !a.IsLoopback() &&
		a != netip.AddrFrom4([4]byte{255, 255, 255, 255})
}

// classfulBits is the prefix length to assume when a server sends no mask.
func classfulBits(a netip.Addr) int {
	switch b := a.As4()[0]; {
	case b < 128:
		return 8
	case b < 192:
		return 16
	default:
		return 24
	}
}

// maskBits turns a subnet mask into a prefix length, refusing masks with
// holes in them.
func maskBits(v []byte) (int, error) {
	if len(v) != 4 {
		return 0, fmt.Errorf("subnet mask (1): length %d, want 4", len(v))
	}
	m := binary.BigEndian.Uint32(v)
	n := bits.LeadingZeros32(^m)
	if m<<n != 0 || n == 0 {
		return 0, fmt.Errorf("subnet mask %d.%d.%d.%d is not usable", v[0], v[1], v[2], v[3])
	}
	return n, nil
}

// parseClasslessRoutes decodes option 121 (RFC 3442): a destination width,
// the destination's significant octets, then the router.
func parseClasslessRoutes(v []byte) ([]Route, error) {
	var out []Route
	for i := 0; i < len(v); {
		w := int(v[i])
		if w > 32 {
			return nil, fmt.Errorf("option 121: destination width %d", w)
		}
		n := (w + 7) / 8
		if i+1+n+4 > len(v) {
			return nil, errors.New("option 121: route truncated")
		}
		var d [4]byte
		copy(d[:], v[i+1:i+1+n])
		gw := netip.AddrFrom4([4]byte(v[i+1+n : i+1+n+4]))
		out = append(out, Route{Dest: netip.PrefixFrom(netip.AddrFrom4(d), w).Masked(), Gateway: gw})
		i += 1 + n + 4
	}
	if len(out) == 0 {
		return nil, errors.New("option 121: empty")
	}
	return out, nil
}

// parseSearchList decodes option 119 (RFC 3397): a sequence of DNS names in
// wire form whose compression pointers are offsets into the option's
// (concatenated) data.
func parseSearchList(v []byte) ([]string, error) {
	var out []string
	for off := 0; off < len(v); {
		name, next, err := readName(v, off)
		if err != nil {
			return nil, fmt.Errorf("option 119: %w", err)
		}
		if name != "" {
			out = append(out, name)
		}
		off = next
	}
	return out, nil
}

// readName reads one wire-form name at off and returns it without the
// trailing dot, and the offset just past it. Pointers must point backwards
// and are bounded in number, so hostile data cannot loop.
func readName(v []byte, off int) (string, int, error) {
	var name []byte
	next := -1
	for jumps := 0; ; {
		if off >= len(v) {
			return "", 0, errors.New("name truncated")
		}
		c := int(v[off])
		switch {
		case c == 0:
			if next < 0 {
				next = off + 1
			}
			return string(name), next, nil
		case c&0xC0 == 0xC0:
			if off+1 >= len(v) {
				return "", 0, errors.New("compression pointer truncated")
			}
			ptr := (c&0x3F)<<8 | int(v[off+1])
			if ptr >= off {
				return "", 0, fmt.Errorf("compression pointer %d does not point backwards", ptr)
			}
			if jumps++; jumps > 32 {
				return "", 0, errors.New("too many compression pointers")
			}
			if next < 0 {
				next = off + 2
			}
			off = ptr
		case c&0xC0 != 0:
			return "", 0, fmt.Errorf("label type %#x", c&0xC0)
		default:
			if off+1+c > len(v) {
				return "", 0, errors.New("label truncated")
			}
			label := v[off+1 : off+1+c]
			for _, b := range label {
				if b == '.' || b <= ' ' || b >= 0x7f {
					return "", 0, fmt.Errorf("label %q", label)
				}
			}
			if len(name) > 0 {
				name = append(name, '.')
			}
			name = append(name, label...)
			if len(name) > 253 {
				return "", 0, errors.New("name longer than 253 bytes")
			}
			off += 1 + c
		}
	}
}

// validDomain accepts a plausible DNS name in text form.
func validDomain(d string) bool {
	if d == "" || len(d) > 253 {
		return false
	}
	for _, label := range strings.Split(d, ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for i := 0; i < len(label); i++ {
			if c := label[i]; c <= ' ' || c >= 0x7f {
				return false
			}
		}
	}
	return true
}

// dhcpRequest is what the client sends; marshal lays it out on the wire.
type dhcpRequest struct {
	xid       uint32
	secs      uint16
	broadcast bool
	ciaddr    netip.Addr
	mac       []byte
	opts      []dhcpOption
}

type dhcpOption struct {
	code byte
	data []byte
}

func (r *dhcpRequest) marshal() []byte {
	b := make([]byte, dhcpMinLen, 512)
	b[0], b[1], b[2] = opRequest, 1, byte(len(r.mac)) // htype 1: Ethernet
	binary.BigEndian.PutUint32(b[4:], r.xid)
	binary.BigEndian.PutUint16(b[8:], r.secs)
	if r.broadcast {
		binary.BigEndian.PutUint16(b[10:], flagBroadcast)
	}
	if r.ciaddr.Is4() {
		a := r.ciaddr.As4()
		copy(b[12:16], a[:])
	}
	copy(b[28:44], r.mac)
	copy(b[dhcpHeaderLen:], magicCookie[:])
	for _, o := range r.opts {
		b = appendOption(b, o.code, o.data)
	}
	b = append(b, optEnd)
	for len(b) < bootpMinLen {
		b = append(b, optPad)
	}
	return b
}

// appendOption appends one option, split into several instances when longer
// than 255 bytes (RFC 3396).
func appendOption(b []byte, code byte, data []byte) []byte {
	for {
		n := min(len(data), 255)
		b = append(b, code, byte(n))
		b = append(b, data[:n]...)
		data = data[n:]
		if len(data) == 0 {
			return b
		}
	}
}
