package tests

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"regexp"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ociboot/ociboot/efirt/qemu"
	"github.com/ociboot/ociboot/tests/bed"
)

// watchWriter collects console text and closes ready when a line holding
// marker arrives.
type watchWriter struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	marker []byte
	ready  chan struct{}
	once   sync.Once
}

func (w *watchWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if bytes.Contains(w.buf.Bytes(), w.marker) {
		w.once.Do(func() { close(w.ready) })
	}
	return len(p), nil
}

func (w *watchWriter) String() string { w.mu.Lock(); defer w.mu.Unlock(); return w.buf.String() }

var nicbenchLine = regexp.MustCompile(`nicbench: (tx|rx) (\d+) frames (\d+) bytes in ([0-9.]+)s: ([0-9.]+) frames/s ([0-9.]+) MB/s`)

// BenchmarkNIC prints the raw ceiling of each NIC path under TCG: frames/s
// and MB/s of full-size frames transmitted by the guest (counted by the
// guest, checked on the tap) and received from a peer writing to the tap
// in the test namespace as fast as it can.
func BenchmarkNIC(b *testing.B) {
	for _, arch := range arches {
		for _, path := range []string{"virtio", "snp"} {
			b.Run(arch+"/"+path, func(b *testing.B) {
				efi := buildEFI(b, arch, "./tests/nicbench")
				for range b.N {
					nicBench(b, arch, path, efi)
				}
			})
		}
	}
}

func nicBench(b *testing.B, arch, path, efi string) {
	bd := bed.New(b, bed.Options{})
	sock, err := bd.PacketSocket()
	if err != nil {
		b.Fatal(err)
	}
	defer sock.Close()
	var onWire atomic.Int64
	go func() { // frames the guest sent that reached the host side of the tap
		buf := make([]byte, 2048)
		for {
			n, err := sock.Read(buf)
			if err != nil {
				return
			}
			if n >= 14 && binary.BigEndian.Uint16(buf[12:]) == 0x88b5 && !bytes.Equal(buf[6:12], peerMAC) {
				onWire.Add(1)
			}
		}
	}()
	con := &watchWriter{marker: []byte("nicbench: rx ready"), ready: make(chan struct{})}
	done := make(chan error, 1)
	go func() {
		res, err := qemu.Run(context.Background(), bd.Config(qemu.Config{Arch: arch, Timeout: 3 * time.Minute, Stdout: con}), efi, []string{path})
		if err == nil && (!res.Exited || res.Status != 0) {
			err = fmt.Errorf("nicbench: %s", res.Reason)
		}
		done <- err
	}()
	var blasted int
	select {
	case <-con.ready:
		frame := make([]byte, 1514)
		copy(frame, []byte{0x52, 0x54, 0x00, 0x12, 0x34, 0x56})
		copy(frame[6:], peerMAC)
		binary.BigEndian.PutUint16(frame[12:], 0x88b5)
		for end := time.Now().Add(3 * time.Second); time.Now().Before(end); {
			if _, err := sock.Write(frame); err == nil {
				blasted++
			}
		}
	case err := <-done:
		b.Fatalf("guest ended before receiving: %v\n%s", err, con)
	}
	if err := <-done; err != nil {
		b.Fatalf("%v\n%s", err, con)
	}
	for _, m := range nicbenchLine.FindAllStringSubmatch(con.String(), -1) {
		fps, _ := strconv.ParseFloat(m[5], 64)
		mbs, _ := strconv.ParseFloat(m[6], 64)
		b.ReportMetric(fps, m[1]+"-frames/s")
		b.ReportMetric(mbs, m[1]+"-MB/s")
	}
	b.ReportMetric(float64(onWire.Load()), "tx-frames-on-tap")
	b.Logf("host side: %d guest frames seen on the tap; %d frames written to it in 3 s\nconsole:\n%s", onWire.Load(), blasted, con)
}

var peerMAC = []byte{0x02, 0x00, 0x00, 0x00, 0x00, 0x99}
