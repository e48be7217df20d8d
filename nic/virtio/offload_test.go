package virtio_test

import (
	"encoding/binary"
	"errors"
	"testing"

	"github.com/ociboot/ociboot/nic/csum"
	"github.com/ociboot/ociboot/nic/virtio"
	"github.com/ociboot/ociboot/nic/virtio/devmodel"
)

// offloadDevice offers the receive offloads as QEMU's virtio-net does on
// a tap backend.
var offloadDevice = devmodel.Config{Features: virtio.FeatureVersion1 | virtio.FeatureMAC | virtio.FeatureStatus | virtio.ReceiveOffloads}

const (
	ipHdr      = 14      // the IPv4 header's offset in a frame
	l4Hdr      = 14 + 20 // the transport header's (no IP options)
	protoTCP   = 6
	protoUDP   = 17
	tcpCsumOff = 16
	udpCsumOff = 6
)

// segment builds an Ethernet frame with an IPv4 packet of proto carrying
// payload bytes derived from seq, as a host hands it over with the
// receive offloads: the transport checksum field holds only the folded
// pseudo-header sum (the partial checksum), the IPv4 header is complete.
func segment(seq uint32, proto uint8, payload int) []byte {
	l4 := 20
	if proto == protoUDP {
		l4 = 8
	}
	f := make([]byte, l4Hdr+l4+payload)
	copy(f, []byte{0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 0x02, 0, 0, 0, 0, 1, 0x08, 0x00})
	ip := f[ipHdr:]
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:], uint16(len(f)-ipHdr))
	ip[8], ip[9] = 64, proto
	copy(ip[12:], []byte{10, 0, 0, 1, 10, 0, 0, 2})
	binary.BigEndian.PutUint16(ip[10:], csum.Checksum(ip[:20]))
	t := f[l4Hdr:]
	if proto == protoTCP {
		binary.BigEndian.PutUint32(t[4:], seq)
		t[12] = 5 << 4
	} else {
		binary.BigEndian.PutUint16(t[4:], uint16(len(t)))
	}
	for i := l4; i < len(t); i++ {
		t[i] = byte(seq*13 + uint32(i))
	}
	field := tcpCsumOff
	if proto == protoUDP {
		field = udpCsumOff
	}
	binary.BigEndian.PutUint16(t[field:], ^csum.Fold(pseudo(f, proto)))
	return f
}

// pseudo is the running sum of the frame's IPv4 pseudo-header.
func pseudo(f []byte, proto uint8) uint64 {
	return csum.Sum(0, f[ipHdr+12:ipHdr+20]) + uint64(proto) + uint64(len(f)-l4Hdr)
}

// partial is the header a host sends with a segment: a partial checksum,
// and TCPV4 segmentation when the packet is larger than the MTU.
func partial(f []byte, proto uint8) devmodel.RxHeader {
	h := devmodel.RxHeader{Flags: 1, CsumStart: l4Hdr, CsumOffset: tcpCsumOff}
	if proto == protoUDP {
		h.CsumOffset = udpCsumOff
	}
	if proto == protoTCP && len(f) > 1514 {
		h.GSOType, h.GSOSize, h.HdrLen = 1, 1460, l4Hdr+20
	}
	return h
}

// checkSegment checks that got is want with its transport checksum
// completed.
func checkSegment(t *testing.T, got, want []byte, proto uint8) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("segment: %d bytes, want %d", len(got), len(want))
	}
	if c := csum.Fold(csum.Sum(pseudo(got, proto), got[l4Hdr:])); c != 0 {
		t.Fatalf("segment: transport checksum does not verify (%#04x)", c)
	}
	field := l4Hdr + tcpCsumOff
	if proto == protoUDP {
		field = l4Hdr + udpCsumOff
	}
	for i := range want {
		if got[i] != want[i] && i != field && i != field+1 {
			t.Fatalf("segment: byte %d = %#x, want %#x", i, got[i], want[i])
		}
	}
}

// TestReceiveLargeSegments: segments of up to a full IPv4 packet arrive
// whole across merged buffers, in order with ordinary frames, through a
// ring small enough that every packet waits for buffers and the indices
// wrap; each frame's partial checksum is completed.
func TestReceiveLargeSegments(t *testing.T) {
	b := newBed(t, offloadDevice, virtio.Options{QueueSize: 32})
	if f := b.net.Features(); f&virtio.ReceiveOffloads != virtio.ReceiveOffloads {
		t.Fatalf("features %v lack the receive offloads", f)
	}
	sizes := []int{65535 - 40, 60000, 1460, 0, 3000, 100, 64000, 8}
	rb := bufs(4, 1514)
	got, merged := 0, 0
	for seq := range uint32(40) {
		n := sizes[seq%uint32(len(sizes))]
		f := segment(seq, protoTCP, n)
		if 12+len(f) > 4096 { // a header and a frame beyond a page
			merged++
		}
		if !b.dev.InjectWithHeader(f, partial(f, protoTCP)) {
			t.Fatalf("segment %d dropped by the device", seq)
		}
		// Receive only every other time, so packets queue behind a ring
		// that holds barely two of the largest.
		if seq%2 == 0 {
			continue
		}
		for b.dev.Backlog() > 0 || got <= int(seq) {
			c, err := b.net.Receive(rb)
			if err != nil {
				t.Fatalf("Receive: %v", err)
			}
			if c == 0 {
				t.Fatalf("nothing received with %d frames waiting", b.dev.Backlog())
			}
			for _, f := range rb[:c] {
				checkSegment(t, f, segment(uint32(got), protoTCP, sizes[got%len(sizes)]), protoTCP)
				got++
			}
		}
	}
	st := b.net.Stats()
	if st.RxFrames != 40 || st.RxMerged != uint64(merged) || st.RxCsumCompleted != 40 || st.RxDrops != 0 {
		t.Errorf("stats %+v, want 40 frames, %d merged, 40 checksums completed, no drops", st, merged)
	}
	for i, f := range rb {
		if cap(f) != 1514 && cap(f) != b.net.MaxReceive() {
			t.Errorf("buffer %d has capacity %d: neither the caller's nor MaxReceive", i, cap(f))
		}
	}
	b.close(t)
}

