package frames

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"syscall"
	"time"
)

// ARPLen is the length of an ARP packet for IPv4 over Ethernet.
const ARPLen = 28

// ARP operations.
const (
	ARPRequest = 1
	ARPReply   = 2
)

// ARP is an ARP packet for IPv4 over Ethernet (RFC 826).
type ARP struct {
	Op        uint16
	SenderMAC MAC
	SenderIP  netip.Addr
	TargetMAC MAC
	TargetIP  netip.Addr
}

// ParseARP reads an ARP packet (the frame's payload). ok is false for
// truncated packets and for anything but Ethernet/IPv4 ARP.
func ParseARP(b []byte) (a ARP, ok bool) {
	if len(b) < ARPLen {
		return a, false
	}
	if binary.BigEndian.Uint16(b[0:2]) != 1 || binary.BigEndian.Uint16(b[2:4]) != TypeIPv4 || b[4] != 6 || b[5] != 4 {
		return a, false
	}
	a.Op = binary.BigEndian.Uint16(b[6:8])
	copy(a.SenderMAC[:], b[8:14])
	a.SenderIP = netip.AddrFrom4([4]byte(b[14:18]))
	copy(a.TargetMAC[:], b[18:24])
	a.TargetIP = netip.AddrFrom4([4]byte(b[24:28]))
	return a, true
}

// Put writes a into the first ARPLen bytes of b. Addresses that are not
// IPv4 are written as 0.0.0.0.
func (a ARP) Put(b []byte) {
	_ = b[ARPLen-1]
	binary.BigEndian.PutUint16(b[0:2], 1)
	binary.BigEndian.PutUint16(b[2:4], TypeIPv4)
	b[4], b[5] = 6, 4
	binary.BigEndian.PutUint16(b[6:8], a.Op)
	copy(b[8:14], a.SenderMAC[:])
	putIP4(b[14:18], a.SenderIP)
	copy(b[18:24], a.TargetMAC[:])
	putIP4(b[24:28], a.TargetIP)
}

func putIP4(b []byte, a netip.Addr) {
	if a.Is4() {
		v := a.As4()
		copy(b, v[:])
		return
	}
	clear(b[:4])
}

// CacheConfig tunes a Cache. Zero fields take the defaults in brackets.
type CacheConfig struct {
	TTL        time.Duration // how long a reply stays fresh [60s]
	Retry      time.Duration // interval between requests [1s]
	Tries      int           // requests before a resolution fails [3]
	MaxPending int           // packets queued per unresolved address [32]
	MaxEntries int           // addresses tracked [256]
}

// Cache maps IPv4 addresses to MACs, and holds the packets waiting for an
// address being resolved. It is owned by one goroutine (the demux) and takes
// the time as an argument, so tests drive its clock.
type Cache struct {
	cfg     CacheConfig
	entries map[netip.Addr]*cacheEntry
}

type cacheEntry struct {
	mac     MAC
	known   bool      // mac holds a reply's address
	expires time.Time // when known: when the reply goes stale
	tries   int       // requests sent since the last reply
	nextTry time.Time // earliest time for the next request
	pending [][]byte
}

// NewCache returns an empty cache.
func NewCache(cfg CacheConfig) *Cache {
	if cfg.TTL <= 0 {
		cfg.TTL = 60 * time.Second
	}
	if cfg.Retry <= 0 {
		cfg.Retry = time.Second
	}
	if cfg.Tries <= 0 {
		cfg.Tries = 3
	}
	if cfg.MaxPending <= 0 {
		cfg.MaxPending = 32
	}
	if cfg.MaxEntries <= 0 {
		cfg.MaxEntries = 256
	}
	return &Cache{cfg: cfg, entries: map[netip.Addr]*cacheEntry{}}
}

// Lookup returns the MAC for ip. A stale entry still answers (so a stream
// does not stall for a round trip each TTL), but request says a refresh
// should be sent now.
func (c *Cache) Lookup(ip netip.Addr, now time.Time) (mac MAC, ok, request bool) {
	e := c.entries[ip]
	if e == nil || !e.known {
		return mac, false, false
	}
	if now.Before(e.expires) {
		return e.mac, true, false
	}
	if !now.Before(e.nextTry) {
		if e.tries >= c.cfg.Tries {
			// Stale and unanswered: forget it, so packets queue and fail
			// instead of going to a MAC that has left.
			e.known = false
			return mac, false, false
		}
		e.tries++
		e.nextTry = now.Add(c.cfg.Retry)
		return e.mac, true, true
	}
	return e.mac, true, false
}

