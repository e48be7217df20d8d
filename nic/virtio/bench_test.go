package virtio_test

import (
	"testing"

	"github.com/ociboot/ociboot/nic/virtio"
	"github.com/ociboot/ociboot/nic/virtio/devmodel"
)

// BenchmarkLoopback sends 1514-byte frames through the transmit queue; the
// model loops each back into the receive queue, and the driver takes it
// out again. One op is one frame both ways; MB/s counts it once.
func BenchmarkLoopback(b *testing.B) {
	const size, batch = 1514, 32
	mem := devmodel.NewMemory(memSize)
	var dev *devmodel.Device
	dev = devmodel.New(mem, devmodel.Config{OnTransmit: func(f []byte) { dev.Inject(f) }})
	n, err := virtio.Open(dev, mem, virtio.Options{})
	if err != nil {
		b.Fatal(err)
	}
	out := make([][]byte, batch)
	for i := range out {
		out[i] = frame(uint32(i), size)
	}
	in := bufs(batch, size)
	b.SetBytes(size)
	b.ReportAllocs()
	b.ResetTimer()
	got := 0
	for sent := 0; sent < b.N; {
		c, err := n.Transmit(out[:min(batch, b.N-sent)])
		if err != nil {
			b.Fatal(err)
		}
		sent += c
		r, err := n.Receive(in)
		if err != nil {
			b.Fatal(err)
		}
		got += r
	}
	b.StopTimer()
	if got != b.N {
		b.Fatalf("received %d of %d frames", got, b.N)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "frames/s")
	if err := n.Close(); err != nil {
		b.Fatal(err)
	}
	if err := dev.Err(); err != nil {
		b.Fatal(err)
	}
}
