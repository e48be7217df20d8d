package services

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/ociboot/ociboot/actors"
)

// DialFunc dials like net.Dialer.DialContext; the stack's DialContext is one.
type DialFunc func(ctx context.Context, network, address string) (net.Conn, error)

// Errors a lookup can wrap, for errors.Is.
var (
	ErrNoSuchHost    = errors.New("no such host")
	ErrServerFailure = errors.New("server failure")
	ErrNoAnswer      = errors.New("no answer")
)

// DNSError is a failed lookup: which name, what went wrong and, in Detail,
// who said so ("NXDOMAIN from 10.77.0.1").
type DNSError struct {
	Name      string
	Err       error
	Detail    string
	IsTimeout bool
}

func (e *DNSError) Error() string {
	s := "dns: " + e.Name + ": " + e.Err.Error()
	if e.Detail != "" {
		s += " (" + e.Detail + ")"
	}
	return s
}

func (e *DNSError) Unwrap() error { return e.Err }

// Timeout reports whether no server answered in time.
func (e *DNSError) Timeout() bool { return e.IsTimeout }

// Resolver is a stub resolver over the servers a lease names: A and AAAA
// queries with CNAME chains followed, a resolv.conf-style search list,
// retries across servers, TCP when an answer is truncated, and a small
// cache honouring TTLs. It is safe for concurrent use.
type Resolver struct {
	// Timeout is the wait for one answer from one server (2 s when zero);
	// Attempts the rounds over all servers (2); Ndots the dots a name needs
	// to be tried as is before the search list (1).
	Timeout  time.Duration
	Attempts int
	Ndots    int

	servers  []netip.Addr
	search   []string
	dial     DialFunc
	counters actors.Counters

	mu    sync.Mutex
	cache map[cacheKey]cacheEntry
}

const (
	maxCNAMEHops   = 8
	maxCacheSize   = 256
	maxPositiveTTL = time.Hour
	maxNegativeTTL = 5 * time.Minute
)

type cacheKey struct {
	name  string
	qtype dnsmessage.Type
}

type cacheEntry struct {
	addrs   []netip.Addr
	err     *DNSError
	expires time.Time
}

// NewResolver returns a resolver asking servers (port 53) through dial, with
// search as its search list.
func NewResolver(servers []netip.Addr, search []string, dial DialFunc) *Resolver {
	s := make([]string, 0, len(search))
	for _, d := range search {
		if d = strings.Trim(d, "."); d != "" {
			s = append(s, d)
		}
	}
	return &Resolver{
		servers: append([]netip.Addr(nil), servers...),
		search:  s,
		dial:    dial,
		cache:   map[cacheKey]cacheEntry{},
	}
}

// Counters counts queries sent and answers received, with their bytes.
func (r *Resolver) Counters() *actors.Counters { return &r.counters }

func (r *Resolver) timeout() time.Duration {
	if r.Timeout > 0 {
		return r.Timeout
	}
	return 2 * time.Second
}

func (r *Resolver) attempts() int {
	if r.Attempts > 0 {
		return r.Attempts
	}
	return 2
}

func (r *Resolver) ndots() int {
	if r.Ndots > 0 {
		return r.Ndots
	}
	return 1
}