// Queue holds pkt until ip resolves. request says an ARP request should be
// sent now; dropped says pkt was not kept because the queue is full (the
// caller still owns it then).
func (c *Cache) Queue(ip netip.Addr, pkt []byte, now time.Time) (request, dropped bool) {
	e := c.entries[ip]
	if e == nil {
		if len(c.entries) >= c.cfg.MaxEntries {
			c.evict(now)
			if len(c.entries) >= c.cfg.MaxEntries {
				return false, true
			}
		}
		e = &cacheEntry{}
		c.entries[ip] = e
	}
	if len(e.pending) >= c.cfg.MaxPending {
		return false, true
	}
	e.pending = append(e.pending, pkt)
	if len(e.pending) == 1 && !now.Before(e.nextTry) {
		e.tries = 1
		e.nextTry = now.Add(c.cfg.Retry)
		return true, false
	}
	return false, false
}

// evict removes entries that are stale and have nothing pending.
func (c *Cache) evict(now time.Time) {
	for ip, e := range c.entries {
		if len(e.pending) == 0 && (!e.known || !now.Before(e.expires)) {
			delete(c.entries, ip)
		}
	}
}

// Update records that ip is at mac and returns the packets that were
// waiting for it. With create false an address not already in the cache is
// ignored (RFC 826: learn from requests only when they are for us).
func (c *Cache) Update(ip netip.Addr, mac MAC, now time.Time, create bool) (pending [][]byte) {
	e := c.entries[ip]
	if e == nil {
		if !create {
			return nil
		}
		if len(c.entries) >= c.cfg.MaxEntries {
			c.evict(now)
			if len(c.entries) >= c.cfg.MaxEntries {
				return nil
			}
		}
		e = &cacheEntry{}
		c.entries[ip] = e
	}
	e.mac, e.known = mac, true
	e.expires = now.Add(c.cfg.TTL)
	e.tries, e.nextTry = 0, time.Time{}
	pending, e.pending = e.pending, nil
	return pending
}

// Unresolved is an address that did not answer ARP after the configured
// tries, with the packets that were waiting for it.
type Unresolved struct {
	Addr    netip.Addr
	Packets [][]byte
}

// ResolveError says a next hop did not answer ARP. It matches
// syscall.EHOSTUNREACH under errors.Is, as a kernel's failed neighbour
// resolution does.
type ResolveError struct {
	Addr netip.Addr // the next hop asked for
}

func (e *ResolveError) Error() string {
	return fmt.Sprintf("no ARP reply from %v (host unreachable)", e.Addr)
}

// Unwrap makes errors.Is(err, syscall.EHOSTUNREACH) hold.
func (e *ResolveError) Unwrap() error { return syscall.EHOSTUNREACH }

// Tick advances pending resolutions: it returns the addresses to send a
// request for now, the addresses that gave up with the packets that waited
// for them (the caller owns those), and when Tick next has work (zero if
// nothing is pending).
func (c *Cache) Tick(now time.Time) (requests []netip.Addr, failed []Unresolved, next time.Time) {
	for ip, e := range c.entries {
		if len(e.pending) == 0 {
			continue
		}
		if now.Before(e.nextTry) {
			if next.IsZero() || e.nextTry.Before(next) {
				next = e.nextTry
			}
			continue
		}
		if e.tries >= c.cfg.Tries {
			failed = append(failed, Unresolved{Addr: ip, Packets: e.pending})
			e.pending = nil
			e.tries = 0
			continue
		}
		e.tries++
		e.nextTry = now.Add(c.cfg.Retry)
		requests = append(requests, ip)
		if next.IsZero() || e.nextTry.Before(next) {
			next = e.nextTry
		}
	}
	return requests, failed, next
}

// Pending is the number of packets waiting for resolution.
func (c *Cache) Pending() int {
	n := 0
	for _, e := range c.entries {
		n += len(e.pending)
	}
	return n
}
