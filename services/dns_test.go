package services

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// dnsServer is a DNS server on 127.0.0.1 (UDP and TCP on one port) whose
// answers come from handle: a list of raw replies per query (none: silence).
type dnsServer struct {
	t   testing.TB
	udp net.PacketConn
	tcp net.Listener

	handle func(q dnsmessage.Message, tcp bool) [][]byte

	mu      sync.Mutex
	queries []string // "udp A registry.test."
}

func newDNSServer(t testing.TB, handle func(q dnsmessage.Message, tcp bool) [][]byte) *dnsServer {
	udp, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := udp.LocalAddr().(*net.UDPAddr).Port
	tcp, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		udp.Close()
		t.Fatal(err)
	}
	s := &dnsServer{t: t, udp: udp, tcp: tcp, handle: handle}
	t.Cleanup(func() { udp.Close(); tcp.Close() })
	go s.serveUDP()
	go s.serveTCP()
	return s
}

func (s *dnsServer) note(q dnsmessage.Message, proto string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(q.Questions) == 1 {
		s.queries = append(s.queries, fmt.Sprintf("%s %s %s", proto, typeName(q.Questions[0].Type), q.Questions[0].Name))
	}
}

func (s *dnsServer) seen() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.queries)
}

func (s *dnsServer) serveUDP() {
	buf := make([]byte, 512)
	for {
		n, from, err := s.udp.ReadFrom(buf)
		if err != nil {
			return
		}
		var q dnsmessage.Message
		if err := q.Unpack(buf[:n]); err != nil {
			s.t.Errorf("server: unparsable query: %v", err)
			continue
		}
		s.note(q, "udp")
		for _, r := range s.handle(q, false) {
			s.udp.WriteTo(r, from)
		}
	}
}

func (s *dnsServer) serveTCP() {
	for {
		c, err := s.tcp.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			var l [2]byte
			if _, err := io.ReadFull(c, l[:]); err != nil {
				return
			}
			b := make([]byte, binary.BigEndian.Uint16(l[:]))
			if _, err := io.ReadFull(c, b); err != nil {
				return
			}
			var q dnsmessage.Message
			if err := q.Unpack(b); err != nil {
				s.t.Errorf("server: unparsable TCP query: %v", err)
				return
			}
			s.note(q, "tcp")
			for _, r := range s.handle(q, true) {
				c.Write(binary.BigEndian.AppendUint16(nil, uint16(len(r))))
				c.Write(r)
			}
		}()
	}
}

// zone answers from a table of names; names absent are NXDOMAIN with an SOA.
type zone map[string][]dnsmessage.Resource

func rrA(name, addr string, ttl uint32) dnsmessage.Resource {
	return dnsmessage.Resource{
		Header: dnsmessage.ResourceHeader{Name: dnsmessage.MustNewName(name), Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET, TTL: ttl},
		Body:   &dnsmessage.AResource{A: netip.MustParseAddr(addr).As4()},
	}
}

func rrAAAA(name, addr string, ttl uint32) dnsmessage.Resource {
	return dnsmessage.Resource{
		Header: dnsmessage.ResourceHeader{Name: dnsmessage.MustNewName(name), Type: dnsmessage.TypeAAAA, Class: dnsmessage.ClassINET, TTL: ttl},
		Body:   &dnsmessage.AAAAResource{AAAA: netip.MustParseAddr(addr).As16()},
	}
}

func rrCNAME(name, target string, ttl uint32) dnsmessage.Resource {
	return dnsmessage.Resource{
		Header: dnsmessage.ResourceHeader{Name: dnsmessage.MustNewName(name), Type: dnsmessage.TypeCNAME, Class: dnsmessage.ClassINET, TTL: ttl},
		Body:   &dnsmessage.CNAMEResource{CNAME: dnsmessage.MustNewName(target)},
	}
}

func soa(ttl, minimum uint32) dnsmessage.Resource {
	return dnsmessage.Resource{
		Header: dnsmessage.ResourceHeader{Name: dnsmessage.MustNewName("test."), Type: dnsmessage.TypeSOA, Class: dnsmessage.ClassINET, TTL: ttl},
		Body: &dnsmessage.SOAResource{NS: dnsmessage.MustNewName("ns.test."), MBox: dnsmessage.MustNewName("root.test."),
			Serial: 1, Refresh: 60, Retry: 60, Expire: 600, MinTTL: minimum},
	}
}

