package virtio_test

import (
	"encoding/binary"
	"testing"

	"github.com/ociboot/ociboot/nic/virtio"
	"github.com/ociboot/ociboot/nic/virtio/devmodel"
)

const memSize = 8 << 20

// bed is a driver opened on a device model.
type bed struct {
	mem  *devmodel.Memory
	dev  *devmodel.Device
	net  *virtio.Net
	sent [][]byte // frames the device took from the transmit queue
}

func newBed(t testing.TB, cfg devmodel.Config, opts virtio.Options) *bed {
	t.Helper()
	b := &bed{mem: devmodel.NewMemory(memSize)}
	user := cfg.OnTransmit
	cfg.OnTransmit = func(f []byte) {
		b.sent = append(b.sent, append([]byte(nil), f...))
		if user != nil {
			user(f)
		}
	}
	b.dev = devmodel.New(b.mem, cfg)
	n, err := virtio.Open(b.dev, b.mem, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	b.net = n
	return b
}

// close shuts the driver down and checks the device is reset, all DMA
// memory is back and the driver never broke the protocol.
func (b *bed) close(t testing.TB) {
	t.Helper()
	if err := b.net.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if s := b.dev.Status(); s != 0 {
		t.Errorf("device status after Close = %#x, want 0", s)
	}
	if a, n := b.mem.Allocated(), b.mem.Buffers(); a != 0 || n != 0 {
		t.Errorf("after Close %d bytes in %d DMA buffers still allocated", a, n)
	}
	if err := b.dev.Err(); err != nil {
		t.Errorf("device model saw a driver violation: %v", err)
	}
}

// frame builds a test frame of n bytes carrying seq: broadcast destination,
// a fixed source, ethertype 0x88b5 (local experimental), then seq and a
// pattern derived from it.
func frame(seq uint32, n int) []byte {
	f := make([]byte, max(n, 18))
	copy(f, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0, 0, 0, 0, 1, 0x88, 0xb5})
	binary.BigEndian.PutUint32(f[14:], seq)
	for i := 18; i < n; i++ {
		f[i] = byte(seq*7 + uint32(i))
	}
	return f[:n]
}

// frameSize varies sizes over 60..1514 without a short period.
func frameSize(seq uint32) int { return 60 + int(seq*7919%1455) }

func checkFrame(t testing.TB, got []byte, seq uint32, n int) {
	t.Helper()
	if len(got) != n {
		t.Fatalf("frame %d: %d bytes, want %d", seq, len(got), n)
	}
	want := frame(seq, n)
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("frame %d: byte %d = %#x, want %#x", seq, i, got[i], want[i])
		}
	}
}

func bufs(count, size int) [][]byte {
	b := make([][]byte, count)
	for i := range b {
		b[i] = make([]byte, size)
	}
	return b
}
