package virtio_test

import (
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/ociboot/ociboot/nic/virtio"
	"github.com/ociboot/ociboot/nic/virtio/devmodel"
)

func TestOpenModern(t *testing.T) {
	mac := net.HardwareAddr{0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0xee}
	b := newBed(t, devmodel.Config{MAC: mac}, virtio.Options{})
	n, dev := b.net, b.dev
	if want := virtio.FeatureVersion1 | virtio.FeatureMAC | virtio.FeatureStatus; n.Features() != want || dev.DriverFeatures() != want {
		t.Errorf("features: driver %v, device saw %v, want %v", n.Features(), dev.DriverFeatures(), want)
	}
	got, err := n.MAC()
	if err != nil || got.String() != mac.String() {
		t.Errorf("MAC() = %v, %v; want %v", got, err, mac)
	}
	if mtu, ok := n.MTU(); mtu != 1500 || ok {
		t.Errorf("MTU() = %d, %v; want 1500, false", mtu, ok)
	}
	if n.MaxFrame() != 1514 {
		t.Errorf("MaxFrame() = %d, want 1514", n.MaxFrame())
	}
	if n.Transitional() {
		t.Error("modern device reported as transitional")
	}
	want := uint8(devmodel.StatusAcknowledge | devmodel.StatusDriver | devmodel.StatusFeaturesOK | devmodel.StatusDriverOK)
	if s := dev.Status(); s != want {
		t.Errorf("device status %#x, want %#x", s, want)
	}
	for q := range 2 {
		if s := dev.QueueSize(q); s != 256 {
			t.Errorf("queue %d size %d, want 256", q, s)
		}
	}
	// All receive buffers were posted before DRIVER_OK and announced once.
	if c := dev.Notifications(devmodel.RxQueue); c != 1 {
		t.Errorf("receive notifications after Open = %d, want 1", c)
	}
	if cmd, _ := dev.ConfigRead(0x04, 2); cmd&6 != 6 {
		t.Errorf("PCI command %#x: memory decode and bus master not enabled", cmd)
	}
	if !n.LinkUp() {
		t.Error("link down, model says up")
	}
	dev.SetLink(false)
	if n.LinkUp() {
		t.Error("link up after the model took it down")
	}
	dev.SetLink(true)
	if !n.LinkUp() {
		t.Error("link down after the model brought it up")
	}
	resets := dev.Resets()
	b.close(t)
	if dev.Resets() != resets+1 {
		t.Errorf("Close did %d resets, want 1", dev.Resets()-resets)
	}
	if _, err := n.Transmit([][]byte{frame(0, 60)}); !errors.Is(err, virtio.ErrClosed) {
		t.Errorf("Transmit after Close: %v, want ErrClosed", err)
	}
	if _, err := n.Receive(bufs(1, 1514)); !errors.Is(err, virtio.ErrClosed) {
		t.Errorf("Receive after Close: %v, want ErrClosed", err)
	}
	if n.LinkUp() {
		t.Error("closed device reports link up")
	}
	if err := n.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestOpenTransitional(t *testing.T) {
	b := newBed(t, devmodel.Config{Transitional: true}, virtio.Options{})
	if !b.net.Transitional() {
		t.Error("transitional device not reported as such")
	}
	if _, err := b.net.Transmit([][]byte{frame(1, 100)}); err != nil || len(b.sent) != 1 {
		t.Fatalf("Transmit on transitional device: %v, %d frames sent", err, len(b.sent))
	}
	checkFrame(t, b.sent[0], 1, 100)
	b.close(t)
}

func TestIdentity(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  devmodel.Config
	}{
		{"wrong vendor", devmodel.Config{VendorID: 0x8086}},
		{"modern block device", devmodel.Config{DeviceID: 0x1042}},
		{"transitional block device", devmodel.Config{DeviceID: 0x1001, SubsystemID: 2}},
		{"transitional with other subsystem", devmodel.Config{Transitional: true, SubsystemID: 2}},
		{"legacy-only ID range", devmodel.Config{DeviceID: 0x103f}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mem := devmodel.NewMemory(memSize)
			dev := devmodel.New(mem, tc.cfg)
			_, err := virtio.Open(dev, mem, virtio.Options{})
			if !errors.Is(err, virtio.ErrNotVirtioNet) {
				t.Fatalf("Open: %v, want ErrNotVirtioNet", err)
			}
			if dev.Resets() != 0 || dev.Status() != 0 || mem.Allocated() != 0 {
				t.Errorf("driver touched a foreign device: %d resets, status %#x, %d bytes allocated",
					dev.Resets(), dev.Status(), mem.Allocated())
			}
			if cmd, _ := dev.ConfigRead(0x04, 2); cmd != 0 {
				t.Errorf("driver wrote the command register of a foreign device: %#x", cmd)
			}
		})
	}
}

