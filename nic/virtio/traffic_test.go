package virtio_test

import (
	"errors"
	"testing"

	"github.com/ociboot/ociboot/nic/virtio"
	"github.com/ociboot/ociboot/nic/virtio/devmodel"
)

// transmitAll pushes count frames through Transmit in batches of varying
// size, resending what backpressure refused, and returns the batch calls.
func transmitAll(t *testing.T, n *virtio.Net, first uint32, count int, size func(uint32) int) {
	t.Helper()
	batch := make([][]byte, 0, 16)
	for seq := first; seq < first+uint32(count); {
		batch = batch[:0]
		for i := 0; i < 1+int(seq%13) && seq+uint32(i) < first+uint32(count); i++ {
			s := seq + uint32(i)
			batch = append(batch, frame(s, size(s)))
		}
		c, err := n.Transmit(batch)
		if err != nil {
			t.Fatalf("Transmit at frame %d: %v", seq, err)
		}
		if c == 0 {
			t.Fatalf("Transmit at frame %d made no progress", seq)
		}
		seq += uint32(c)
	}
}

// receiveAll injects count frames and takes them back with Receive in
// batches of varying size, checking order and contents.
func receiveAll(t *testing.T, b *bed, first uint32, count int, size func(uint32) int) {
	t.Helper()
	rb := bufs(11, b.net.MaxFrame())
	next := first
	for seq := first; seq < first+uint32(count); seq++ {
		if !b.dev.Inject(frame(seq, size(seq))) {
			t.Fatalf("device dropped frame %d", seq)
		}
		// Drain only now and then, so the device's backlog and the
		// ring both fill up.
		if seq%29 != 0 && seq != first+uint32(count)-1 {
			continue
		}
		for next <= seq {
			c, err := b.net.Receive(rb[:1+int(next%11)])
			if err != nil {
				t.Fatalf("Receive at frame %d: %v", next, err)
			}
			if c == 0 {
				t.Fatalf("Receive returned nothing, frame %d outstanding (device backlog %d)", next, b.dev.Backlog())
			}
			for _, f := range rb[:c] {
				checkFrame(t, f, next, size(next))
				next++
			}
		}
	}
}

func TestWrapAround(t *testing.T) {
	const count = 10000
	for _, qs := range []int{8, 256} {
		b := newBed(t, devmodel.Config{}, virtio.Options{QueueSize: qs})
		transmitAll(t, b.net, 0, count, frameSize)
		if len(b.sent) != count {
			t.Fatalf("ring %d: device got %d frames, want %d", qs, len(b.sent), count)
		}
		for i, f := range b.sent {
			checkFrame(t, f, uint32(i), frameSize(uint32(i)))
		}
		receiveAll(t, b, 0, count, frameSize)
		st := b.net.Stats()
		var bytes uint64
		for i := range uint32(count) {
			bytes += uint64(frameSize(i))
		}
		if st.TxFrames != count || st.RxFrames != count || st.TxBytes != bytes || st.RxBytes != bytes || st.RxDrops != 0 {
			t.Errorf("ring %d: stats %+v, want %d frames and %d bytes each way", qs, st, count, bytes)
		}
		if ds := b.dev.Stats(); ds.TxFrames != count || ds.RxFrames != count || ds.RxDropped != 0 {
			t.Errorf("ring %d: device stats %+v", qs, ds)
		}
		b.close(t)
	}
}

// TestIndexWrap runs more than 65536 buffers through each queue, so the
// free-running 16-bit avail and used indices wrap.
func TestIndexWrap(t *testing.T) {
	const count = 70000
	small := func(seq uint32) int { return 60 + int(seq%5) }
	b := newBed(t, devmodel.Config{QueueSize: 4}, virtio.Options{})
	transmitAll(t, b.net, 0, count, small)
	if len(b.sent) != count {
		t.Fatalf("device got %d frames, want %d", len(b.sent), count)
	}
	for i, f := range b.sent {
		checkFrame(t, f, uint32(i), small(uint32(i)))
	}
	receiveAll(t, b, 0, count, small)
	b.close(t)
}

func TestNotificationSuppression(t *testing.T) {
	b := newBed(t, devmodel.Config{NoNotify: true}, virtio.Options{QueueSize: 16})
	rxBefore := b.dev.Notifications(devmodel.RxQueue)
	for i := range 10 {
		if c, err := b.net.Transmit([][]byte{frame(uint32(i), 100)}); c != 1 || err != nil {
			t.Fatalf("Transmit = %d, %v", c, err)
		}
	}
	if len(b.sent) != 0 {
		t.Fatalf("device sent %d frames without being stepped", len(b.sent))
	}
	b.dev.Step() // the device polls instead
	if len(b.sent) != 10 {
		t.Fatalf("device sent %d frames after Step, want 10", len(b.sent))
	}
	for i := range 10 {
		b.dev.Inject(frame(uint32(i), 200))
	}
	rb := bufs(16, 1514)
	if c, err := b.net.Receive(rb); c != 10 || err != nil {
		t.Fatalf("Receive = %d, %v", c, err)
	}
	if tx, rx := b.dev.Notifications(devmodel.TxQueue), b.dev.Notifications(devmodel.RxQueue)-rxBefore; tx != 0 || rx != 0 {
		t.Errorf("driver rang the doorbell %d (tx) and %d (rx) times under NO_NOTIFY", tx, rx)
	}
	if b.net.Stats().Notifications != 0 {
		t.Errorf("driver counted %d notifications", b.net.Stats().Notifications)
	}
	b.close(t)

	// Without suppression every batch that adds buffers notifies.
	b = newBed(t, devmodel.Config{}, virtio.Options{QueueSize: 16})
	b.net.Transmit([][]byte{frame(0, 60), frame(1, 60)})
	b.net.Transmit([][]byte{frame(2, 60)})
	if got := b.dev.Notifications(devmodel.TxQueue); got != 2 {
		t.Errorf("%d transmit notifications for 2 batches", got)
	}
	b.close(t)
}

