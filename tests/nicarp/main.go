// Command nicarp proves the virtio-net path inside UEFI: it takes the
// virtio-net device from the firmware, asks for the MAC address of the
// gateway (10.0.2.2 on QEMU user networking) with ARP, and waits for the
// reply. It exits 0 when the reply arrives.
package main

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/ociboot/ociboot/nic"
	"github.com/ociboot/ociboot/nic/virtio"
)

var (
	ourIP     = net.IPv4(10, 0, 2, 15).To4()
	gatewayIP = net.IPv4(10, 0, 2, 2).To4()
)

func main() {
	start := time.Now()
	dev, err := nic.OpenVirtio(virtio.Options{})
	if err != nil {
		fmt.Println("nicarp: FAIL", err)
		os.Exit(1)
	}
	mac, err := dev.MAC()
	if err != nil {
		fmt.Println("nicarp: FAIL", err)
		os.Exit(1)
	}
	kind := "modern"
	if dev.Transitional() {
		kind = "transitional"
	}
	fmt.Printf("nicarp: virtio-net (%s) up in %v, MAC %v, link up %v, features %v\n",
		kind, time.Since(start).Round(time.Millisecond), mac, dev.LinkUp(), dev.Features())

	req := arpRequest(mac)
	bufs := make([][]byte, 16)
	for i := range bufs {
		bufs[i] = make([]byte, 1536)
	}
	deadline := time.Now().Add(10 * time.Second)
	var reply net.HardwareAddr
	for sent := 0; reply == nil && time.Now().Before(deadline); sent++ {
		if n, err := dev.Transmit([][]byte{req}); err != nil || n != 1 {
			fmt.Println("nicarp: FAIL transmit:", n, err)
			os.Exit(1)
		}
		t := time.Now()
		for reply == nil && time.Since(t) < 500*time.Millisecond {
			n, err := dev.Receive(bufs)
			if err != nil {
				fmt.Println("nicarp: FAIL receive:", err)
				os.Exit(1)
			}
			for _, f := range bufs[:n] {
				reply = arpReplyFrom(f, gatewayIP)
				if reply != nil {
					break
				}
			}
			if n == 0 {
				time.Sleep(time.Millisecond)
			}
			bufs = bufs[:cap(bufs)]
			for i := range bufs {
				bufs[i] = bufs[i][:cap(bufs[i])]
			}
		}
	}
	st := dev.Stats()
	if err := dev.Close(); err != nil {
		fmt.Println("nicarp: FAIL close:", err)
		os.Exit(1)
	}
	if reply == nil {
		fmt.Printf("nicarp: FAIL no ARP reply from %v (stats %+v)\n", gatewayIP, st)
		os.Exit(1)
	}
	fmt.Printf("nicarp: gateway %v is at %v after %v (stats %+v)\n", gatewayIP, reply, time.Since(start).Round(time.Millisecond), st)
}

// arpRequest builds a broadcast who-has for the gateway.
func arpRequest(mac net.HardwareAddr) []byte {
	f := make([]byte, 60) // minimum Ethernet frame without FCS
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
	return f
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
