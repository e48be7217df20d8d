package nic

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ociboot/ociboot/nic/virtio"
)

// wire is a Device whose far end is the test: frames the poller transmits
// land in sent; frames the test injects are received. Its transmit queue
// holds txRoom frames until the test drains it, to exercise backpressure.
type wire struct {
	mu     sync.Mutex
	in     [][]byte
	sent   [][]byte
	txRoom int
	link   bool
	fault  error
}

func (w *wire) MAC() net.HardwareAddr { return net.HardwareAddr{2, 0, 0, 0, 0, 1} }
func (w *wire) MTU() int              { return 1500 }
func (w *wire) MaxFrame() int         { return 1514 }
func (w *wire) Close() error          { return nil }
func (w *wire) String() string        { return "test wire" }
func (w *wire) LinkUp() bool          { w.mu.Lock(); defer w.mu.Unlock(); return w.link }

func (w *wire) Transmit(frames [][]byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for i, f := range frames {
		if len(f) < 14 || len(f) > 1514 {
			return i, fmt.Errorf("%w: %d bytes", virtio.ErrFrameSize, len(f))
		}
		if w.txRoom > 0 && len(w.sent) >= w.txRoom {
			return i, nil
		}
		w.sent = append(w.sent, append([]byte(nil), f...))
	}
	return len(frames), nil
}

func (w *wire) Receive(bufs [][]byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for n < len(bufs) && len(w.in) > 0 {
		bufs[n] = bufs[n][:copy(bufs[n][:cap(bufs[n])], w.in[0])]
		w.in = w.in[1:]
		n++
	}
	return n, w.fault
}

func (w *wire) inject(f []byte) { w.mu.Lock(); w.in = append(w.in, f); w.mu.Unlock() }

func (w *wire) take() [][]byte {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := w.sent
	w.sent = nil
	return s
}

func frame(i int) []byte {
	f := make([]byte, 60+i%1400)
	copy(f, fmt.Sprintf("frame %06d", i))
	return f
}

func startPoller(t *testing.T, w *wire) (*Poller, chan error, context.CancelFunc) {
	t.Helper()
	p := NewPoller(w, t.Logf)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	t.Cleanup(cancel)
	return p, done, cancel
}

func TestPollerMovesBatchesBothWays(t *testing.T) {
	w := &wire{link: true, txRoom: 16}
	p, done, cancel := startPoller(t, w)
	select {
	case <-p.Ready():
	case <-time.After(5 * time.Second):
		t.Fatal("not ready with the link up")
	}
	const n = 5000
	go func() {
		for i := 0; i < n; i += 10 {
			b := p.Pool().Get()
			for j := i; j < i+10; j++ {
				copy(b.Append(len(frame(j))), frame(j))
			}
			p.TX() <- b
		}
	}()
	var sent [][]byte
	var got [][]byte
	for i := 0; i < n; i++ {
		w.inject(frame(i))
	}
	deadline := time.After(30 * time.Second)
	for len(got) < n || len(sent) < n {
		sent = append(sent, w.take()...) // draining frees transmit room
		select {
		case b := <-p.RX():
			for _, f := range b.Bufs {
				got = append(got, append([]byte(nil), f...))
			}
			b.Release()
		case <-time.After(time.Millisecond):
		case <-deadline:
			t.Fatalf("received %d, sent %d of %d", len(got), len(sent), n)
		}
	}
	for i := 0; i < n; i++ {
		if !bytes.Equal(got[i], frame(i)) || !bytes.Equal(sent[i], frame(i)) {
			t.Fatalf("frame %d differs or out of order", i)
		}
	}
	s := p.Counters().Snapshot("nic")
	if s.Messages != 2*n {
		t.Errorf("counted %d frames, want %d", s.Messages, 2*n)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
}

// A layer above that is busy sending must not deadlock against a poller
// that has received frames for it.
func TestPollerNoDeadlockWhenBothQueuesFill(t *testing.T) {
	w := &wire{link: true}
	p, _, _ := startPoller(t, w)
	<-p.Ready()
	for i := 0; i < (rxQueue+4)*batchFrames; i++ {
		w.inject(frame(i))
	}
	// Send far more batches than the TX channel holds without reading RX.
	sentAll := make(chan struct{})
	go func() {
		for i := 0; i < 4*rxQueue; i++ {
			b := p.Pool().Get()
			copy(b.Append(100), frame(i))
			p.TX() <- b
		}
		close(sentAll)
	}()
	select {
	case <-sentAll:
	case <-time.After(20 * time.Second):
		t.Fatal("sender blocked: poller stopped taking TX while RX was full")
	}
}

func TestPollerDropsBadFrameKeepsGoing(t *testing.T) {
	w := &wire{link: true}
	p, _, _ := startPoller(t, w)
	<-p.Ready()
	b := p.Pool().Get()
	copy(b.Append(60), frame(1))
	b.Append(4) // runt: dropped
	copy(b.Append(60), frame(2))
	p.TX() <- b
	deadline := time.Now().Add(5 * time.Second)
	var sent [][]byte
	for len(sent) < 2 && time.Now().Before(deadline) {
		sent = append(sent, w.take()...)
		time.Sleep(time.Millisecond)
	}
	if len(sent) != 2 || !bytes.Equal(sent[1][:12], frame(2)[:12]) {
		t.Fatalf("sent %d frames", len(sent))
	}
}

func TestPollerDeviceFaultEndsRun(t *testing.T) {
	w := &wire{link: true, fault: fmt.Errorf("%w: used index out of range", virtio.ErrDeviceFault)}
	_, done, _ := startPoller(t, w)
	w.inject(frame(1))
	select {
	case err := <-done:
		if !errors.Is(err, virtio.ErrDeviceFault) || !strings.Contains(err.Error(), "test wire") {
			t.Errorf("got %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("fault not reported")
	}
}

func TestPollerWaitsForLink(t *testing.T) {
	w := &wire{}
	p, _, _ := startPoller(t, w)
	select {
	case <-p.Ready():
		t.Fatal("ready with the link down")
	case <-time.After(30 * time.Millisecond):
	}
	w.mu.Lock()
	w.link = true
	w.mu.Unlock()
	select {
	case <-p.Ready():
	case <-time.After(5 * time.Second):
		t.Fatal("not ready after the link came up")
	}
}

func TestParsePath(t *testing.T) {
	for in, want := range map[string]Path{"": PathAuto, "auto": PathAuto, "virtio": PathVirtio, "snp": PathSNP} {
		if got, err := ParsePath(in); err != nil || got != want {
			t.Errorf("%q: %v %v", in, got, err)
		}
	}
	if _, err := ParsePath("e1000"); err == nil || !strings.Contains(err.Error(), "e1000") {
		t.Errorf("unknown path: %v", err)
	}
}