// TestReceiveOffloadHeaders: what the driver does with each kind of
// header a device may send with the offloads on.
func TestReceiveOffloadHeaders(t *testing.T) {
	udp := segment(1, protoUDP, 200)
	// A UDP datagram whose checksum comes out as zero must carry 0xffff
	// (zero means "no checksum"): find a last payload word that makes it so.
	zero := segment(2, protoUDP, 30)
	for v := range 1 << 16 {
		binary.BigEndian.PutUint16(zero[len(zero)-2:], uint16(v))
		if csum.Fold(csum.Sum(0, zero[l4Hdr:])) == 0 {
			break
		}
	}
	if csum.Fold(csum.Sum(0, zero[l4Hdr:])) != 0 {
		t.Fatal("no payload gives a zero checksum")
	}
	valid := frame(3, 400)
	for _, tc := range []struct {
		name  string
		frame []byte
		hdr   devmodel.RxHeader
		want  string // "ok", "drop"
	}{
		{"partial UDP checksum", udp, partial(udp, protoUDP), "ok"},
		{"partial checksum that is zero", zero, partial(zero, protoUDP), "ok"},
		{"checksum already valid", valid, devmodel.RxHeader{Flags: 2}, "ok"},
		{"no header", valid, devmodel.RxHeader{}, "ok"},
		{"UDP segmentation, not negotiated", udp, devmodel.RxHeader{Flags: 1, GSOType: 3, CsumStart: l4Hdr, CsumOffset: udpCsumOff}, "drop"},
		{"TCPv6 segmentation, not negotiated", udp, devmodel.RxHeader{Flags: 1, GSOType: 4, CsumStart: l4Hdr, CsumOffset: udpCsumOff}, "drop"},
		{"segmentation without a partial checksum", udp, devmodel.RxHeader{Flags: 2, GSOType: 1}, "drop"},
		{"checksum field past the end", udp, devmodel.RxHeader{Flags: 1, CsumStart: uint16(len(udp) - 1), CsumOffset: 0}, "drop"},
		{"checksum start past the end", udp, devmodel.RxHeader{Flags: 1, CsumStart: 0xfff0, CsumOffset: 8}, "drop"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newBed(t, offloadDevice, virtio.Options{QueueSize: 8})
			if !b.dev.InjectWithHeader(tc.frame, tc.hdr) {
				t.Fatal("the device dropped the frame")
			}
			b.dev.Inject(frame(9, 60)) // a plain frame behind it still comes
			rb := bufs(2, 1514)
			c, err := b.net.Receive(rb)
			if err != nil {
				t.Fatalf("Receive: %v", err)
			}
			st := b.net.Stats()
			switch tc.want {
			case "ok":
				if c != 2 || st.RxDrops != 0 {
					t.Fatalf("Receive = %d with %d drops, want 2 and none", c, st.RxDrops)
				}
				if tc.hdr.Flags&1 == 0 {
					checkFrame(t, rb[0], 3, len(valid))
				} else {
					checkSegment(t, rb[0], tc.frame, protoUDP)
					if field := binary.BigEndian.Uint16(rb[0][l4Hdr+udpCsumOff:]); field == 0 {
						t.Errorf("UDP checksum field is 0, which means none")
					}
				}
				checkFrame(t, rb[1], 9, 60)
			case "drop":
				if c != 1 || st.RxDrops != 1 {
					t.Fatalf("Receive = %d with %d drops, want the plain frame only and 1 drop", c, st.RxDrops)
				}
				checkFrame(t, rb[0], 9, 60)
			}
			b.close(t)
		})
	}
}

// TestReceiveShortMerge: a packet that claims more buffers than the
// device used is a device fault, not a misread of the next packet.
func TestReceiveShortMerge(t *testing.T) {
	b := newBed(t, offloadDevice, virtio.Options{QueueSize: 8})
	b.dev.SetFault(devmodel.RxQueue, devmodel.FaultShortMerge)
	f := segment(1, protoTCP, 10000)
	b.dev.InjectWithHeader(f, partial(f, protoTCP))
	_, err := b.net.Receive(bufs(4, 1514))
	if !errors.Is(err, virtio.ErrDeviceFault) {
		t.Fatalf("Receive: %v, want a device fault", err)
	}
	if _, err := b.net.Receive(bufs(4, 1514)); !errors.Is(err, virtio.ErrDeviceFault) {
		t.Errorf("a broken device works again: %v", err)
	}
	b.dev.SetFault(devmodel.RxQueue, devmodel.FaultNone)
	if err := b.net.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

// TestNoOffloadsNoHeaders: without the offloads a device may not send
// offload headers, and large frames are refused by the model as a real
// device would never build them.
func TestNoOffloadsNoHeaders(t *testing.T) {
	b := newBed(t, offloadDevice, virtio.Options{NoOffloads: true})
	f := segment(1, protoTCP, 100)
	if b.dev.InjectWithHeader(f, partial(f, protoTCP)) {
		t.Error("the model took an offload header the driver did not negotiate")
	}
	if b.net.MaxReceive() != b.net.MaxFrame() {
		t.Errorf("MaxReceive %d without offloads, want MaxFrame %d", b.net.MaxReceive(), b.net.MaxFrame())
	}
	b.close(t)
}
