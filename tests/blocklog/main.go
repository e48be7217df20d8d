// Command blocklog proves the loader's observability path inside UEFI: it
// attaches the observe logger to the firmware (ConOut, serial ports off
// ConOut, the block-IO ring on the scratch disk), logs a boot-like run with
// a per-actor throughput table and a timeline, and exits. With the argument
// "fail" it tries to bring up a NIC on a machine that has none and ends
// with the final error block, as the loader does when a boot fails; with
// "serial" it also writes to the serial port through Serial IO; with
// "panic" a goroutine panics after a few lines that were never flushed, so
// only efirt's exit text can bring them and the panic to the scratch disk.
package main

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"runtime"
	"syscall"
	"time"

	"github.com/ociboot/ociboot/actors"
	"github.com/ociboot/ociboot/nic"
	"github.com/ociboot/ociboot/nic/virtio"
	"github.com/ociboot/ociboot/observe"
	"github.com/ociboot/ociboot/observe/efi"
)

func main() {
	l := observe.New(time.Time{})
	tl := observe.NewTimeline(l.Start())
	opts := efi.Options{}
	if len(os.Args) > 1 && os.Args[1] == "serial" {
		// Tee to every serial port even though ConOut reaches them: each
		// line then shows twice on the console, proving the Serial IO path.
		opts.Serial = efi.SerialOn
	}
	a := efi.Attach(l, opts)
	l.Logf("blocklog: Go %s %s/%s, args %q", runtime.Version(), runtime.GOOS, runtime.GOARCH, os.Args[1:])
	l.Logf("%s", tl.Mark(observe.PhaseEntry, ""))
	if a.Ring == nil {
		l.Errorf("blocklog: no scratch disk found")
		os.Exit(3)
	}
	l.Milestone("blocklog: ring on disk %#x, run %d", uintptr(a.RingDisk), a.Ring.Run())
	// A system call efirt does not serve: efirt's note about it goes to
	// the console by itself and must reach the ring between these lines.
	l.Logf("blocklog: calling acct")
	_, _, errno := syscall.Syscall(syscall.SYS_ACCT, 0, 0, 0)
	l.Logf("blocklog: acct: %v", errno)

	if len(os.Args) > 1 && os.Args[1] == "panic" {
		l.Logf("blocklog: this line is logged but never flushed")
		go func() {
			var table map[string]int
			table["crash"]++ // a nil map: the runtime panics
		}()
		time.Sleep(time.Minute)
		l.Errorf("blocklog: the goroutine did not panic")
		os.Exit(4)
	}

	if len(os.Args) > 1 && os.Args[1] == "fail" {
		dev, err := nic.OpenVirtio(virtio.Options{})
		if err == nil {
			dev.Close()
			err = errors.New("a NIC came up on a machine started without one")
		} else if err.Error() == "" {
			err = errors.New("no virtio-net device")
		}
		l.Logf("%s", tl.Mark(observe.PhaseNIC, "(failed)"))
		l.Block(observe.Info, tl.Summary())
		l.Fail(observe.Failure{
			What:  "bringing up the NIC",
			Err:   err,
			Cause: "this machine has no virtio-net device (QEMU started with -nic none)",
			Next:  "back to the firmware with exit status 1",
		})
		os.Exit(1)
	}

	rates, err := pipeline(l)
	if err != nil {
		l.Fail(observe.Failure{What: "the actor pipeline", Err: err, Next: "back to the firmware with exit status 1"})
		os.Exit(1)
	}
	l.Block(observe.Info, observe.FormatRates(rates))
	l.Logf("%s", tl.Mark(observe.PhaseNIC, "(simulated)"))

	// A "blob": hash some megabytes, timed like a download.
	blob := make([]byte, 8<<20)
	for i := range blob {
		blob[i] = byte(i * 7)
	}
	start := time.Now()
	sum := sha256.Sum256(blob)
	l.Logf("%s", tl.Span(observe.PhaseBlob, "test-blob", time.Since(start), int64(len(blob))))
	l.Logf("blocklog: sha256 %x", sum[:8])
	l.Logf("%s", tl.Mark(observe.PhaseVerify, ""))
	l.Block(observe.Info, tl.Summary())
	l.Milestone("blocklog: done")
	l.Flush()
}

// pipeline runs two actors that pass batches for a moment under a
// supervisor and returns their throughput.
func pipeline(l *observe.Logger) ([]observe.Rate, error) {
	sup := actors.New(l.Logf)
	ch := make(chan *actors.Batch, 8)
	pool := actors.NewPool(1514, 32)
	src := &source{out: ch, pool: pool}
	dst := &sink{in: ch}
	if err := sup.Add(dst); err != nil {
		return nil, err
	}
	if err := sup.Add(src, actors.After("sink")); err != nil {
		return nil, err
	}
	sampler := observe.NewSampler(time.Now())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := sup.Start(ctx, time.Second); err != nil {
		return nil, err
	}
	time.Sleep(300 * time.Millisecond)
	rates := sampler.Sample(sup.Snapshots())
	for _, r := range sup.Stop(time.Now().Add(2 * time.Second)) {
		if r.Err != nil || r.Stuck {
			return nil, fmt.Errorf("actor %s: stuck %v, %v", r.Name, r.Stuck, r.Err)
		}
	}
	return rates, nil
}

type source struct {
	out  chan<- *actors.Batch
	pool *actors.Pool
	c    actors.Counters
}

func (s *source) Name() string               { return "source" }
func (s *source) Counters() *actors.Counters { return &s.c }
func (s *source) Run(ctx context.Context) error {
	for {
		t := time.Now()
		b := s.pool.Full()
		msgs, n := b.Len(), b.Bytes() // the batch is the sink's once sent
		s.c.BusySince(t)
		select {
		case s.out <- b:
			s.c.Add(msgs, n)
		case <-ctx.Done():
			b.Release()
			return nil
		}
	}
}

type sink struct {
	in <-chan *actors.Batch
	c  actors.Counters
}

func (s *sink) Name() string               { return "sink" }
func (s *sink) Counters() *actors.Counters { return &s.c }
func (s *sink) Run(ctx context.Context) error {
	for {
		select {
		case b := <-s.in:
			t := time.Now()
			s.c.SetQueue(len(s.in))
			s.c.Add(b.Len(), b.Bytes())
			b.Release()
			s.c.BusySince(t)
		case <-ctx.Done():
			return nil
		}
	}
}
