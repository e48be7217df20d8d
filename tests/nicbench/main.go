// Command nicbench measures a NIC path's raw ceiling inside UEFI: it brings
// up the card through the chooser (its argument: auto, virtio or snp),
// transmits full-size frames as fast as the device takes them for two
// seconds, then counts the full-size frames a peer sends it, and prints
// frames/s and MB/s for both directions. No IP, no actors: the driver alone.
package main

import (
	"encoding/binary"
	"fmt"
	"os"
	"time"

	"github.com/ociboot/ociboot/nic"
)

// etherType marks benchmark frames (IEEE local experimental).
const etherType = 0x88b5

func main() {
	path := nic.PathAuto
	if len(os.Args) > 1 {
		p, err := nic.ParsePath(os.Args[1])
		if err != nil {
			fail(err)
		}
		path = p
	}
	dev, err := nic.Open(path, func(f string, a ...any) { fmt.Printf(f+"\n", a...) })
	if err != nil {
		fail(err)
	}
	for !dev.LinkUp() {
		time.Sleep(time.Millisecond)
	}
	frameLen := min(dev.MTU()+14, 1514)

	// Transmit.
	frame := make([]byte, frameLen)
	for i := range 6 {
		frame[i] = 0xff
	}
	copy(frame[6:], dev.MAC())
	binary.BigEndian.PutUint16(frame[12:], etherType)
	batch := make([][]byte, 32)
	for i := range batch {
		batch[i] = frame
	}
	var sent, full int
	start := time.Now()
	for time.Since(start) < 2*time.Second {
		n, err := dev.Transmit(batch)
		if err != nil {
			fail(err)
		}
		sent += n
		if n < len(batch) {
			full++
		}
	}
	report("tx", sent, sent*frameLen, time.Since(start))
	fmt.Printf("nicbench: tx queue was full %d times\n", full)

	// Receive.
	bufs := make([][]byte, 32)
	for i := range bufs {
		bufs[i] = make([]byte, dev.MaxFrame())
	}
	fmt.Println("nicbench: rx ready")
	var got, bytes int
	var first, last time.Time
	waitFrom := time.Now()
	for {
		for i := range bufs {
			bufs[i] = bufs[i][:cap(bufs[i])]
		}
		n, err := dev.Receive(bufs)
		if err != nil {
			fail(err)
		}
		now := time.Now()
		for _, f := range bufs[:n] {
			if len(f) >= 14 && binary.BigEndian.Uint16(f[12:]) == etherType {
				if got == 0 {
					first = now
				}
				got++
				bytes += len(f)
				last = now
			}
		}
		if got > 0 && now.Sub(last) > time.Second || got == 0 && now.Sub(waitFrom) > 20*time.Second {
			break
		}
	}
	if got < 2 {
		fail(fmt.Errorf("received %d benchmark frames", got))
	}
	report("rx", got-1, bytes-bytes/got, last.Sub(first)) // rates between the first and last frame
	if err := dev.Close(); err != nil {
		fail(err)
	}
}

func report(dir string, frames, bytes int, d time.Duration) {
	s := d.Seconds()
	fmt.Printf("nicbench: %s %d frames %d bytes in %.3fs: %.0f frames/s %.2f MB/s\n", dir, frames, bytes, s, float64(frames)/s, float64(bytes)/s/1e6)
}

func fail(err error) {
	fmt.Println("nicbench: FAIL", err)
	os.Exit(1)
}
