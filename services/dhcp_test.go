package services

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"
)

var (
	testMAC      = net.HardwareAddr{0x52, 0x54, 0x00, 0x12, 0x34, 0x56}
	testServerIP = net.IPv4(10, 77, 0, 1).To4()
	testYourIP   = net.IPv4(10, 77, 0, 50).To4()
)

// testServer is a DHCP server built from insomniacslk/dhcp messages, on the
// far end of an in-memory link. handle returns the datagrams to send back;
// the default answers DISCOVER with an OFFER and REQUEST with an ACK.
type testServer struct {
	t    testing.TB
	conn *memPacketConn

	mu       sync.Mutex
	requests []*dhcpv4.DHCPv4
	dests    []net.Addr
	opts     []dhcpv4.Modifier
	handle   func(s *testServer, req *dhcpv4.DHCPv4, n int) [][]byte
}

func newTestServer(t testing.TB, opts ...dhcpv4.Modifier) (*testServer, net.PacketConn) {
	client, server := memPacketPair(
		&net.UDPAddr{IP: net.IPv4zero, Port: 68},
		&net.UDPAddr{IP: testServerIP, Port: 67})
	s := &testServer{t: t, conn: server, opts: opts}
	t.Cleanup(func() { server.Close(); client.Close() })
	go s.serve()
	return s, client
}

func (s *testServer) serve() {
	for {
		p, err := s.conn.readPacket()
		if err != nil {
			return
		}
		req, err := dhcpv4.FromBytes(p.data)
		if err != nil {
			s.t.Errorf("server: client sent an unparsable message: %v", err)
			continue
		}
		s.mu.Lock()
		s.requests = append(s.requests, req)
		s.dests = append(s.dests, p.to)
		n := len(s.requests)
		handle := s.handle
		s.mu.Unlock()
		if handle == nil {
			handle = (*testServer).answer
		}
		for _, b := range handle(s, req, n) {
			s.conn.WriteTo(b, &net.UDPAddr{IP: net.IPv4bcast, Port: 68})
		}
	}
}

// answer is the well-behaved server.
func (s *testServer) answer(req *dhcpv4.DHCPv4, _ int) [][]byte {
	var typ dhcpv4.MessageType
	switch req.MessageType() {
	case dhcpv4.MessageTypeDiscover:
		typ = dhcpv4.MessageTypeOffer
	case dhcpv4.MessageTypeRequest:
		typ = dhcpv4.MessageTypeAck
	default:
		return nil
	}
	return [][]byte{s.reply(req, typ)}
}

func (s *testServer) reply(req *dhcpv4.DHCPv4, typ dhcpv4.MessageType, extra ...dhcpv4.Modifier) []byte {
	mods := append([]dhcpv4.Modifier{
		dhcpv4.WithMessageType(typ),
		dhcpv4.WithYourIP(testYourIP),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(testServerIP)),
		dhcpv4.WithOption(dhcpv4.OptSubnetMask(net.CIDRMask(24, 32))),
		dhcpv4.WithOption(dhcpv4.OptIPAddressLeaseTime(time.Hour)),
	}, s.opts...)
	if typ == dhcpv4.MessageTypeNak {
		mods = []dhcpv4.Modifier{dhcpv4.WithMessageType(typ),
			dhcpv4.WithOption(dhcpv4.OptServerIdentifier(testServerIP))}
	}
	m, err := dhcpv4.NewReplyFromRequest(req, append(mods, extra...)...)
	if err != nil {
		s.t.Fatalf("server: building reply: %v", err)
	}
	return m.ToBytes()
}

func (s *testServer) seen() ([]*dhcpv4.DHCPv4, []net.Addr) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.requests), slices.Clone(s.dests)
}

// fastConfig retransmits quickly so tests do not wait seconds.
func fastConfig(conn net.PacketConn, logf func(string, ...any)) DHCPConfig {
	return DHCPConfig{
		Conn:          conn,
		MAC:           testMAC,
		Timeout:       5 * time.Second,
		Retransmit:    30 * time.Millisecond,
		MaxRetransmit: 120 * time.Millisecond,
		Logf:          logf,
	}
}

// logBuffer collects console lines.
type logBuffer struct {
	mu    sync.Mutex
	lines []string
}