// LookupNetIP returns the addresses of host for network "ip" (IPv4 first,
// then IPv6), "ip4" or "ip6". An IP literal is returned as is.
func (r *Resolver) LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	var types []dnsmessage.Type
	switch network {
	case "ip":
		types = []dnsmessage.Type{dnsmessage.TypeA, dnsmessage.TypeAAAA}
	case "ip4":
		types = []dnsmessage.Type{dnsmessage.TypeA}
	case "ip6":
		types = []dnsmessage.Type{dnsmessage.TypeAAAA}
	default:
		return nil, fmt.Errorf("dns: %s: network %q, want ip, ip4 or ip6", host, network)
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		ip = ip.Unmap()
		if (network == "ip4" && !ip.Is4()) || (network == "ip6" && !ip.Is6()) {
			return nil, &DNSError{Name: host, Err: fmt.Errorf("not an %s address", network)}
		}
		return []netip.Addr{ip}, nil
	}
	if !validDomain(strings.TrimSuffix(host, ".")) {
		return nil, &DNSError{Name: host, Err: errors.New("not a valid host name")}
	}
	names := r.candidates(host)
	var notFound, failed *DNSError
	for _, name := range names {
		addrs, err := r.lookupName(ctx, name, types)
		if err == nil {
			return addrs, nil
		}
		if err := ctxDone(ctx); err != nil {
			return nil, &DNSError{Name: host, Err: err, IsTimeout: errors.Is(err, context.DeadlineExceeded)}
		}
		var de *DNSError
		if !errors.As(err, &de) {
			return nil, err
		}
		if errors.Is(de, ErrNoSuchHost) {
			if notFound == nil {
				notFound = de
			}
		} else if failed == nil {
			failed = de
		}
	}
	// A server failure says more than a name not found under a search
	// domain; report the name as asked, and the names tried.
	pick := notFound
	if failed != nil {
		pick = failed
	}
	e := *pick
	e.Name = host
	if len(names) > 1 {
		e.Detail += "; tried " + strings.Join(names, ", ")
	}
	return nil, &e
}

// candidates lists the names to try for host, as resolv.conf does: as is
// first when it has at least ndots dots, else after the search domains.
func (r *Resolver) candidates(host string) []string {
	if strings.HasSuffix(host, ".") {
		return []string{strings.TrimSuffix(host, ".")}
	}
	asIs := strings.Count(host, ".") >= r.ndots()
	var out []string
	if asIs {
		out = append(out, host)
	}
	for _, s := range r.search {
		out = append(out, host+"."+s)
	}
	if !asIs {
		out = append(out, host)
	}
	return out
}

// lookupName resolves one fully qualified name for the given types, in
// parallel when there are two. It succeeds when any type has addresses.
func (r *Resolver) lookupName(ctx context.Context, name string, types []dnsmessage.Type) ([]netip.Addr, error) {
	if len(types) == 1 {
		return r.resolve(ctx, name, types[0])
	}
	type result struct {
		addrs []netip.Addr
		err   error
	}
	results := make([]result, len(types))
	var wg sync.WaitGroup
	for i, t := range types {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a, err := r.resolve(ctx, name, t)
			results[i] = result{a, err}
		}()
	}
	wg.Wait()
	var addrs []netip.Addr
	var err error
	for _, res := range results {
		addrs = append(addrs, res.addrs...)
		// Keep the first type's error unless a later one is more than a
		// missing record.
		if res.err != nil && (err == nil || (errors.Is(err, ErrNoSuchHost) && !errors.Is(res.err, ErrNoSuchHost))) {
			err = res.err
		}
	}
	if len(addrs) > 0 {
		return addrs, nil
	}
	return nil, err
}

