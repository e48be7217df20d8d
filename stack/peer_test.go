package stack

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"math/big"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/ociboot/ociboot/stack/internal/gvisorlink"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	gvipv4 "gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
)

var (
	ourMAC   = net.HardwareAddr{0x02, 0, 0, 0, 0, 1}
	peerMAC  = net.HardwareAddr{0x02, 0, 0, 0, 0, 2}
	ourAddr  = netip.MustParsePrefix("10.0.0.1/24")
	peerAddr = netip.MustParsePrefix("10.0.0.2/24")
	peerIP   = peerAddr.Addr()
)

// pair is our stack wired to a gVisor peer.
type pair struct {
	s    *Stack
	link *gvisorlink.Link
	stop func() // cancels our actors and waits for them
}

func newPair(tb testing.TB, cfg gvisorlink.Config, opts Options) *pair {
	tb.Helper()
	p := newUnconfiguredPair(tb, cfg, opts)
	if err := p.s.Configure(Config{Addr: ourAddr}); err != nil {
		tb.Fatal(err)
	}
	return p
}

// newUnconfiguredPair is newPair before our side has an address (DHCP).
func newUnconfiguredPair(tb testing.TB, cfg gvisorlink.Config, opts Options) *pair {
	tb.Helper()
	cfg.MAC, cfg.PeerMAC, cfg.PeerAddr = ourMAC, peerMAC, peerAddr
	link, err := gvisorlink.New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	if opts.Logf == nil {
		opts.Logf = tb.Logf
	}
	s := New(link, opts)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, a := range s.Actors() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := a.Run(ctx); err != nil {
				tb.Errorf("actor %s: %v", a.Name(), err)
			}
		}()
	}
	stop := func() { cancel(); wg.Wait() }
	tb.Cleanup(func() {
		stop()
		link.Close()
	})
	return &pair{s: s, link: link, stop: stop}
}

func (p *pair) listen(tb testing.TB, port uint16) net.Listener {
	tb.Helper()
	ln, err := gonet.ListenTCP(p.link.Peer, tcpip.FullAddress{NIC: 1, Addr: tcpip.AddrFrom4(peerIP.As4()), Port: port}, gvipv4.ProtocolNumber)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ln.Close() })
	return ln
}

// blobServer serves /blob?size=N with N pseudo-random bytes and records the
// SHA-256 of what it wrote.
type blobServer struct {
	mu   sync.Mutex
	sums map[string][32]byte
}

func (b *blobServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	size, err := strconv.ParseInt(r.URL.Query().Get("size"), 10, 64)
	if err != nil {
		http.Error(w, err.Error(), 400)
		return
	}
	w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
	rng := mrand.NewChaCha8([32]byte{byte(size), 1, 2, 3})
	h := sha256.New()
	buf := make([]byte, 64<<10)
	for size > 0 {
		n := int(min(size, int64(len(buf))))
		rng.Read(buf[:n])
		h.Write(buf[:n])
		if _, err := w.Write(buf[:n]); err != nil {
			return
		}
		size -= int64(n)
	}
	b.mu.Lock()
	b.sums[r.URL.Query().Get("id")] = [32]byte(h.Sum(nil))
	b.mu.Unlock()
}

func (b *blobServer) sum(id string) ([32]byte, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	s, ok := b.sums[id]
	return s, ok
}

// testCA makes a CA and a server certificate for name.
func testCA(tb testing.TB, name string) (*x509.CertPool, tls.Certificate) {
	tb.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ociboot test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		tb.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		tb.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return pool, tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// serve starts an HTTP(S) blob server on the peer and returns a client
// that dials through our stack, and the base URL.
func (p *pair) serve(tb testing.TB, useTLS bool) (*http.Client, *blobServer, string) {
	tb.Helper()
	bs := &blobServer{sums: map[string][32]byte{}}
	srv := &http.Server{Handler: bs}
	tr := &http.Transport{DialContext: p.s.DialContext, DisableCompression: true}
	var url string
	if useTLS {
		pool, cert := testCA(tb, "peer.test")
		ln := tls.NewListener(p.listen(tb, 443), &tls.Config{Certificates: []tls.Certificate{cert}})
		go srv.Serve(ln)
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, ServerName: "peer.test"}
		url = "https://" + peerIP.String()
	} else {
		go srv.Serve(p.listen(tb, 80))
		url = "http://" + peerIP.String()
	}
	tb.Cleanup(func() {
		srv.Close()
		tr.CloseIdleConnections()
	})
	return &http.Client{Transport: tr}, bs, url
}