// reply builds an answer to q.
func reply(t testing.TB, q dnsmessage.Message, rcode dnsmessage.RCode, answers []dnsmessage.Resource, authority ...dnsmessage.Resource) []byte {
	m := dnsmessage.Message{
		Header:      dnsmessage.Header{ID: q.ID, Response: true, RecursionDesired: q.RecursionDesired, RecursionAvailable: true, RCode: rcode},
		Questions:   q.Questions,
		Answers:     answers,
		Authorities: authority,
	}
	b, err := m.Pack()
	if err != nil {
		t.Fatalf("server: packing reply: %v", err)
	}
	return b
}

// serve answers from z: records whose owner and type match, with CNAMEs
// included (the chain is followed within the zone, as a recursive server
// does unless told otherwise).
func (z zone) serve(t testing.TB) func(q dnsmessage.Message, tcp bool) [][]byte {
	return func(q dnsmessage.Message, tcp bool) [][]byte {
		qq := q.Questions[0]
		name := strings.ToLower(qq.Name.String())
		var ans []dnsmessage.Resource
		for hops := 0; hops < 10; hops++ {
			rrs, ok := z[name]
			if !ok {
				if hops == 0 {
					return [][]byte{reply(t, q, dnsmessage.RCodeNameError, nil, soa(30, 10))}
				}
				break
			}
			next := ""
			for _, rr := range rrs {
				if rr.Header.Type == dnsmessage.TypeCNAME {
					next = rr.Body.(*dnsmessage.CNAMEResource).CNAME.String()
					ans = append(ans, rr)
				} else if rr.Header.Type == qq.Type {
					ans = append(ans, rr)
				}
			}
			if next == "" {
				break
			}
			name = next
		}
		if len(ans) == 0 {
			return [][]byte{reply(t, q, dnsmessage.RCodeSuccess, nil, soa(30, 10))}
		}
		return [][]byte{reply(t, q, dnsmessage.RCodeSuccess, ans)}
	}
}

// dialTo maps DNS server addresses (port 53) to the test servers.
func dialTo(servers map[string]*dnsServer) DialFunc {
	return func(ctx context.Context, network, address string) (net.Conn, error) {
		host, port, err := net.SplitHostPort(address)
		if err != nil || port != "53" {
			return nil, fmt.Errorf("test dial: unexpected address %q", address)
		}
		s, ok := servers[host]
		if !ok {
			return nil, fmt.Errorf("test dial: no server at %s", host)
		}
		var d net.Dialer
		switch network {
		case "udp":
			return d.DialContext(ctx, "udp", s.udp.LocalAddr().String())
		case "tcp":
			return d.DialContext(ctx, "tcp", s.tcp.Addr().String())
		}
		return nil, fmt.Errorf("test dial: network %q", network)
	}
}

var (
	ns1 = netip.MustParseAddr("192.0.2.1")
	ns2 = netip.MustParseAddr("192.0.2.2")
)

func lookup(t *testing.T, r *Resolver, network, host string) ([]netip.Addr, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return r.LookupNetIP(ctx, network, host)
}

func addrs(ss ...string) []netip.Addr {
	var out []netip.Addr
	for _, s := range ss {
		out = append(out, netip.MustParseAddr(s))
	}
	return out
}

var testZone = zone{
	"registry.test.":   {rrA("registry.test.", "10.77.0.1", 60), rrAAAA("registry.test.", "fd00::1", 60)},
	"multi.test.":      {rrA("multi.test.", "10.77.0.7", 60), rrA("multi.test.", "10.77.0.8", 60)},
	"www.test.":        {rrCNAME("www.test.", "cdn.test.", 60)},
	"cdn.test.":        {rrCNAME("cdn.test.", "edge.test.", 60)},
	"edge.test.":       {rrA("edge.test.", "10.77.0.9", 5)},
	"v4only.test.":     {rrA("v4only.test.", "10.77.0.10", 60)},
	"mirror.lab.test.": {rrA("mirror.lab.test.", "10.77.0.20", 60)},
}