func (l *logBuffer) logf(format string, args ...any) {
	l.mu.Lock()
	l.lines = append(l.lines, fmt.Sprintf(format, args...))
	l.mu.Unlock()
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

// runDHCP runs d until it is ready or fails; the actor keeps running
// until the test ends.
func runDHCP(t *testing.T, d *DHCP) (Lease, error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run after cancel: %v", err)
		}
	})
	select {
	case <-d.Ready():
		l, ok := d.Lease()
		if !ok {
			t.Fatal("ready without a lease")
		}
		return l, nil
	case err := <-done:
		done <- nil // for the cleanup
		return Lease{}, err
	case <-time.After(20 * time.Second):
		t.Fatal("DHCP neither ready nor failed after 20s")
	}
	return Lease{}, nil
}

func TestDHCPFullLease(t *testing.T) {
	// Option 119 with a compression pointer: lab.test, corp.lab.test.
	search := []byte{3, 'l', 'a', 'b', 4, 't', 'e', 's', 't', 0, 4, 'c', 'o', 'r', 'p', 0xc0, 0}
	routes := []*dhcpv4.Route{
		{Dest: &net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}, Router: net.IPv4(10, 77, 0, 254)},
		{Dest: &net.IPNet{IP: net.IPv4(192, 168, 0, 0), Mask: net.CIDRMask(16, 32)}, Router: net.IPv4(10, 77, 0, 2)},
		{Dest: &net.IPNet{IP: net.IPv4(172, 16, 5, 128), Mask: net.CIDRMask(25, 32)}, Router: net.IPv4zero},
	}
	srv, conn := newTestServer(t,
		dhcpv4.WithRouter(testServerIP),
		dhcpv4.WithOption(dhcpv4.OptClasslessStaticRoute(routes...)),
		dhcpv4.WithOption(dhcpv4.OptDNS(net.IPv4(10, 77, 0, 1), net.IPv4(10, 77, 0, 2))),
		dhcpv4.WithOption(dhcpv4.OptDomainName("lab.test")),
		dhcpv4.WithGeneric(dhcpv4.OptionDNSDomainSearchList, search),
		dhcpv4.WithGeneric(dhcpv4.OptionInterfaceMTU, []byte{0x05, 0x78}),
		dhcpv4.WithOption(dhcpv4.OptIPAddressLeaseTime(2*time.Hour)),
		dhcpv4.WithOption(dhcpv4.OptRenewTimeValue(20*time.Minute)),
		dhcpv4.WithOption(dhcpv4.OptRebindingTimeValue(90*time.Minute)),
		dhcpv4.WithServerIP(net.IPv4(10, 77, 0, 5)),
		func(m *dhcpv4.DHCPv4) {
			m.BootFileName = "registry.test/boot/linux:latest"
			m.ServerHostName = "bootsrv"
		},
	)
	var log logBuffer
	var bound []Lease
	cfg := fastConfig(conn, log.logf)
	cfg.UUID = []byte("0123456789abcdef")
	cfg.Hostname = "node7"
	cfg.OnBound = func(l Lease) { bound = append(bound, l) }
	d, err := NewDHCP(cfg)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	l, err := runDHCP(t, d)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("lease in %v: %v", time.Since(start), &l)

	want := Lease{
		Addr:    netip.MustParsePrefix("10.77.0.50/24"),
		Server:  netip.MustParseAddr("10.77.0.1"),
		Routers: []netip.Addr{netip.MustParseAddr("10.77.0.1")},
		Routes: []Route{
			{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParseAddr("10.77.0.254")},
			{netip.MustParsePrefix("192.168.0.0/16"), netip.MustParseAddr("10.77.0.2")},
			{netip.MustParsePrefix("172.16.5.128/25"), netip.MustParseAddr("0.0.0.0")},
		},
		DNS:        []netip.Addr{netip.MustParseAddr("10.77.0.1"), netip.MustParseAddr("10.77.0.2")},
		Domain:     "lab.test",
		Search:     []string{"lab.test", "corp.lab.test"},
		MTU:        1400,
		LeaseTime:  2 * time.Hour,
		T1:         20 * time.Minute,
		T2:         90 * time.Minute,
		NextServer: netip.MustParseAddr("10.77.0.5"),
		ServerName: "bootsrv",
		BootFile:   "registry.test/boot/linux:latest",
	}
	got := l
	got.Acquired = time.Time{}
	if s1, s2 := fmt.Sprintf("%+v", got), fmt.Sprintf("%+v", want); s1 != s2 {
		t.Errorf("lease\n got %s\nwant %s", s1, s2)
	}
	if l.Acquired.Before(start) || l.Acquired.After(time.Now()) {
		t.Errorf("Acquired %v outside the run", l.Acquired)
	}
	// Option 121 present: the router option must not make the default route.
	if r := l.Router(); r != netip.MustParseAddr("10.77.0.254") {
		t.Errorf("Router() = %v, want the option 121 default route's 10.77.0.254", r)
	}
	if len(bound) != 1 {
		t.Errorf("OnBound called %d times, want 1", len(bound))
	}
	if !strings.Contains(log.String(), "dhcp: lease 10.77.0.50/24 from 10.77.0.1, router 10.77.0.254, 3 routes, dns 10.77.0.1, 10.77.0.2") {
		t.Errorf("console:\n%s", log.String())
	}

	reqs, dests := srv.seen()
	if len(reqs) != 2 {
		t.Fatalf("server saw %d messages, want DISCOVER and REQUEST", len(reqs))
	}
	for i, want := range []dhcpv4.MessageType{dhcpv4.MessageTypeDiscover, dhcpv4.MessageTypeRequest} {
		m := reqs[i]
		if m.MessageType() != want {
			t.Errorf("message %d is %v, want %v", i, m.MessageType(), want)
		}
		if dests[i].String() != "255.255.255.255:67" {
			t.Errorf("%v sent to %v, want broadcast", want, dests[i])
		}
		if m.ClientHWAddr.String() != testMAC.String() || m.OpCode != dhcpv4.OpcodeBootRequest {
			t.Errorf("%v: chaddr %v op %v", want, m.ClientHWAddr, m.OpCode)
		}
		if a := m.ClientArch(); len(a) != 1 || uint16(a[0]) != ClientArch(runtime.GOARCH) {
			t.Errorf("%v: option 93 %v", want, a)
		}
		if vc := m.ClassIdentifier(); !strings.HasPrefix(vc, "ociboot:Arch:000") {
			t.Errorf("%v: vendor class %q", want, vc)
		}
		if v := m.Options.Get(dhcpv4.OptionClientNetworkInterfaceIdentifier); string(v) != "\x01\x03\x10" {
			t.Errorf("%v: option 94 %x", want, v)
		}
		if v := m.Options.Get(dhcpv4.OptionClientMachineIdentifier); string(v) != "\x000123456789abcdef" {
			t.Errorf("%v: option 97 %x", want, v)
		}
		if m.HostName() != "node7" {
			t.Errorf("%v: host name %q", want, m.HostName())
		}
		for _, code := range []dhcpv4.OptionCode{dhcpv4.OptionSubnetMask, dhcpv4.OptionRouter,
			dhcpv4.OptionDomainNameServer, dhcpv4.OptionDNSDomainSearchList, dhcpv4.OptionClasslessStaticRoute,
			dhcpv4.OptionInterfaceMTU, dhcpv4.OptionBootfileName} {
			if !m.IsOptionRequested(code) {
				t.Errorf("%v: %v not requested", want, code)
			}
		}
	}
	if ip := reqs[1].RequestedIPAddress(); !ip.Equal(testYourIP) {
		t.Errorf("REQUEST asks for %v, want %v", ip, testYourIP)
	}
	if ip := reqs[1].ServerIdentifier(); !ip.Equal(testServerIP) {
		t.Errorf("REQUEST names server %v, want %v", ip, testServerIP)
	}
	if reqs[0].TransactionID != reqs[1].TransactionID {
		t.Error("REQUEST does not carry the DISCOVER's transaction ID")
	}
}