// resolve answers one name and type, following CNAMEs, through the cache.
func (r *Resolver) resolve(ctx context.Context, name string, qtype dnsmessage.Type) ([]netip.Addr, error) {
	key := cacheKey{strings.ToLower(name), qtype}
	if addrs, err, ok := r.cached(key); ok {
		if err != nil {
			return nil, err
		}
		return addrs, nil
	}
	target := name
	minTTL := uint32(maxPositiveTTL / time.Second)
	for hops := 0; hops <= maxCNAMEHops; hops++ {
		msg, server, err := r.query(ctx, target, qtype)
		if err != nil {
			return nil, err
		}
		if msg.RCode == dnsmessage.RCodeNameError {
			e := &DNSError{Name: name, Err: ErrNoSuchHost, Detail: fmt.Sprintf("NXDOMAIN from %v", server)}
			r.store(key, nil, e, negativeTTL(msg))
			return nil, e
		}
		addrs, next, ttl, err := chase(msg, target, qtype)
		if err != nil {
			return nil, &DNSError{Name: name, Err: err, Detail: fmt.Sprintf("answer from %v", server)}
		}
		minTTL = min(minTTL, ttl)
		if len(addrs) > 0 {
			r.store(key, addrs, nil, time.Duration(minTTL)*time.Second)
			return addrs, nil
		}
		if strings.EqualFold(next, target) {
			e := &DNSError{Name: name, Err: ErrNoSuchHost, Detail: fmt.Sprintf("no %v record at %v", typeName(qtype), server)}
			r.store(key, nil, e, negativeTTL(msg))
			return nil, e
		}
		// The server gave a CNAME but not what it points to: ask for that.
		target = next
	}
	return nil, &DNSError{Name: name, Err: fmt.Errorf("CNAME chain longer than %d", maxCNAMEHops)}
}

func typeName(t dnsmessage.Type) string {
	return strings.TrimPrefix(t.String(), "Type")
}

// chase follows the CNAME chain from name inside one answer and returns the
// addresses of its end, the end's name, and the smallest TTL on the way.
func chase(msg *dnsmessage.Message, name string, qtype dnsmessage.Type) ([]netip.Addr, string, uint32, error) {
	ttl := uint32(maxPositiveTTL / time.Second)
	for hops := 0; ; hops++ {
		var next string
		for _, rr := range msg.Answers {
			if rr.Header.Type != dnsmessage.TypeCNAME || !sameName(rr.Header.Name, name) {
				continue
			}
			next = strings.TrimSuffix(rr.Body.(*dnsmessage.CNAMEResource).CNAME.String(), ".")
			ttl = min(ttl, rr.Header.TTL)
			break
		}
		if next == "" {
			break
		}
		if hops == maxCNAMEHops {
			return nil, "", 0, fmt.Errorf("CNAME chain longer than %d", maxCNAMEHops)
		}
		name = next
	}
	var addrs []netip.Addr
	for _, rr := range msg.Answers {
		if rr.Header.Type != qtype || rr.Header.Class != dnsmessage.ClassINET || !sameName(rr.Header.Name, name) {
			continue
		}
		switch b := rr.Body.(type) {
		case *dnsmessage.AResource:
			addrs = append(addrs, netip.AddrFrom4(b.A))
		case *dnsmessage.AAAAResource:
			addrs = append(addrs, netip.AddrFrom16(b.AAAA))
		default:
			continue
		}
		ttl = min(ttl, rr.Header.TTL)
	}
	return addrs, name, ttl, nil
}

func sameName(n dnsmessage.Name, name string) bool {
	return strings.EqualFold(strings.TrimSuffix(n.String(), "."), name)
}

// negativeTTL is how long a negative answer may be cached (RFC 2308): the
// SOA's TTL bounded by its minimum field; not at all without an SOA.
func negativeTTL(msg *dnsmessage.Message) time.Duration {
	for _, rr := range msg.Authorities {
		if soa, ok := rr.Body.(*dnsmessage.SOAResource); ok {
			return min(time.Duration(min(rr.Header.TTL, soa.MinTTL))*time.Second, maxNegativeTTL)
		}
	}
	return 0
}

func (r *Resolver) cached(key cacheKey) ([]netip.Addr, error, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.cache[key]
	if !ok {
		return nil, nil, false
	}
	if time.Now().After(e.expires) {
		delete(r.cache, key)
		return nil, nil, false
	}
	if e.err != nil {
		return nil, e.err, true
	}
	return e.addrs, nil, true
}