func TestResolveA(t *testing.T) {
	s := newDNSServer(t, testZone.serve(t))
	r := NewResolver([]netip.Addr{ns1}, nil, dialTo(map[string]*dnsServer{"192.0.2.1": s}))
	got, err := lookup(t, r, "ip4", "registry.test")
	if err != nil || !slices.Equal(got, addrs("10.77.0.1")) {
		t.Fatalf("ip4 registry.test = %v, %v", got, err)
	}
	got, err = lookup(t, r, "ip4", "multi.test")
	if err != nil || !slices.Equal(got, addrs("10.77.0.7", "10.77.0.8")) {
		t.Fatalf("ip4 multi.test = %v, %v", got, err)
	}
	got, err = lookup(t, r, "ip", "registry.test")
	if err != nil || !slices.Equal(got, addrs("10.77.0.1", "fd00::1")) {
		t.Fatalf("ip registry.test = %v, %v (IPv4 first)", got, err)
	}
	got, err = lookup(t, r, "ip6", "registry.test")
	if err != nil || !slices.Equal(got, addrs("fd00::1")) {
		t.Fatalf("ip6 registry.test = %v, %v", got, err)
	}
	// "ip" succeeds on A alone when there is no AAAA.
	got, err = lookup(t, r, "ip", "v4only.test")
	if err != nil || !slices.Equal(got, addrs("10.77.0.10")) {
		t.Fatalf("ip v4only.test = %v, %v", got, err)
	}
	// Cached now: the same questions do not reach the server again.
	n := len(s.seen())
	lookup(t, r, "ip4", "registry.test")
	lookup(t, r, "ip", "REGISTRY.test")
	if m := len(s.seen()); m != n {
		t.Errorf("cached lookups sent %d queries", m-n)
	}
	if c := r.Counters().Snapshot("dns"); c.Messages == 0 || c.Bytes == 0 {
		t.Errorf("counters %+v", c)
	}
}

func TestResolveLiterals(t *testing.T) {
	r := NewResolver(nil, nil, func(context.Context, string, string) (net.Conn, error) {
		t.Error("a literal address caused a dial")
		return nil, errors.New("no")
	})
	for _, tc := range []struct{ network, host, want string }{
		{"ip", "10.1.2.3", "10.1.2.3"}, {"ip4", "10.1.2.3", "10.1.2.3"},
		{"ip", "fd00::5", "fd00::5"}, {"ip4", "::ffff:10.1.2.3", "10.1.2.3"},
		{"ip4", "fd00::5", ""}, {"ip6", "10.1.2.3", ""},
	} {
		got, err := lookup(t, r, tc.network, tc.host)
		if tc.want == "" {
			if err == nil {
				t.Errorf("%s %s = %v, want an error", tc.network, tc.host, got)
			}
			continue
		}
		if err != nil || !slices.Equal(got, addrs(tc.want)) {
			t.Errorf("%s %s = %v, %v", tc.network, tc.host, got, err)
		}
	}
	if _, err := lookup(t, r, "tcp", "a.test"); err == nil {
		t.Error("network tcp accepted")
	}
	if _, err := lookup(t, r, "ip", "bad..name"); err == nil {
		t.Error("bad..name accepted")
	}
}

func TestResolveCNAMEChain(t *testing.T) {
	s := newDNSServer(t, testZone.serve(t))
	r := NewResolver([]netip.Addr{ns1}, nil, dialTo(map[string]*dnsServer{"192.0.2.1": s}))
	got, err := lookup(t, r, "ip4", "www.test")
	if err != nil || !slices.Equal(got, addrs("10.77.0.9")) {
		t.Fatalf("www.test = %v, %v", got, err)
	}
	if q := s.seen(); len(q) != 1 {
		t.Errorf("queries %v, want one (the chain was in the answer)", q)
	}

	// A server that answers with the CNAME alone: the resolver asks for the
	// target itself.
	partial := newDNSServer(t, func(q dnsmessage.Message, tcp bool) [][]byte {
		switch q.Questions[0].Name.String() {
		case "alias.test.":
			return [][]byte{reply(t, q, dnsmessage.RCodeSuccess, []dnsmessage.Resource{rrCNAME("alias.test.", "real.test.", 60)})}
		case "real.test.":
			return [][]byte{reply(t, q, dnsmessage.RCodeSuccess, []dnsmessage.Resource{rrA("real.test.", "10.77.0.30", 60)})}
		}
		return [][]byte{reply(t, q, dnsmessage.RCodeNameError, nil)}
	})
	r = NewResolver([]netip.Addr{ns1}, nil, dialTo(map[string]*dnsServer{"192.0.2.1": partial}))
	got, err = lookup(t, r, "ip4", "alias.test")
	if err != nil || !slices.Equal(got, addrs("10.77.0.30")) {
		t.Fatalf("alias.test = %v, %v", got, err)
	}
	if q := partial.seen(); !slices.Equal(q, []string{"udp A alias.test.", "udp A real.test."}) {
		t.Errorf("queries %v", q)
	}

	// A loop is cut off with an error rather than followed forever.
	loop := newDNSServer(t, func(q dnsmessage.Message, tcp bool) [][]byte {
		n := q.Questions[0].Name.String()
		return [][]byte{reply(t, q, dnsmessage.RCodeSuccess, []dnsmessage.Resource{rrCNAME(n, "x"+n, 60)})}
	})
	r = NewResolver([]netip.Addr{ns1}, nil, dialTo(map[string]*dnsServer{"192.0.2.1": loop}))
	if got, err := lookup(t, r, "ip4", "loop.test"); err == nil || !strings.Contains(err.Error(), "CNAME chain longer than") {
		t.Fatalf("endless chain = %v, %v", got, err)
	}
	if n := len(loop.seen()); n > maxCNAMEHops+1 {
		t.Errorf("%d queries for an endless chain", n)
	}
}