func TestNegotiation(t *testing.T) {
	base := virtio.FeatureVersion1 | virtio.FeatureMAC | virtio.FeatureStatus
	for _, tc := range []struct {
		name       string
		cfg        devmodel.Config
		opts       virtio.Options
		want       virtio.Features // accepted; 0 when Open must fail
		wantErr    string
		mtu        int
		maxReceive int // 0: MaxFrame
	}{
		{name: "MTU not offered", cfg: devmodel.Config{Features: base}, want: base, mtu: 1500},
		{name: "MTU offered", cfg: devmodel.Config{Features: base | virtio.FeatureMTU, MTU: 9000},
			want: base | virtio.FeatureMTU, mtu: 9000},
		{name: "small MTU offered", cfg: devmodel.Config{Features: base | virtio.FeatureMTU, MTU: 1280},
			want: base | virtio.FeatureMTU, mtu: 1280},
		{name: "MTU required and offered", cfg: devmodel.Config{Features: base | virtio.FeatureMTU, RequireMTU: true},
			want: base | virtio.FeatureMTU, mtu: 1500},
		{name: "MTU required, not offered", cfg: devmodel.Config{Features: base, RequireMTU: true},
			wantErr: "virtio-net: device refused FEATURES_OK for features VERSION_1|STATUS|MAC"},
		{name: "FEATURES_OK refused", cfg: devmodel.Config{Features: virtio.FeatureVersion1 | virtio.FeatureMAC | virtio.FeatureMTU, RefuseFeaturesOK: true},
			wantErr: "virtio-net: device refused FEATURES_OK for features VERSION_1|MAC|MTU"},
		{name: "no VERSION_1", cfg: devmodel.Config{Features: virtio.FeatureMAC | virtio.FeatureStatus},
			wantErr: "offers no VERSION_1"},
		{name: "MTU below 68", cfg: devmodel.Config{Features: base | virtio.FeatureMTU, MTU: 60},
			wantErr: "MTU 60"},
		{name: "receive offloads accepted, the rest never", cfg: devmodel.Config{Features: base | virtio.FeatureCsum | virtio.FeatureGuestCsum |
			virtio.FeatureGuestTSO4 | virtio.FeatureHostTSO4 | virtio.FeatureMrgRxBuf | virtio.FeatureCtrlVQ | virtio.FeatureMQ |
			virtio.FeatureEventIdx | virtio.FeatureIndirectDesc | virtio.FeatureRingPacked | virtio.FeatureNotifyData | virtio.FeatureOrderPlatform},
			want: base | virtio.ReceiveOffloads, mtu: 1500, maxReceive: 14 + 65535},
		{name: "receive offloads declined", opts: virtio.Options{NoOffloads: true}, cfg: devmodel.Config{Features: base | virtio.ReceiveOffloads},
			want: base, mtu: 1500},
		{name: "receive offloads only all three", cfg: devmodel.Config{Features: base | virtio.FeatureGuestCsum | virtio.FeatureGuestTSO4},
			want: base, mtu: 1500},
		{name: "ACCESS_PLATFORM accepted", cfg: devmodel.Config{Features: base | virtio.FeatureAccessPlatform},
			want: base | virtio.FeatureAccessPlatform, mtu: 1500},
		{name: "no MAC", cfg: devmodel.Config{Features: virtio.FeatureVersion1}, want: virtio.FeatureVersion1, mtu: 1500},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mem := devmodel.NewMemory(memSize)
			var sent [][]byte
			tc.cfg.OnTransmit = func(f []byte) { sent = append(sent, append([]byte(nil), f...)) }
			dev := devmodel.New(mem, tc.cfg)
			n, err := virtio.Open(dev, mem, tc.opts)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Open: %v, want error containing %q", err, tc.wantErr)
				}
				if dev.Status()&devmodel.StatusFailed == 0 {
					t.Errorf("device status %#x after failed Open lacks FAILED", dev.Status())
				}
				if mem.Allocated() != 0 {
					t.Errorf("%d DMA bytes left after failed Open", mem.Allocated())
				}
				return
			}
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			if n.Features() != tc.want || dev.DriverFeatures() != tc.want {
				t.Errorf("accepted %v (device saw %v), want %v", n.Features(), dev.DriverFeatures(), tc.want)
			}
			mtu, ok := n.MTU()
			if mtu != tc.mtu || ok != (tc.want&virtio.FeatureMTU != 0) {
				t.Errorf("MTU() = %d, %v; want %d", mtu, ok, tc.mtu)
			}
			if n.MaxFrame() != 14+tc.mtu {
				t.Errorf("MaxFrame() = %d, want %d", n.MaxFrame(), 14+tc.mtu)
			}
			if want := max(tc.maxReceive, 14+tc.mtu); n.MaxReceive() != want {
				t.Errorf("MaxReceive() = %d, want %d", n.MaxReceive(), want)
			}
			if _, err := n.MAC(); (err == nil) != (tc.want&virtio.FeatureMAC != 0) {
				t.Errorf("MAC() error %v with features %v", err, tc.want)
			}
			if tc.want&virtio.FeatureStatus == 0 && !n.LinkUp() {
				t.Error("without STATUS the link must be assumed up")
			}
			// The largest frame goes out and comes back whole; one byte
			// more is refused.
			big := frame(7, n.MaxFrame())
			if c, err := n.Transmit([][]byte{big}); c != 1 || err != nil {
				t.Fatalf("Transmit(%d bytes) = %d, %v", len(big), c, err)
			}
			if len(sent) != 1 {
				t.Fatalf("device got %d frames, want 1", len(sent))
			}
			checkFrame(t, sent[0], 7, len(big))
			if !dev.Inject(big) {
				t.Fatal("Inject refused")
			}
			rb := bufs(1, n.MaxFrame())
			if c, err := n.Receive(rb); c != 1 || err != nil {
				t.Fatalf("Receive = %d, %v", c, err)
			}
			checkFrame(t, rb[0], 7, len(big))
			if c, err := n.Transmit([][]byte{make([]byte, n.MaxFrame()+1)}); c != 0 || !errors.Is(err, virtio.ErrFrameSize) {
				t.Errorf("oversized Transmit = %d, %v; want 0, ErrFrameSize", c, err)
			}
			if err := n.Close(); err != nil {
				t.Fatal(err)
			}
			if mem.Allocated() != 0 || dev.Status() != 0 || dev.Err() != nil {
				t.Errorf("after Close: %d bytes, status %#x, violation %v", mem.Allocated(), dev.Status(), dev.Err())
			}
		})
	}
}

