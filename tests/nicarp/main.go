// Command nicarp proves a NIC path inside UEFI: it brings up the card
// through the chooser (its one argument, auto, virtio or snp, picks the
// path), runs the NIC poller actor, asks for the MAC address of the gateway
// (10.0.2.2 on QEMU user networking) with ARP through the poller's batch
// channels, and waits for the reply. It exits 0 when the reply arrives.
package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/ociboot/ociboot/nic"
)

var (
	ourIP     = net.IPv4(10, 0, 2, 15).To4()
	gatewayIP = net.IPv4(10, 0, 2, 2).To4()
)

func fail(format string, args ...any) {
	fmt.Printf("nicarp: FAIL "+format+"\n", args...)
	os.Exit(1)
}

func main() {
	start := time.Now()
	path := nic.PathAuto
	if len(os.Args) > 1 {
		p, err := nic.ParsePath(os.Args[1])
		if err != nil {
			fail("%v", err)
		}
		path = p
	}
	logf := func(format string, args ...any) { fmt.Printf(format+"\n", args...) }
	dev, err := nic.Open(path, logf)
	if err != nil {
		fail("%v", err)
	}
	fmt.Printf("nicarp: %v up in %v, MAC %v, MTU %d\n", dev, time.Since(start).Round(time.Millisecond), dev.MAC(), dev.MTU())

	p := nic.NewPoller(dev, logf)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	select {
	case <-p.Ready():
	case <-time.After(10 * time.Second):
		fail("link not up after 10s")
	}

	var reply net.HardwareAddr
	deadline := time.After(10 * time.Second)
	resend := time.NewTicker(500 * time.Millisecond)
	send := func() {
		b := p.Pool().Get()
		arpRequest(b.Append(60), dev.MAC())
		p.TX() <- b
	}
	send()
	for reply == nil {
		select {
		case b := <-p.RX():
			for _, f := range b.Bufs {
				if reply = arpReplyFrom(f, gatewayIP); reply != nil {
					break
				}
			}
			b.Release()
		case <-resend.C:
			send()
		case err := <-done:
			fail("poller stopped: %v", err)
		case <-deadline:
			fail("no ARP reply from %v", gatewayIP)
		}
	}
	cancel()
	if err := <-done; err != nil {
		fail("poller: %v", err)
	}
	c := p.Counters().Snapshot("nic")
	if err := dev.Close(); err != nil {
		fail("close: %v", err)
	}
	fmt.Printf("nicarp: gateway %v is at %v after %v (%d frames, %d bytes through the poller)\n",
		gatewayIP, reply, time.Since(start).Round(time.Millisecond), c.Messages, c.Bytes)
}

// arpRequest writes a broadcast who-has for the gateway into f, a
// minimum-size (60-byte) Ethernet frame without FCS.
func arpRequest(f []byte, mac net.HardwareAddr) {
	clear(f) // pooled buffers hold old frames
	copy(f[0:6], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	copy(f[6:12], mac)
	binary.BigEndian.PutUint16(f[12:], 0x0806)
	a := f[14:]
	binary.BigEndian.PutUint16(a[0:], 1)      // Ethernet
	binary.BigEndian.PutUint16(a[2:], 0x0800) // IPv4
	a[4], a[5] = 6, 4
	binary.BigEndian.PutUint16(a[6:], 1) // request
	copy(a[8:14], mac)
	copy(a[14:18], ourIP)
	copy(a[24:28], gatewayIP)
}

// arpReplyFrom returns the sender's MAC if f is an ARP reply from ip.
func arpReplyFrom(f []byte, ip net.IP) net.HardwareAddr {
	if len(f) < 42 || binary.BigEndian.Uint16(f[12:]) != 0x0806 {
		return nil
	}
	a := f[14:]
	if binary.BigEndian.Uint16(a[6:]) != 2 || !bytes.Equal(a[14:18], ip) {
		return nil
	}
	return net.HardwareAddr(append([]byte(nil), a[8:14]...))
}