func TestResolveNXDOMAIN(t *testing.T) {
	s := newDNSServer(t, testZone.serve(t))
	s2 := newDNSServer(t, func(q dnsmessage.Message, tcp bool) [][]byte {
		t.Error("second server asked after an NXDOMAIN from the first")
		return nil
	})
	r := NewResolver([]netip.Addr{ns1, ns2}, nil, dialTo(map[string]*dnsServer{"192.0.2.1": s, "192.0.2.2": s2}))
	_, err := lookup(t, r, "ip4", "nothere.test")
	want := "dns: nothere.test: no such host (NXDOMAIN from 192.0.2.1)"
	if err == nil || err.Error() != want {
		t.Fatalf("err = %v, want %q", err, want)
	}
	if !errors.Is(err, ErrNoSuchHost) {
		t.Error("not errors.Is ErrNoSuchHost")
	}
	// The SOA allowed caching the negative answer.
	lookup(t, r, "ip4", "nothere.test")
	if q := s.seen(); len(q) != 1 {
		t.Errorf("queries %v, want the NXDOMAIN cached", q)
	}
	// A name that exists without the asked type is "no such host" too.
	_, err = lookup(t, r, "ip6", "v4only.test")
	if err == nil || !errors.Is(err, ErrNoSuchHost) || !strings.Contains(err.Error(), "no AAAA record at 192.0.2.1") {
		t.Fatalf("AAAA of v4only.test: %v", err)
	}
}

func TestResolveServfailThenSecondServer(t *testing.T) {
	bad := newDNSServer(t, func(q dnsmessage.Message, tcp bool) [][]byte {
		return [][]byte{reply(t, q, dnsmessage.RCodeServerFailure, nil)}
	})
	good := newDNSServer(t, testZone.serve(t))
	r := NewResolver([]netip.Addr{ns1, ns2}, nil, dialTo(map[string]*dnsServer{"192.0.2.1": bad, "192.0.2.2": good}))
	got, err := lookup(t, r, "ip4", "registry.test")
	if err != nil || !slices.Equal(got, addrs("10.77.0.1")) {
		t.Fatalf("registry.test = %v, %v", got, err)
	}
	if len(bad.seen()) != 1 || len(good.seen()) != 1 {
		t.Errorf("queries: first server %v, second %v", bad.seen(), good.seen())
	}

	// Both failing ends in a server failure naming them, not "no such host".
	r = NewResolver([]netip.Addr{ns1}, nil, dialTo(map[string]*dnsServer{"192.0.2.1": bad}))
	r.Attempts = 1
	_, err = lookup(t, r, "ip4", "registry.test")
	if err == nil || !errors.Is(err, ErrServerFailure) || err.Error() != "dns: registry.test: server failure (SERVFAIL from 192.0.2.1)" {
		t.Fatalf("err = %v", err)
	}
}

func TestResolveTruncatedFallsBackToTCP(t *testing.T) {
	s := newDNSServer(t, func(q dnsmessage.Message, tcp bool) [][]byte {
		if !tcp {
			m := dnsmessage.Message{Header: dnsmessage.Header{ID: q.ID, Response: true, Truncated: true}, Questions: q.Questions}
			b, _ := m.Pack()
			return [][]byte{b}
		}
		var ans []dnsmessage.Resource
		for i := 1; i <= 40; i++ { // more than fits in 512 bytes
			ans = append(ans, rrA("big.test.", fmt.Sprintf("10.78.0.%d", i), 60))
		}
		return [][]byte{reply(t, q, dnsmessage.RCodeSuccess, ans)}
	})
	r := NewResolver([]netip.Addr{ns1}, nil, dialTo(map[string]*dnsServer{"192.0.2.1": s}))
	got, err := lookup(t, r, "ip4", "big.test")
	if err != nil || len(got) != 40 || got[39] != netip.MustParseAddr("10.78.0.40") {
		t.Fatalf("big.test = %v, %v", got, err)
	}
	if q := s.seen(); !slices.Equal(q, []string{"udp A big.test.", "tcp A big.test."}) {
		t.Errorf("queries %v", q)
	}
}