func TestCapabilities(t *testing.T) {
	for _, tc := range []struct {
		caps    devmodel.CapFault
		wantErr string // empty: Open must succeed
		reset   bool   // the failure comes after the reset started
	}{
		{devmodel.CapsReservedBAR, "", false},
		{devmodel.CapsNoList, "no capability list", false},
		{devmodel.CapsLoop, "loops back", false},
		{devmodel.CapsPtrInHeader, "capability pointer 0x20 outside", false},
		{devmodel.CapsOverrun, "runs past config space", false},
		{devmodel.CapsBadBAR, "BAR 2, which is not implemented", false},
		{devmodel.CapsRegionOutOfBounds, "exceeds BAR 4 size", false},
		{devmodel.CapsNoCommon, "no common configuration capability", false},
		{devmodel.CapsShortCommon, "region is 32 bytes, want at least 56", false},
		{devmodel.CapsShortNotifyCap, "is 16 bytes, want at least 20", false},
		{devmodel.CapsNotifyTooSmall, "outside the 2-byte notify region", true},
	} {
		t.Run(strings.TrimPrefix(tc.wantErr, "virtio-net: "), func(t *testing.T) {
			mem := devmodel.NewMemory(memSize)
			dev := devmodel.New(mem, devmodel.Config{Caps: tc.caps})
			n, err := virtio.Open(dev, mem, virtio.Options{})
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("Open: %v", err)
				}
				if _, err := n.Transmit([][]byte{frame(3, 64)}); err != nil {
					t.Fatal(err)
				}
				if err := n.Close(); err != nil {
					t.Fatal(err)
				}
				if dev.Err() != nil {
					t.Fatal(dev.Err())
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Open: %v, want error containing %q", err, tc.wantErr)
			}
			if mem.Allocated() != 0 {
				t.Errorf("%d DMA bytes left after failed Open", mem.Allocated())
			}
			if tc.reset {
				if dev.Status()&devmodel.StatusFailed == 0 {
					t.Errorf("status %#x lacks FAILED", dev.Status())
				}
			} else if dev.Resets() != 0 || dev.Status() != 0 {
				t.Errorf("malformed device was touched: %d resets, status %#x", dev.Resets(), dev.Status())
			}
		})
	}
}