func (r *Resolver) store(key cacheKey, addrs []netip.Addr, err *DNSError, ttl time.Duration) {
	if ttl <= 0 {
		return
	}
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.cache) >= maxCacheSize {
		for k, e := range r.cache {
			if now.After(e.expires) {
				delete(r.cache, k)
			}
		}
		for k := range r.cache {
			if len(r.cache) < maxCacheSize {
				break
			}
			delete(r.cache, k)
		}
	}
	r.cache[key] = cacheEntry{addrs: addrs, err: err, expires: now.Add(min(ttl, maxPositiveTTL))}
}

// query asks the servers in turn, Attempts rounds, until one gives an
// answer or an NXDOMAIN. Other rcodes and silence move on to the next.
func (r *Resolver) query(ctx context.Context, name string, qtype dnsmessage.Type) (*dnsmessage.Message, netip.Addr, error) {
	if len(r.servers) == 0 {
		return nil, netip.Addr{}, &DNSError{Name: name, Err: errors.New("no DNS servers configured")}
	}
	qname, err := dnsmessage.NewName(name + ".")
	if err != nil {
		return nil, netip.Addr{}, &DNSError{Name: name, Err: err}
	}
	q := dnsmessage.Question{Name: qname, Type: qtype, Class: dnsmessage.ClassINET}
	var failures []string
	timeouts := 0
	for try := 0; try < r.attempts(); try++ {
		for _, s := range r.servers {
			msg, err := r.exchange(ctx, s, q)
			if err := ctxDone(ctx); err != nil {
				return nil, s, &DNSError{Name: name, Err: err, IsTimeout: errors.Is(err, context.DeadlineExceeded)}
			}
			if err != nil {
				var ne net.Error
				if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
					timeouts++
				} else {
					failures = append(failures, err.Error())
				}
				continue
			}
			switch msg.RCode {
			case dnsmessage.RCodeSuccess, dnsmessage.RCodeNameError:
				return msg, s, nil
			}
			failures = append(failures, fmt.Sprintf("%s from %v", rcodeName(msg.RCode), s))
		}
	}
	if len(failures) == 0 {
		return nil, netip.Addr{}, &DNSError{Name: name, Err: ErrNoAnswer, IsTimeout: true,
			Detail: fmt.Sprintf("%d servers (%v), %d tries each, %v per try", len(r.servers), joinAddrs(r.servers), r.attempts(), r.timeout())}
	}
	if timeouts > 0 {
		failures = append(failures, fmt.Sprintf("%d tries timed out", timeouts))
	}
	return nil, netip.Addr{}, &DNSError{Name: name, Err: ErrServerFailure, Detail: strings.Join(dedup(failures), ", ")}
}

func rcodeName(c dnsmessage.RCode) string {
	switch c {
	case dnsmessage.RCodeFormatError:
		return "FORMERR"
	case dnsmessage.RCodeServerFailure:
		return "SERVFAIL"
	case dnsmessage.RCodeNameError:
		return "NXDOMAIN"
	case dnsmessage.RCodeNotImplemented:
		return "NOTIMP"
	case dnsmessage.RCodeRefused:
		return "REFUSED"
	}
	return fmt.Sprintf("rcode %d", c)
}

func joinAddrs(as []netip.Addr) string {
	s := make([]string, len(as))
	for i, a := range as {
		s[i] = a.String()
	}
	return strings.Join(s, ", ")
}

func dedup(s []string) []string {
	var out []string
	for i, x := range s {
		if i == 0 || x != s[i-1] {
			out = append(out, x)
		}
	}
	return out
}