func TestDHCPNakThenSuccess(t *testing.T) {
	srv, conn := newTestServer(t)
	naked := false
	srv.handle = func(s *testServer, req *dhcpv4.DHCPv4, n int) [][]byte {
		if req.MessageType() == dhcpv4.MessageTypeRequest && !naked {
			naked = true
			return [][]byte{s.reply(req, dhcpv4.MessageTypeNak, dhcpv4.WithOption(dhcpv4.OptMessage("address in use")))}
		}
		return s.answer(req, n)
	}
	var log logBuffer
	d, _ := NewDHCP(fastConfig(conn, log.logf))
	l, err := runDHCP(t, d)
	if err != nil {
		t.Fatal(err)
	}
	if l.Addr != netip.MustParsePrefix("10.77.0.50/24") {
		t.Errorf("lease %v", l.Addr)
	}
	reqs, _ := srv.seen()
	var types []string
	for _, r := range reqs {
		types = append(types, r.MessageType().String())
	}
	if got := strings.Join(types, " "); got != "DISCOVER REQUEST DISCOVER REQUEST" {
		t.Errorf("client sent %s", got)
	}
	if reqs[0].TransactionID == reqs[2].TransactionID {
		t.Error("restart after NAK reused the transaction ID")
	}
	if !strings.Contains(log.String(), `dhcp: NAK from 10.77.0.1: "address in use"; starting over`) {
		t.Errorf("console:\n%s", log.String())
	}
}