func TestQueueSizes(t *testing.T) {
	for _, tc := range []struct {
		name    string
		cfg     devmodel.Config
		limit   int
		want    int
		wantErr string
	}{
		{"device smaller", devmodel.Config{QueueSize: 16}, 256, 16, ""},
		{"limit smaller", devmodel.Config{QueueSize: 1024}, 8, 8, ""},
		{"default limit", devmodel.Config{QueueSize: 4096}, 0, 256, ""},
		{"limit 1", devmodel.Config{}, 1, 1, ""},
		{"device not power of two", devmodel.Config{QueueSize: 100}, 256, 0, "queue 0 size 100 is not a power of two"},
		{"device above 32768", devmodel.Config{QueueSize: 40000}, 256, 0, "size 40000"},
		{"absent queue", devmodel.Config{AbsentTxQueue: true}, 256, 0, "queue 1 size 0"},
		{"one queue", devmodel.Config{NumQueues: 1}, 256, 0, "device has 1 queues"},
		{"limit not power of two", devmodel.Config{}, 100, 0, "queue size limit 100"},
		{"limit too big", devmodel.Config{}, 65536, 0, "queue size limit 65536"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mem := devmodel.NewMemory(memSize)
			var got int
			tc.cfg.OnTransmit = func([]byte) { got++ }
			dev := devmodel.New(mem, tc.cfg)
			n, err := virtio.Open(dev, mem, virtio.Options{QueueSize: tc.limit})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Open: %v, want error containing %q", err, tc.wantErr)
				}
				if mem.Allocated() != 0 {
					t.Errorf("%d DMA bytes left", mem.Allocated())
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for q := range 2 {
				if s := dev.QueueSize(q); s != tc.want {
					t.Errorf("queue %d size %d, want %d", q, s, tc.want)
				}
			}
			// The whole ring is usable at once.
			frames := make([][]byte, tc.want)
			for i := range frames {
				frames[i] = frame(uint32(i), 60)
			}
			dev.SetFault(devmodel.TxQueue, devmodel.FaultStall)
			if c, err := n.Transmit(frames); c != tc.want || err != nil {
				t.Errorf("Transmit of a ring's worth = %d, %v; want %d", c, err, tc.want)
			}
			dev.SetFault(devmodel.TxQueue, devmodel.FaultNone)
			if got != tc.want {
				t.Errorf("device sent %d frames, want %d", got, tc.want)
			}
			if err := n.Close(); err != nil || dev.Err() != nil || mem.Allocated() != 0 {
				t.Errorf("Close: %v, violation %v, %d bytes left", err, dev.Err(), mem.Allocated())
			}
		})
	}
}

func TestSharedNotify(t *testing.T) {
	b := newBed(t, devmodel.Config{SharedNotify: true}, virtio.Options{QueueSize: 8})
	for i := range 20 {
		if c, err := b.net.Transmit([][]byte{frame(uint32(i), 70)}); c != 1 || err != nil {
			t.Fatalf("Transmit %d = %d, %v", i, c, err)
		}
	}
	if len(b.sent) != 20 || b.dev.Notifications(devmodel.TxQueue) != 20 {
		t.Errorf("%d frames sent with %d notifications, want 20 and 20", len(b.sent), b.dev.Notifications(devmodel.TxQueue))
	}
	b.close(t)
}