func TestTransmitBackpressure(t *testing.T) {
	b := newBed(t, devmodel.Config{}, virtio.Options{QueueSize: 8})
	b.dev.SetFault(devmodel.TxQueue, devmodel.FaultStall)
	batch := make([][]byte, 5)
	seq := uint32(0)
	queued := 0
	// The device never completes: the driver fills the ring, then refuses
	// without blocking, however often it is asked.
	for range 1000 {
		for i := range batch {
			batch[i] = frame(seq+uint32(i), 80)
		}
		c, err := b.net.Transmit(batch)
		if err != nil {
			t.Fatalf("Transmit on a stalled device: %v", err)
		}
		seq += uint32(c)
		queued += c
	}
	if queued != 8 {
		t.Fatalf("queued %d frames on a stalled ring of 8", queued)
	}
	if st := b.net.Stats(); st.TxFull != 1000*5-8 || st.TxFrames != 8 {
		t.Errorf("stats %+v: want TxFull %d, TxFrames 8", st, 1000*5-8)
	}
	// Released, the device sends the 8 in order and the ring frees up.
	b.dev.SetFault(devmodel.TxQueue, devmodel.FaultNone)
	if len(b.sent) != 8 {
		t.Fatalf("device sent %d after the stall, want 8", len(b.sent))
	}
	for i, f := range b.sent {
		checkFrame(t, f, uint32(i), 80)
	}
	if c, err := b.net.Transmit([][]byte{frame(8, 80)}); c != 1 || err != nil {
		t.Fatalf("Transmit after the stall = %d, %v", c, err)
	}
	b.close(t)
}

func TestReceiveStall(t *testing.T) {
	b := newBed(t, devmodel.Config{}, virtio.Options{QueueSize: 8})
	b.dev.SetFault(devmodel.RxQueue, devmodel.FaultStall)
	for i := range 20 {
		b.dev.Inject(frame(uint32(i), 90))
	}
	rb := bufs(4, 1514)
	for range 100 {
		if c, err := b.net.Receive(rb); c != 0 || err != nil {
			t.Fatalf("Receive on a stalled device = %d, %v", c, err)
		}
	}
	b.dev.SetFault(devmodel.RxQueue, devmodel.FaultNone)
	got := 0
	for got < 20 {
		c, err := b.net.Receive(rb)
		if err != nil || c == 0 {
			t.Fatalf("Receive after stall = %d, %v with %d of 20", c, err, got)
		}
		for _, f := range rb[:c] {
			checkFrame(t, f, uint32(got), 90)
			got++
		}
	}
	b.close(t)
}

func TestReceiveDrops(t *testing.T) {
	b := newBed(t, devmodel.Config{}, virtio.Options{QueueSize: 8})
	b.dev.Inject(frame(0, 1000))
	b.dev.Inject(make([]byte, 10)) // runt: shorter than an Ethernet header
	b.dev.Inject(frame(2, 100))
	small := make([]byte, 0, 500)
	rb := [][]byte{small, make([]byte, 0, 500), make([]byte, 0, 500)}
	c, err := b.net.Receive(rb)
	if c != 2 || err != nil {
		t.Fatalf("Receive = %d, %v; want the two frames that are not runts", c, err)
	}
	// The frame too large for its 500-byte buffer came in a new one.
	checkFrame(t, rb[0], 0, 1000)
	if cap(rb[0]) != b.net.MaxReceive() || &rb[0][:1][0] == &small[:1][0] {
		t.Errorf("the large frame's buffer has capacity %d, want a new one of %d", cap(rb[0]), b.net.MaxReceive())
	}
	checkFrame(t, rb[1], 2, 100)
	if st := b.net.Stats(); st.RxDrops != 1 || st.RxFrames != 2 {
		t.Errorf("stats %+v, want 1 drop and 2 frames", st)
	}
	// Dropped frames' buffers went back: the whole ring still works.
	for i := range 8 {
		b.dev.Inject(frame(uint32(10+i), 60))
	}
	rb = bufs(8, 1514)
	if c, err := b.net.Receive(rb); c != 8 || err != nil {
		t.Fatalf("Receive after drops = %d, %v; want 8", c, err)
	}
	if c, err := b.net.Receive(nil); c != 0 || err != nil {
		t.Errorf("Receive(nil) = %d, %v", c, err)
	}
	b.close(t)
}

