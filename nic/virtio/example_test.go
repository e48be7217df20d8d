package virtio_test

import (
	"fmt"

	"github.com/ociboot/ociboot/nic/virtio"
	"github.com/ociboot/ociboot/nic/virtio/devmodel"
)

// Open a driver on the device model, send a frame the model loops back,
// and receive it.
func ExampleOpen() {
	mem := devmodel.NewMemory(4 << 20)
	var dev *devmodel.Device
	dev = devmodel.New(mem, devmodel.Config{
		OnTransmit: func(f []byte) { dev.Inject(f) }, // loopback
	})
	n, err := virtio.Open(dev, mem, virtio.Options{QueueSize: 64})
	if err != nil {
		fmt.Println(err)
		return
	}
	mac, _ := n.MAC()
	fmt.Println("mac", mac, "features", n.Features(), "link", n.LinkUp())

	out := make([]byte, 60)
	copy(out, "\xff\xff\xff\xff\xff\xff\x52\x54\x00\x12\x34\x56\x88\xb5hello")
	sent, err := n.Transmit([][]byte{out})
	fmt.Println("sent", sent, err)

	in := [][]byte{make([]byte, n.MaxFrame())}
	got, err := n.Receive(in)
	fmt.Printf("received %d %v: %d bytes, %q\n", got, err, len(in[0]), in[0][14:19])

	fmt.Println("close", n.Close(), "status", dev.Status(), "allocated", mem.Allocated())
	// Output:
	// mac 52:54:00:12:34:56 features VERSION_1|STATUS|MAC link true
	// sent 1 <nil>
	// received 1 <nil>: 60 bytes, "hello"
	// close <nil> status 0 allocated 0
}