func TestDHCPRetransmitsAfterLostOffer(t *testing.T) {
	srv, conn := newTestServer(t)
	srv.handle = func(s *testServer, req *dhcpv4.DHCPv4, n int) [][]byte {
		if n == 1 {
			return nil // the first DISCOVER is lost
		}
		return s.answer(req, n)
	}
	d, _ := NewDHCP(fastConfig(conn, t.Logf))
	if _, err := runDHCP(t, d); err != nil {
		t.Fatal(err)
	}
	reqs, _ := srv.seen()
	if len(reqs) != 3 || reqs[1].MessageType() != dhcpv4.MessageTypeDiscover {
		t.Fatalf("server saw %d messages, want DISCOVER DISCOVER REQUEST", len(reqs))
	}
	if reqs[0].TransactionID != reqs[1].TransactionID {
		t.Error("a retransmission changed the transaction ID")
	}
	if c := d.Counters().Snapshot("dhcp"); c.Messages != 5 || c.Bytes == 0 {
		t.Errorf("counters %+v, want 5 messages (3 out, 2 in)", c)
	}
}

func TestDHCPNoServer(t *testing.T) {
	srv, conn := newTestServer(t)
	srv.handle = func(*testServer, *dhcpv4.DHCPv4, int) [][]byte { return nil }
	cfg := fastConfig(conn, t.Logf)
	cfg.Timeout = 400 * time.Millisecond
	d, _ := NewDHCP(cfg)
	_, err := runDHCP(t, d)
	want := "dhcp: no answer from any DHCP server after 400ms on 52:54:00:12:34:56"
	if err == nil || err.Error() != want {
		t.Fatalf("Run = %v, want %q", err, want)
	}
	select {
	case <-d.Ready():
		t.Error("ready without a lease")
	default:
	}
	reqs, _ := srv.seen()
	if len(reqs) < 3 {
		t.Errorf("only %d DISCOVERs in 400ms with 30ms first retransmission", len(reqs))
	}
	// secs counts up across retransmissions of one transaction.
	if reqs[len(reqs)-1].NumSeconds < reqs[0].NumSeconds {
		t.Error("secs went backwards")
	}
}

func TestDHCPIgnoresMalformedReplies(t *testing.T) {
	srv, conn := newTestServer(t)
	srv.handle = func(s *testServer, req *dhcpv4.DHCPv4, n int) [][]byte {
		good := s.answer(req, n)
		if req.MessageType() != dhcpv4.MessageTypeDiscover {
			return good
		}
		short := []byte{2, 1, 6, 0}
		noCookie := append([]byte(nil), good[0]...)
		noCookie[236] = 0
		overrun := append([]byte(nil), good[0][:240]...)
		overrun = append(overrun, 53, 1, 2, 3, 200, 1) // option 3 claims 200 bytes
		wrongXID := append([]byte(nil), good[0]...)
		wrongXID[4] ^= 0xff
		otherMAC := append([]byte(nil), good[0]...)
		otherMAC[28] ^= 0xff
		badMask := s.reply(req, dhcpv4.MessageTypeOffer, dhcpv4.WithOption(dhcpv4.OptSubnetMask(net.IPv4Mask(255, 0, 255, 0))))
		return append([][]byte{short, noCookie, overrun, wrongXID, otherMAC, badMask}, good...)
	}
	d, _ := NewDHCP(fastConfig(conn, t.Logf))
	l, err := runDHCP(t, d)
	if err != nil {
		t.Fatal(err)
	}
	if l.Addr != netip.MustParsePrefix("10.77.0.50/24") {
		t.Errorf("lease %v", l.Addr)
	}
}