func TestReset(t *testing.T) {
	t.Run("slow reset", func(t *testing.T) {
		b := newBed(t, devmodel.Config{ResetDelay: 50}, virtio.Options{})
		b.close(t)
	})
	t.Run("reset never completes at Open", func(t *testing.T) {
		mem := devmodel.NewMemory(memSize)
		dev := devmodel.New(mem, devmodel.Config{ResetDelay: -1})
		start := time.Now()
		_, err := virtio.Open(dev, mem, virtio.Options{ResetTimeout: 20 * time.Millisecond})
		if err == nil || !strings.Contains(err.Error(), "after reset") {
			t.Fatalf("Open: %v, want reset timeout", err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("Open took %v to give up", d)
		}
		if mem.Allocated() != 0 {
			t.Errorf("%d bytes allocated", mem.Allocated())
		}
	})
	t.Run("reset never completes at Close", func(t *testing.T) {
		b := newBed(t, devmodel.Config{}, virtio.Options{QueueSize: 8, ResetTimeout: 20 * time.Millisecond})
		held := b.mem.Allocated()
		b.dev.SetResetDelay(-1)
		if err := b.net.Close(); err == nil || !strings.Contains(err.Error(), "DMA memory kept") {
			t.Fatalf("Close: %v, want reset failure", err)
		}
		// The device may still write into the rings: their memory must
		// not go back to the allocator.
		if got := b.mem.Allocated(); got != held {
			t.Errorf("Close freed memory of an unreset device: %d of %d bytes left", got, held)
		}
		if _, err := b.net.Transmit([][]byte{frame(0, 60)}); !errors.Is(err, virtio.ErrClosed) {
			t.Errorf("Transmit after failed Close: %v", err)
		}
	})
}

func TestOpenAllocationFailure(t *testing.T) {
	// Room for the receive queue of 8 (ring + 8 x 1536) but not the
	// transmit queue as well.
	for _, size := range []int{1024, 20000} {
		mem := devmodel.NewMemory(size)
		dev := devmodel.New(mem, devmodel.Config{})
		_, err := virtio.Open(dev, mem, virtio.Options{QueueSize: 8})
		if err == nil || !strings.Contains(err.Error(), "out of DMA memory") {
			t.Fatalf("Open with %d bytes: %v, want allocation failure", size, err)
		}
		if mem.Allocated() != 0 || dev.Status()&devmodel.StatusFailed == 0 {
			t.Errorf("with %d bytes: %d left allocated, status %#x", size, mem.Allocated(), dev.Status())
		}
	}
}

func TestOpenArguments(t *testing.T) {
	mem := devmodel.NewMemory(memSize)
	if _, err := virtio.Open(nil, mem, virtio.Options{}); err == nil {
		t.Error("Open without PCI succeeded")
	}
	if _, err := virtio.Open(devmodel.New(mem, devmodel.Config{}), nil, virtio.Options{}); err == nil {
		t.Error("Open without DMA succeeded")
	}
}

func TestFeaturesString(t *testing.T) {
	for f, want := range map[virtio.Features]string{
		0: "none",
		virtio.FeatureVersion1 | virtio.FeatureMAC | virtio.FeatureMTU: "VERSION_1|MAC|MTU",
		virtio.FeatureStatus | 1<<60:                                   "bit60|STATUS",
	} {
		if got := f.String(); got != want {
			t.Errorf("%#x.String() = %q, want %q", uint64(f), got, want)
		}
	}
}

// flaky fails the failAt'th PCI access (counting from 1), as a firmware
// PCI I/O call can.
type flaky struct {
	virtio.PCI
	n, failAt int
}

var errInjected = errors.New("injected PCI failure")

func (f *flaky) fail() bool { f.n++; return f.n == f.failAt }

func (f *flaky) ConfigRead(off uint32, size int) (uint32, error) {
	if f.fail() {
		return 0, errInjected
	}
	return f.PCI.ConfigRead(off, size)
}

func (f *flaky) ConfigWrite(off uint32, size int, v uint32) error {
	if f.fail() {
		return errInjected
	}
	return f.PCI.ConfigWrite(off, size, v)
}

func (f *flaky) BARRead(bar int, off uint64, size int) (uint64, error) {
	if f.fail() {
		return 0, errInjected
	}
	return f.PCI.BARRead(bar, off, size)
}

func (f *flaky) BARWrite(bar int, off uint64, size int, v uint64) error {
	if f.fail() {
		return errInjected
	}
	return f.PCI.BARWrite(bar, off, size, v)
}

func (f *flaky) BARSize(bar int) (uint64, error) {
	if f.fail() {
		return 0, errInjected
	}
	return f.PCI.BARSize(bar)
}

// TestOpenAccessFailures fails each PCI access of Open in turn: every one
// must surface as an error wrapping the cause, with all DMA memory returned.
func TestOpenAccessFailures(t *testing.T) {
	cfg := devmodel.Config{Features: virtio.FeatureVersion1 | virtio.FeatureMAC | virtio.FeatureStatus | virtio.FeatureMTU}
	for k := 1; ; k++ {
		mem := devmodel.NewMemory(memSize)
		p := &flaky{PCI: devmodel.New(mem, cfg), failAt: k}
		n, err := virtio.Open(p, mem, virtio.Options{QueueSize: 8})
		if err == nil {
			if k <= p.n {
				t.Fatalf("Open succeeded although access %d of %d failed", k, p.n)
			}
			p.failAt = 0
			if err := n.Close(); err != nil {
				t.Fatal(err)
			}
			break
		}
		if !errors.Is(err, errInjected) {
			t.Errorf("access %d: error %v does not wrap the cause", k, err)
		}
		if mem.Allocated() != 0 {
			t.Errorf("access %d: %d DMA bytes left after failed Open", k, mem.Allocated())
		}
	}
}