// exchange sends one query to server over UDP, and again over TCP when the
// answer comes back truncated. Replies that do not match the query (ID,
// question, QR bit) are dropped and the wait goes on: they may be forged or
// late answers to an earlier try.
func (r *Resolver) exchange(ctx context.Context, server netip.Addr, q dnsmessage.Question) (*dnsmessage.Message, error) {
	ctx, cancel := context.WithTimeout(ctx, r.timeout())
	defer cancel()
	id := uint16(rand.Uint32())
	query := dnsmessage.Message{
		Header:    dnsmessage.Header{ID: id, RecursionDesired: true},
		Questions: []dnsmessage.Question{q},
	}
	pkt, err := query.Pack()
	if err != nil {
		return nil, fmt.Errorf("dns: packing query for %v: %w", q.Name, err)
	}
	addr := netip.AddrPortFrom(server, 53).String()
	msg, err := r.roundTrip(ctx, "udp", addr, pkt, id, q)
	if err != nil || !msg.Truncated {
		return msg, err
	}
	return r.roundTrip(ctx, "tcp", addr, pkt, id, q)
}

func (r *Resolver) roundTrip(ctx context.Context, network, addr string, pkt []byte, id uint16, q dnsmessage.Question) (*dnsmessage.Message, error) {
	conn, err := r.dial(ctx, network, addr)
	if err != nil {
		return nil, fmt.Errorf("dns: dialing %s %s: %w", network, addr, err)
	}
	defer conn.Close()
	if d, ok := ctx.Deadline(); ok {
		conn.SetDeadline(d)
	}
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	if network == "tcp" {
		b := binary.BigEndian.AppendUint16(make([]byte, 0, 2+len(pkt)), uint16(len(pkt)))
		if _, err := conn.Write(append(b, pkt...)); err != nil {
			return nil, fmt.Errorf("dns: writing to tcp %s: %w", addr, err)
		}
		var l [2]byte
		if _, err := io.ReadFull(conn, l[:]); err != nil {
			return nil, fmt.Errorf("dns: reading from tcp %s: %w", addr, err)
		}
		buf := make([]byte, binary.BigEndian.Uint16(l[:]))
		if _, err := io.ReadFull(conn, buf); err != nil {
			return nil, fmt.Errorf("dns: reading from tcp %s: %w", addr, err)
		}
		r.counters.Add(2, len(pkt)+len(buf))
		msg, err := checkReply(buf, id, q)
		if err != nil {
			return nil, fmt.Errorf("dns: reply from tcp %s: %w", addr, err)
		}
		return msg, nil
	}

	if _, err := conn.Write(pkt); err != nil {
		return nil, fmt.Errorf("dns: writing to udp %s: %w", addr, err)
	}
	r.counters.Add(1, len(pkt))
	buf := make([]byte, 4096)
	for {
		n, err := conn.Read(buf)
		if err != nil {
			return nil, fmt.Errorf("dns: reading from udp %s: %w", addr, err)
		}
		r.counters.Add(1, n)
		if msg, err := checkReply(buf[:n], id, q); err == nil {
			return msg, nil
		}
	}
}

// checkReply parses b and checks that it answers the query id asked about q.
func checkReply(b []byte, id uint16, q dnsmessage.Question) (*dnsmessage.Message, error) {
	var msg dnsmessage.Message
	if err := msg.Unpack(b); err != nil {
		return nil, err
	}
	switch {
	case !msg.Response:
		return nil, errors.New("not a response")
	case msg.ID != id:
		return nil, fmt.Errorf("ID %d, want %d", msg.ID, id)
	case msg.OpCode != 0:
		return nil, fmt.Errorf("opcode %d", msg.OpCode)
	case len(msg.Questions) != 1:
		return nil, fmt.Errorf("%d questions echoed", len(msg.Questions))
	}
	eq := msg.Questions[0]
	if eq.Type != q.Type || eq.Class != q.Class || !strings.EqualFold(eq.Name.String(), q.Name.String()) {
		return nil, fmt.Errorf("answers %v %v, not the question asked", eq.Name, eq.Type)
	}
	return &msg, nil
}

// ctxDone is ctx.Err(), but also reports a deadline that has passed before
// the context's own timer has fired: a socket deadline set from it can
// expire first.
func ctxDone(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if d, ok := ctx.Deadline(); ok && !time.Now().Before(d) {
		return context.DeadlineExceeded
	}
	return nil
}