// fetch gets a blob of size bytes and checks it against the server's hash;
// it returns the transfer rate in MB/s.
func fetch(tb testing.TB, c *http.Client, bs *blobServer, base string, size int64, id string) float64 {
	tb.Helper()
	start := time.Now()
	resp, err := c.Get(fmt.Sprintf("%s/blob?size=%d&id=%s", base, size, url.QueryEscape(id)))
	if err != nil {
		tb.Fatalf("GET: %v", err)
	}
	defer resp.Body.Close()
	h := sha256.New()
	n, err := io.Copy(h, resp.Body)
	if err != nil {
		tb.Fatalf("reading body after %d bytes: %v", n, err)
	}
	el := time.Since(start)
	if n != size {
		tb.Fatalf("got %d bytes, want %d", n, size)
	}
	var want [32]byte
	var ok bool
	for range 100 { // the handler records its sum just after the last write
		if want, ok = bs.sum(id); ok {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !ok {
		tb.Fatal("server recorded no checksum")
	}
	if got := [32]byte(h.Sum(nil)); got != want {
		tb.Fatalf("SHA-256 mismatch: got %x, server sent %x", got, want)
	}
	return float64(size) / el.Seconds() / 1e6
}

func TestHTTPPlain(t *testing.T) {
	p := newPair(t, gvisorlink.Config{}, Options{})
	c, bs, base := p.serve(t, false)
	rate := fetch(t, c, bs, base, 32<<20, "plain")
	t.Logf("HTTP 32 MiB: %.1f MB/s", rate)
}

func TestHTTPSLossy(t *testing.T) {
	cases := []struct {
		name string
		size int64
		cfg  gvisorlink.Config
	}{
		{"clean", 256 << 20, gvisorlink.Config{}},
		{"loss1pct", 256 << 20, gvisorlink.Config{Seed: 1, ToPeer: gvisorlink.Impair{Loss: 0.01}, FromPeer: gvisorlink.Impair{Loss: 0.01}}},
		// 5% loss each way takes about 70 s of wall time (little CPU): gVisor's
		// sender spends it in retransmission timeouts.
		{"loss5pct", 256 << 20, gvisorlink.Config{Seed: 2, ToPeer: gvisorlink.Impair{Loss: 0.05}, FromPeer: gvisorlink.Impair{Loss: 0.05}}},
		{"reorder+dup", 256 << 20, gvisorlink.Config{Seed: 3,
			ToPeer:   gvisorlink.Impair{Reorder: 0.05, Dup: 0.02},
			FromPeer: gvisorlink.Impair{Reorder: 0.05, Dup: 0.02}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := newPair(t, tc.cfg, Options{})
			c, bs, base := p.serve(t, true)
			rate := fetch(t, c, bs, base, tc.size, tc.name)
			t.Logf("HTTPS %d MiB: %.1f MB/s; link to peer lost %d reordered %d duplicated %d of %d; from peer lost %d reordered %d duplicated %d of %d",
				tc.size>>20, rate,
				p.link.ToPeer.Lost.Load(), p.link.ToPeer.Reordered.Load(), p.link.ToPeer.Duplicated.Load(), p.link.ToPeer.Frames.Load(),
				p.link.FromPeer.Lost.Load(), p.link.FromPeer.Reordered.Load(), p.link.FromPeer.Duplicated.Load(), p.link.FromPeer.Frames.Load())
		})
	}
}
