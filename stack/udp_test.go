package stack

import (
	"bytes"
	"context"
	"encoding/binary"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/ociboot/ociboot/stack/internal/gvisorlink"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	gvipv4 "gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/transport/icmp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"
	"gvisor.dev/gvisor/pkg/waiter"
)

// peerUDP binds a gVisor UDP endpoint to port on the NIC (not an address,
// so broadcasts arrive), with broadcast sending allowed.
func (p *pair) peerUDP(tb testing.TB, port uint16) *gonet.UDPConn {
	tb.Helper()
	var wq waiter.Queue
	ep, err := p.link.Peer.NewEndpoint(udp.ProtocolNumber, gvipv4.ProtocolNumber, &wq)
	if err != nil {
		tb.Fatal(err)
	}
	ep.SocketOptions().SetBroadcast(true)
	if err := ep.Bind(tcpip.FullAddress{NIC: 1, Port: port}); err != nil {
		tb.Fatal(err)
	}
	c := gonet.NewUDPConn(&wq, ep)
	tb.Cleanup(func() { c.Close() })
	return c
}

func TestUDPExchange(t *testing.T) {
	p := newPair(t, gvisorlink.Config{}, Options{})
	echo := p.peerUDP(t, 7)
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := echo.ReadFrom(buf)
			if err != nil {
				return
			}
			echo.WriteTo(append([]byte("echo:"), buf[:n]...), from)
		}
	}()
	u, err := p.s.ListenUDP(netip.AddrPort{})
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	u.SetDeadline(time.Now().Add(10 * time.Second))
	to := net.UDPAddrFromAddrPort(netip.AddrPortFrom(peerIP, 7))
	if _, err := u.WriteTo([]byte("ping"), to); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 100)
	n, from, err := u.ReadFrom(buf)
	if err != nil || string(buf[:n]) != "echo:ping" || from.String() != "10.0.0.2:7" {
		t.Fatalf("ReadFrom = %q from %v, %v", buf[:n], from, err)
	}

	// A connected UDP conn, as DNS uses.
	c, err := p.s.DialContext(context.Background(), "udp", "10.0.0.2:7")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	big := bytes.Repeat([]byte{0xa5}, 1400)
	if _, err := c.Write(big); err != nil {
		t.Fatal(err)
	}
	buf = make([]byte, 2048)
	n, err = c.Read(buf)
	if err != nil || !bytes.Equal(buf[:n], append([]byte("echo:"), big...)) {
		t.Fatalf("connected Read: %d bytes, %v", n, err)
	}
	if _, err := c.Write(make([]byte, 1500)); err == nil {
		t.Fatal("a datagram larger than the MTU was accepted")
	}
	// Read deadline on UDP.
	c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if _, err := c.Read(buf); err == nil {
		t.Fatal("Read without a datagram did not time out")
	}
}

func TestUDPBroadcastBeforeConfigure(t *testing.T) {
	p := newUnconfiguredPair(t, gvisorlink.Config{}, Options{})
	server := p.peerUDP(t, 67)
	client, err := p.s.ListenUDP(netip.AddrPortFrom(netip.IPv4Unspecified(), 68))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	client.SetDeadline(time.Now().Add(10 * time.Second))
	server.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := client.WriteTo([]byte("DISCOVER"), &net.UDPAddr{IP: net.IPv4bcast, Port: 67}); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 100)
	n, from, err := server.ReadFrom(buf)
	if err != nil || string(buf[:n]) != "DISCOVER" || from.String() != "0.0.0.0:68" {
		t.Fatalf("server got %q from %v, %v", buf[:n], from, err)
	}
	if _, err := server.WriteTo([]byte("OFFER"), &net.UDPAddr{IP: net.IPv4bcast, Port: 68}); err != nil {
		t.Fatal(err)
	}
	n, from, err = client.ReadFrom(buf)
	if err != nil || string(buf[:n]) != "OFFER" || from.String() != "10.0.0.2:67" {
		t.Fatalf("client got %q from %v, %v", buf[:n], from, err)
	}
	if _, err := p.s.DialContext(context.Background(), "tcp", "10.0.0.2:80"); err == nil {
		t.Fatal("TCP dial without an address succeeded")
	}
}

// A DHCP server may answer to the offered address, unicast to our MAC,
// before we have that address.
func TestUDPUnicastOfferBeforeConfigure(t *testing.T) {
	p := newUnconfiguredScriptPeer(t, Options{})
	u, err := p.s.ListenUDP(netip.AddrPortFrom(netip.IPv4Unspecified(), 68))
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	offered := netip.MustParseAddr("10.0.0.1")
	p.sendUDP(offered, []byte("corrupt"), true)
	p.sendUDP(offered, []byte("OFFER"), false)
	u.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 100)
	n, from, err := u.ReadFromUDPAddrPort(buf)
	if err != nil || string(buf[:n]) != "OFFER" || from != netip.AddrPortFrom(peerIP, 67) {
		t.Fatalf("got %q from %v, %v", buf[:n], from, err)
	}
	if st := p.s.Stats(); st.Malformed != 1 {
		t.Fatalf("malformed count %d, want 1 (the corrupt datagram)", st.Malformed)
	}
}

func TestEchoAnsweredForGVisor(t *testing.T) {
	p := newPair(t, gvisorlink.Config{}, Options{})
	var wq waiter.Queue
	ep, err := p.link.Peer.NewEndpoint(icmp.ProtocolNumber4, gvipv4.ProtocolNumber, &wq)
	if err != nil {
		t.Fatal(err)
	}
	defer ep.Close()
	we, ready := waiter.NewChannelEntry(waiter.ReadableEvents)
	wq.EventRegister(&we)
	defer wq.EventUnregister(&we)
	req := make([]byte, 8+32)
	req[0] = 8 // echo request; gVisor fills in the identifier and checksum
	binary.BigEndian.PutUint16(req[6:8], 1)
	copy(req[8:], "ociboot echo payload, 32 bytes!!")
	if _, err := ep.Write(bytes.NewReader(req), tcpip.WriteOptions{To: &tcpip.FullAddress{NIC: 1, Addr: tcpip.AddrFrom4(ourAddr.Addr().As4())}}); err != nil {
		t.Fatalf("gVisor ping: %v", err)
	}
	deadline := time.After(10 * time.Second)
	for {
		var out bytes.Buffer
		_, err := ep.Read(&out, tcpip.ReadOptions{})
		if err == nil {
			reply := out.Bytes()
			if len(reply) != len(req) || reply[0] != 0 || !bytes.Equal(reply[8:], req[8:]) {
				t.Fatalf("echo reply % x", reply)
			}
			break
		}
		if _, ok := err.(*tcpip.ErrWouldBlock); !ok {
			t.Fatalf("gVisor read: %v", err)
		}
		select {
		case <-ready:
		case <-deadline:
			t.Fatal("no echo reply")
		}
	}
	if st := p.s.Stats(); st.EchoReplies != 1 {
		t.Fatalf("echo replies %d", st.EchoReplies)
	}
}