func TestResolveSearchList(t *testing.T) {
	s := newDNSServer(t, testZone.serve(t))
	r := NewResolver([]netip.Addr{ns1}, []string{"corp.test", "lab.test."}, dialTo(map[string]*dnsServer{"192.0.2.1": s}))
	got, err := lookup(t, r, "ip4", "mirror")
	if err != nil || !slices.Equal(got, addrs("10.77.0.20")) {
		t.Fatalf("mirror = %v, %v", got, err)
	}
	if q := s.seen(); !slices.Equal(q, []string{"udp A mirror.corp.test.", "udp A mirror.lab.test."}) {
		t.Errorf("dotless name: queries %v", q)
	}
	// A name with a dot (ndots 1) is tried as is first; a trailing dot
	// means no search at all.
	got, err = lookup(t, r, "ip4", "registry.test")
	if err != nil || !slices.Equal(got, addrs("10.77.0.1")) {
		t.Fatalf("registry.test = %v, %v", got, err)
	}
	_, err = lookup(t, r, "ip4", "nothere.")
	if err == nil || !errors.Is(err, ErrNoSuchHost) {
		t.Fatalf("nothere. = %v", err)
	}
	q := s.seen()[2:]
	if !slices.Equal(q, []string{"udp A registry.test.", "udp A nothere."}) {
		t.Errorf("queries %v", q)
	}
	// All candidates missing: the error names the host asked for and what
	// was tried.
	_, err = lookup(t, r, "ip4", "ghost")
	want := "dns: ghost: no such host (NXDOMAIN from 192.0.2.1; tried ghost.corp.test, ghost.lab.test, ghost)"
	if err == nil || err.Error() != want {
		t.Errorf("err = %v\nwant %s", err, want)
	}
}

func TestResolveIgnoresMismatchedReplies(t *testing.T) {
	s := newDNSServer(t, func(q dnsmessage.Message, tcp bool) [][]byte {
		good := testZone.serve(t)(q, tcp)
		wrongID := q
		wrongID.ID++
		forged := reply(t, wrongID, dnsmessage.RCodeSuccess, []dnsmessage.Resource{rrA("registry.test.", "6.6.6.6", 60)})
		otherQ := q
		otherQ.Questions = []dnsmessage.Question{{Name: dnsmessage.MustNewName("evil.test."), Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET}}
		wrongQuestion := reply(t, otherQ, dnsmessage.RCodeSuccess, []dnsmessage.Resource{rrA("evil.test.", "6.6.6.7", 60)})
		query, _ := q.Pack() // a query, not a response (QR clear)
		return append([][]byte{forged, wrongQuestion, query, []byte("junk")}, good...)
	})
	r := NewResolver([]netip.Addr{ns1}, nil, dialTo(map[string]*dnsServer{"192.0.2.1": s}))
	got, err := lookup(t, r, "ip4", "registry.test")
	if err != nil || !slices.Equal(got, addrs("10.77.0.1")) {
		t.Fatalf("registry.test = %v, %v", got, err)
	}
}

func TestResolveTimeout(t *testing.T) {
	silent := newDNSServer(t, func(dnsmessage.Message, bool) [][]byte { return nil })
	r := NewResolver([]netip.Addr{ns1, ns2}, nil, dialTo(map[string]*dnsServer{"192.0.2.1": silent, "192.0.2.2": silent}))
	r.Timeout = 100 * time.Millisecond
	r.Attempts = 2
	_, err := lookup(t, r, "ip4", "registry.test")
	var de *DNSError
	if !errors.As(err, &de) || !de.Timeout() || !errors.Is(err, ErrNoAnswer) {
		t.Fatalf("err = %v, want a timeout", err)
	}
	want := "dns: registry.test: no answer (2 servers (192.0.2.1, 192.0.2.2), 2 tries each, 100ms per try)"
	if err.Error() != want {
		t.Errorf("err = %v\nwant %s", err, want)
	}
	if q := silent.seen(); len(q) != 4 {
		t.Errorf("queries %v, want 4 (2 rounds over 2 servers)", q)
	}
	// The caller's context wins over the retries.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	r.Timeout = time.Minute
	if _, err := r.LookupNetIP(ctx, "ip4", "registry.test"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("with a 50ms context: %v", err)
	}
}
