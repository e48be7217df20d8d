package stack

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"runtime"
	"testing"
	"time"
	"weak"

	"github.com/ociboot/ociboot/stack/internal/gvisorlink"
	"gvisor.dev/gvisor/pkg/tcpip"
	gvipv4 "gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	gvstack "gvisor.dev/gvisor/pkg/tcpip/stack"
)

type fakeResolver map[string][]netip.Addr

func (r fakeResolver) LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	if a, ok := r[host]; ok {
		return a, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

func TestDialContextResolvesAndTriesInOrder(t *testing.T) {
	p := newPair(t, gvisorlink.Config{}, Options{})
	// The peer also owns 10.0.0.3, where nothing listens: a dial there is
	// refused and the next address is tried.
	second := tcpip.ProtocolAddress{Protocol: gvipv4.ProtocolNumber, AddressWithPrefix: tcpip.AddrFrom4([4]byte{10, 0, 0, 3}).WithPrefix()}
	second.AddressWithPrefix.PrefixLen = 24
	if err := p.link.Peer.AddProtocolAddress(1, second, gvstack.AddressProperties{}); err != nil {
		t.Fatal(err)
	}
	ln := p.listen(t, 80)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("hi"))
			c.Close()
		}
	}()
	p.s.SetResolver(fakeResolver{"registry.test": {netip.MustParseAddr("10.0.0.3"), peerIP}})
	c, err := p.s.DialContext(context.Background(), "tcp", "registry.test:80")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.RemoteAddr().String() != "10.0.0.2:80" {
		t.Fatalf("connected to %v", c.RemoteAddr())
	}
	if _, err := p.s.DialContext(context.Background(), "tcp", "nowhere.test:80"); !errors.As(err, new(*net.DNSError)) {
		t.Fatalf("dial to an unknown name: %v", err)
	}
	if _, err := p.s.DialContext(context.Background(), "tcp6", "10.0.0.2:80"); err == nil {
		t.Fatal("tcp6 dial succeeded")
	}
}

func TestStoppingActorsClosesEverything(t *testing.T) {
	p := newPair(t, gvisorlink.Config{}, Options{})
	ln := p.listen(t, 80)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			io.Copy(io.Discard, c) // until the peer stack closes
			c.Close()
		}
	}()
	c, err := p.s.DialContext(context.Background(), "tcp", "10.0.0.2:80")
	if err != nil {
		t.Fatal(err)
	}
	u, err := p.s.ListenUDP(netip.AddrPort{})
	if err != nil {
		t.Fatal(err)
	}
	readErr := make(chan error, 2)
	go func() { _, err := c.Read(make([]byte, 1)); readErr <- err }()
	go func() { _, _, err := u.ReadFrom(make([]byte, 1)); readErr <- err }()
	p.stop()
	for range 2 {
		select {
		case err := <-readErr:
			if err == nil {
				t.Fatal("a read succeeded after the stack stopped")
			}
		case <-time.After(10 * time.Second):
			t.Fatal("a read still blocks after the stack stopped")
		}
	}
	if !errors.Is(func() error { _, err := c.Write([]byte("x")); return err }(), errStackStopped) {
		t.Fatal("Write after stop does not report the stopped stack")
	}
}

// TestStoppedStackReleasesConnections checks that stopping the actors lets
// a connection (and its rings) be collected although an http.Transport
// still holds it as an idle keep-alive: the loader builds a new stack per
// boot attempt and must not carry the last one's memory along.
func TestStoppedStackReleasesConnections(t *testing.T) {
	p := newPair(t, gvisorlink.Config{}, Options{})
	c, bs, base := p.serve(t, false)
	fetch(t, c, bs, base, 1<<20, "keep-alive")
	p.s.mu.Lock()
	var conns []weak.Pointer[tcpConn]
	for _, tc := range p.s.tcp {
		conns = append(conns, weak.Make(tc))
	}
	p.s.mu.Unlock()
	if len(conns) != 1 {
		t.Fatalf("%d connections after the fetch, want the idle keep-alive one", len(conns))
	}
	p.stop()
	// The transport's read loop ends once the connection dies; give it a
	// few collections to get there.
	for range 100 {
		runtime.GC()
		if conns[0].Value() == nil {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("the connection is still reachable after the stack stopped")
}

func TestDataAfterCloseResets(t *testing.T) {
	p := newScriptPeer(t, Options{})
	sc := p.dial(bigWnd)
	sc.c.Close()
	fin := p.expectFlags("our FIN", flagFIN)
	sc.rcvNxt = fin.seq + 1
	sc.send(flagACK|flagPSH, bigWnd, []byte("late data"))
	if r := p.expectFlags("RST", flagRST); r.seq != fin.seq+1 {
		t.Fatalf("RST seq %d, want %d", r.seq, fin.seq+1)
	}
}
