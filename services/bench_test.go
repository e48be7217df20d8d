package services

import (
	"context"
	"net/netip"
	"testing"
	"time"
)

// BenchmarkDHCPAcquire times a whole discover-offer-request-ack over the
// in-memory link: the client's own cost, without network latency.
func BenchmarkDHCPAcquire(b *testing.B) {
	for b.Loop() {
		_, conn := newTestServer(b)
		cfg := fastConfig(conn, nil)
		d, err := NewDHCP(cfg)
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- d.Run(ctx) }()
		select {
		case <-d.Ready():
		case err := <-done:
			b.Fatal(err)
		}
		cancel()
		<-done
		conn.Close()
	}
}

// BenchmarkParseDHCP times parsing an ACK with every option the client
// reads and turning it into a lease.
func BenchmarkParseDHCP(b *testing.B) {
	search := []byte{3, 'l', 'a', 'b', 4, 't', 'e', 's', 't', 0, 4, 'c', 'o', 'r', 'p', 0xc0, 0}
	pkt := ackBytes([]byte("bootsrv"), []byte("registry.test/boot/linux:latest"),
		optMessageType, 1, msgAck, optServerID, 4, 10, 77, 0, 1, optLeaseTime, 4, 0, 0, 0x0e, 0x10,
		optSubnetMask, 4, 255, 255, 255, 0, optRouter, 4, 10, 77, 0, 1, optDNS, 8, 10, 77, 0, 1, 10, 77, 0, 2,
		optDomainName, 8, 'l', 'a', 'b', '.', 't', 'e', 's', 't', optMTU, 2, 5, 0x78,
		optClasslessRoutes, 10, 0, 10, 77, 0, 254, 16, 192, 168, 10, 77)
	pkt = append(pkt[:len(pkt)-1], append([]byte{optDomainSearch, byte(len(search))}, append(search, optEnd)...)...)
	b.SetBytes(int64(len(pkt)))
	for b.Loop() {
		m, err := parseDHCP(pkt)
		if err != nil {
			b.Fatal(err)
		}
		if _, _, err := leaseFrom(m, time.Now()); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkResolve times one uncached A lookup against the loopback server
// (cache defeated by a fresh resolver each time).
func BenchmarkResolve(b *testing.B) {
	s := newDNSServer(b, testZone.serve(b))
	dial := dialTo(map[string]*dnsServer{"192.0.2.1": s})
	ctx := context.Background()
	for b.Loop() {
		r := NewResolver([]netip.Addr{ns1}, nil, dial)
		if _, err := r.LookupNetIP(ctx, "ip4", "www.test"); err != nil {
			b.Fatal(err)
		}
	}
}