func TestTransmitFrameSize(t *testing.T) {
	b := newBed(t, devmodel.Config{}, virtio.Options{QueueSize: 8})
	for _, bad := range [][]byte{make([]byte, 13), make([]byte, 1515), nil} {
		c, err := b.net.Transmit([][]byte{frame(0, 60), bad, frame(1, 60)})
		if c != 1 || !errors.Is(err, virtio.ErrFrameSize) {
			t.Errorf("Transmit with a %d-byte frame = %d, %v; want 1, ErrFrameSize", len(bad), c, err)
		}
	}
	if len(b.sent) != 3 {
		t.Errorf("device sent %d frames, want the 3 good leaders", len(b.sent))
	}
	// A bad frame is the caller's error, not the device's: still usable.
	if c, err := b.net.Transmit([][]byte{frame(5, 14), frame(6, 1514)}); c != 2 || err != nil {
		t.Errorf("Transmit of the extreme sizes = %d, %v", c, err)
	}
	b.close(t)
}

func TestHostileDevice(t *testing.T) {
	for _, tc := range []struct {
		name  string
		queue int
		fault devmodel.Fault
		batch int // receive batch size
		want  string
	}{
		{"tx used index jump", devmodel.TxQueue, devmodel.FaultUsedIdxJump, 0, "used index moved"},
		{"tx bogus id", devmodel.TxQueue, devmodel.FaultBogusID, 0, "names descriptor 15, ring has 8"},
		{"tx not posted", devmodel.TxQueue, devmodel.FaultNotPosted, 0, "not outstanding"},
		// One buffer outstanding, two completions: the index check fires
		// before the entries are looked at.
		{"tx duplicate", devmodel.TxQueue, devmodel.FaultDuplicate, 0, "(2 entries) with 1 buffers outstanding"},
		{"rx used index jump", devmodel.RxQueue, devmodel.FaultUsedIdxJump, 4, "used index moved"},
		{"rx bogus id", devmodel.RxQueue, devmodel.FaultBogusID, 4, "names descriptor 15"},
		{"rx oversize length", devmodel.RxQueue, devmodel.FaultOversizeLen, 4, "used length 1527 exceeds its 1526-byte buffer"},
		{"rx duplicate in one batch", devmodel.RxQueue, devmodel.FaultDuplicate, 4, "not outstanding"},
		// With a batch of one the first completion is consumed and its
		// buffer reposted before the copy is seen: caught all the same.
		{"rx duplicate across batches", devmodel.RxQueue, devmodel.FaultDuplicate, 1, "not outstanding"},
		{"rx not posted", devmodel.RxQueue, devmodel.FaultNotPosted, 4, "not outstanding"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newBed(t, devmodel.Config{}, virtio.Options{QueueSize: 8})
			n, dev := b.net, b.dev
			// Some good traffic first, so indices are not at zero.
			transmitAll(t, n, 0, 20, frameSize)
			receiveAll(t, b, 0, 20, frameSize)

			dev.SetFault(tc.queue, tc.fault)
			var err error
			rb := bufs(tc.batch, 1514)
			if tc.queue == devmodel.TxQueue {
				// The bad completion shows when the next Transmit reclaims.
				if _, err = n.Transmit([][]byte{frame(100, 60)}); err != nil {
					t.Fatalf("the transmit that triggers the fault failed early: %v", err)
				}
				_, err = n.Transmit([][]byte{frame(101, 60)})
			} else {
				dev.Inject(frame(100, 1514))
				for i := 0; i < 3 && err == nil; i++ {
					_, err = n.Receive(rb)
				}
			}
			if !errors.Is(err, virtio.ErrDeviceFault) {
				t.Fatalf("error %v, want ErrDeviceFault", err)
			}
			if !contains(err.Error(), tc.want) {
				t.Errorf("error %q does not mention %q", err, tc.want)
			}
			if !errors.Is(n.Err(), virtio.ErrDeviceFault) {
				t.Errorf("Err() = %v after a fault", n.Err())
			}
			// Broken: every call fails fast without touching the device.
			notes := dev.Notifications(0) + dev.Notifications(1)
			before := dev.Stats()
			for range 3 {
				if c, err := n.Transmit([][]byte{frame(200, 60)}); c != 0 || !errors.Is(err, virtio.ErrDeviceFault) {
					t.Errorf("Transmit on a broken device = %d, %v", c, err)
				}
				if c, err := n.Receive(bufs(4, 1514)); c != 0 || !errors.Is(err, virtio.ErrDeviceFault) {
					t.Errorf("Receive on a broken device = %d, %v", c, err)
				}
			}
			if n.LinkUp() {
				t.Error("broken device reports link up")
			}
			if dev.Notifications(0)+dev.Notifications(1) != notes || dev.Stats() != before {
				t.Error("broken driver kept using the device")
			}
			// Close still resets the device and returns all memory.
			b.close(t)
		})
	}
}

func contains(s, sub string) bool {
	return len(sub) == 0 || len(s) >= len(sub) && (s[:len(sub)] == sub || contains(s[1:], sub))
}
