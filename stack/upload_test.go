package stack

import (
	"context"
	"crypto/sha256"
	"io"
	mrand "math/rand/v2"
	"net"
	"testing"
	"time"

	"github.com/ociboot/ociboot/stack/internal/gvisorlink"
)

// upload sends size pseudo-random bytes to a gVisor sink that waits delay
// before reading, and checks what the sink hashed. It returns our side of
// the connection's statistics.
func upload(t *testing.T, p *pair, size int, delay time.Duration) *connStats {
	t.Helper()
	ln := p.listen(t, 9)
	sums := make(chan [32]byte, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		time.Sleep(delay)
		h := sha256.New()
		io.Copy(h, c)
		sums <- [32]byte(h.Sum(nil))
	}()
	c, err := p.s.DialContext(context.Background(), "tcp", "10.0.0.2:9")
	if err != nil {
		t.Fatal(err)
	}
	stats := &connOf(c).stats
	rng := mrand.NewChaCha8([32]byte{9})
	h := sha256.New()
	buf := make([]byte, 100<<10)
	start := time.Now()
	for left := size; left > 0; {
		n := min(left, len(buf))
		rng.Read(buf[:n])
		h.Write(buf[:n])
		if _, err := c.Write(buf[:n]); err != nil {
			t.Fatalf("Write: %v", err)
		}
		left -= n
	}
	if err := c.(interface{ CloseWrite() error }).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-sums:
		if got != [32]byte(h.Sum(nil)) {
			t.Fatal("the peer received different bytes")
		}
	case <-time.After(60 * time.Second):
		t.Fatal("upload did not finish")
	}
	t.Logf("uploaded %d MiB in %v: retransmitted %d segments (%d fast retransmits, %d timeouts), %d window probes, %d tail probes",
		size>>20, time.Since(start).Round(time.Millisecond), stats.retransmittedSegs.Load(),
		stats.fastRetransmits.Load(), stats.rtoRetransmits.Load(), stats.probes.Load(), stats.tailProbes.Load())
	c.Close()
	return stats
}

func TestUploadLossy(t *testing.T) {
	p := newPair(t, gvisorlink.Config{Seed: 5, ToPeer: gvisorlink.Impair{Loss: 0.02, Reorder: 0.01}, FromPeer: gvisorlink.Impair{Loss: 0.02}}, Options{})
	st := upload(t, p, 16<<20, 0)
	if st.retransmittedSegs.Load() == 0 {
		t.Fatal("2% loss and nothing was retransmitted")
	}
}

func TestZeroWindowAgainstGVisor(t *testing.T) {
	// The sink sleeps before reading: its window shuts, we probe, and the
	// transfer resumes when it reads.
	p := newPair(t, gvisorlink.Config{}, Options{})
	st := upload(t, p, 8<<20, time.Second)
	// Usually the window shuts with nothing in flight and the persist timer
	// probes; if data was in flight past a window the peer shrank, the
	// retransmission timer's resends are the probes.
	if st.probes.Load()+st.rtoRetransmits.Load() == 0 {
		t.Fatal("nothing probed the peer's shut window")
	}
}

var _ net.Conn = (*TCPConn)(nil)