func TestDHCPRenewsAtT1(t *testing.T) {
	srv, conn := newTestServer(t,
		dhcpv4.WithOption(dhcpv4.OptIPAddressLeaseTime(8*time.Second)),
		dhcpv4.WithOption(dhcpv4.OptRenewTimeValue(1*time.Second)),
		dhcpv4.WithOption(dhcpv4.OptRebindingTimeValue(6*time.Second)))
	renewed := make(chan Lease, 4)
	cfg := fastConfig(conn, t.Logf)
	cfg.OnBound = func(l Lease) { renewed <- l }
	d, _ := NewDHCP(cfg)
	first, err := runDHCP(t, d)
	if err != nil {
		t.Fatal(err)
	}
	<-renewed
	select {
	case l := <-renewed:
		if l.Addr != first.Addr || !l.Acquired.After(first.Acquired) {
			t.Errorf("renewed lease %v acquired %v, first %v at %v", l.Addr, l.Acquired, first.Addr, first.Acquired)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no renewal within 10s of a lease with T1 = 1s")
	}
	reqs, dests := srv.seen()
	last := reqs[len(reqs)-1]
	if last.MessageType() != dhcpv4.MessageTypeRequest || dests[len(dests)-1].String() != "10.77.0.1:67" {
		t.Errorf("renewal was %v to %v, want a REQUEST unicast to 10.77.0.1:67", last.MessageType(), dests[len(dests)-1])
	}
	if !last.ClientIPAddr.Equal(testYourIP) || last.Options.Has(dhcpv4.OptionRequestedIPAddress) || last.Options.Has(dhcpv4.OptionServerIdentifier) {
		t.Errorf("renewing REQUEST: ciaddr %v, options %v (RFC 2131 4.3.2: ciaddr set, no 50 or 54)", last.ClientIPAddr, last.Options)
	}
}

func TestDHCPCancelWhileWaiting(t *testing.T) {
	srv, conn := newTestServer(t)
	srv.handle = func(*testServer, *dhcpv4.DHCPv4, int) [][]byte { return nil }
	cfg := fastConfig(conn, t.Logf)
	cfg.Retransmit = time.Minute // a read is pending when the cancel comes
	cfg.MaxRetransmit = time.Minute
	cfg.Timeout = time.Hour
	d, _ := NewDHCP(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	for {
		if reqs, _ := srv.seen(); len(reqs) > 0 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run after cancel = %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}

func TestStaticDHCP(t *testing.T) {
	l := Lease{
		Addr:    netip.MustParsePrefix("192.0.2.10/24"),
		Routers: []netip.Addr{netip.MustParseAddr("192.0.2.1")},
		DNS:     []netip.Addr{netip.MustParseAddr("192.0.2.53")},
		Domain:  "example.test",
	}
	var log logBuffer
	d := NewStaticDHCP(l, log.logf)
	select {
	case <-d.Ready():
	default:
		t.Fatal("static DHCP not ready at once")
	}
	got, ok := d.Lease()
	if !ok || got.Router() != netip.MustParseAddr("192.0.2.1") || !slices.Equal(got.Search, []string{"example.test"}) {
		t.Errorf("lease %+v", got)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(log.String(), "dhcp: static configuration 192.0.2.10/24, router 192.0.2.1, dns 192.0.2.53") {
		t.Errorf("console: %s", log.String())
	}
}

func TestClientArch(t *testing.T) {
	for goarch, want := range map[string]iana.Arch{
		"amd64":   iana.EFI_X86_64,
		"arm64":   iana.EFI_ARM64,
		"riscv64": iana.EFI_RISCV64,
		"loong64": 0x27,
	} {
		if got := ClientArch(goarch); got != uint16(want) {
			t.Errorf("ClientArch(%s) = %#x, want %#x", goarch, got, uint16(want))
		}
	}
	// An explicit Arch goes on the wire and into the vendor class.
	srv, conn := newTestServer(t)
	cfg := fastConfig(conn, t.Logf)
	cfg.Arch = 0x27
	d, _ := NewDHCP(cfg)
	if _, err := runDHCP(t, d); err != nil {
		t.Fatal(err)
	}
	reqs, _ := srv.seen()
	if a := reqs[0].ClientArch(); len(a) != 1 || a[0] != 0x27 {
		t.Errorf("option 93 %v, want 0x27", a)
	}
	if vc := reqs[0].ClassIdentifier(); vc != "ociboot:Arch:00039:UNDI:003016" {
		t.Errorf("vendor class %q", vc)
	}
}
