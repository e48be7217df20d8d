package actors

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// fake is a scripted actor that records its lifecycle in a shared log.
type fake struct {
	name  string
	log   *events
	fail  error         // returned at once when set
	fails int           // fail this many runs, then run normally
	stuck bool          // ignore cancellation
	ready chan struct{} // non-nil: a Readier, closed on start
	runs  int
	c     Counters
}

type events struct {
	mu sync.Mutex
	l  []string
}

func (e *events) add(s string) { e.mu.Lock(); e.l = append(e.l, s); e.mu.Unlock() }
func (e *events) String() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return strings.Join(e.l, " ")
}

func (f *fake) Name() string        { return f.name }
func (f *fake) Counters() *Counters { return &f.c }
func (f *fake) Ready() <-chan struct{} {
	if f.ready == nil { // not waiting for readiness
		c := make(chan struct{})
		close(c)
		return c
	}
	return f.ready
}

func (f *fake) Run(ctx context.Context) error {
	f.runs++
	f.log.add("start:" + f.name)
	if f.runs <= f.fails {
		return fmt.Errorf("attempt %d broke", f.runs)
	}
	if f.fail != nil {
		return f.fail
	}
	f.c.Add(1, 100)
	if f.ready != nil {
		close(f.ready)
	}
	if f.stuck {
		select {} // an actor that never notices cancellation
	}
	<-ctx.Done()
	f.log.add("stop:" + f.name)
	return nil
}

func TestOrderedStartAndReverseStop(t *testing.T) {
	ev := &events{}
	s := New(t.Logf)
	nic := &fake{name: "nic", log: ev, ready: make(chan struct{})}
	demux := &fake{name: "demux", log: ev, ready: make(chan struct{})}
	dhcp := &fake{name: "dhcp", log: ev, ready: make(chan struct{})}
	// Registered out of order: the dependencies decide.
	for _, r := range []struct {
		a    Actor
		opts []Option
	}{{dhcp, []Option{After("demux")}}, {demux, []Option{After("nic")}}, {nic, nil}} {
		if err := s.Add(r.a, r.opts...); err != nil {
			t.Fatal(err)
		}
	}
	reset := false
	s.OnTeardown(func() { reset = true; ev.add("reset") })
	if err := s.Start(t.Context(), time.Second); err != nil {
		t.Fatal(err)
	}
	if got := ev.String(); got != "start:nic start:demux start:dhcp" {
		t.Fatalf("start order %q", got)
	}
	snaps := s.Snapshots()
	if len(snaps) != 3 || snaps[0].Messages != 1 || snaps[0].Bytes != 100 {
		t.Errorf("snapshots %+v", snaps)
	}
	reps := s.Stop(time.Now().Add(time.Second))
	if got := ev.String(); got != "start:nic start:demux start:dhcp stop:dhcp stop:demux stop:nic reset" {
		t.Fatalf("lifecycle %q", got)
	}
	if !reset || len(reps) != 3 || reps[0].Name != "dhcp" || reps[0].Stuck {
		t.Errorf("reports %+v reset %v", reps, reset)
	}
}

func TestFailingActorFailsSupervisor(t *testing.T) {
	ev := &events{}
	s := New(t.Logf)
	s.Add(&fake{name: "nic", log: ev})
	s.Add(&fake{name: "tcp", log: ev, fail: errors.New("window went negative")})
	if err := s.Start(t.Context(), time.Second); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-s.Failed():
		if !strings.Contains(err.Error(), "tcp") || !strings.Contains(err.Error(), "window went negative") {
			t.Errorf("failure %q does not name the actor and cause", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no failure reported")
	}
	reps := s.Stop(time.Now().Add(time.Second))
	if reps[0].Name != "tcp" || reps[0].Err == nil {
		t.Errorf("reports %+v", reps)
	}
}

func TestOptionalAndRestart(t *testing.T) {
	ev := &events{}
	s := New(t.Logf)
	flaky := &fake{name: "dns", log: ev, fails: 2}
	s.Add(flaky, Restart(2, time.Millisecond))
	s.Add(&fake{name: "observe", log: ev, fail: errors.New("no sink")}, Optional())
	if err := s.Start(t.Context(), time.Second); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(ev.String(), "start:dns start:dns start:dns") && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	select {
	case err := <-s.Failed():
		t.Fatalf("supervisor failed: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	s.Stop(time.Now().Add(time.Second))
	if flaky.runs != 3 {
		t.Errorf("dns ran %d times, want 3 (two restarts)", flaky.runs)
	}
}

func TestStuckActorStillResetsNIC(t *testing.T) {
	ev := &events{}
	s := New(t.Logf)
	s.Add(&fake{name: "nic", log: ev, ready: make(chan struct{})})
	s.Add(&fake{name: "fetcher", log: ev, stuck: true, ready: make(chan struct{})}, After("nic"))
	s.OnTeardown(func() { ev.add("reset") })
	if err := s.Start(t.Context(), time.Second); err != nil {
		t.Fatal(err)
	}
	begin := time.Now()
	reps := s.Stop(time.Now().Add(100 * time.Millisecond))
	if time.Since(begin) > 5*time.Second {
		t.Fatalf("Stop did not honour its deadline")
	}
	if !reps[0].Stuck || reps[0].Name != "fetcher" {
		t.Errorf("stuck actor not reported: %+v", reps)
	}
	if reps[1].Stuck || !strings.HasSuffix(ev.String(), "stop:nic reset") {
		t.Errorf("nic not stopped and reset after the stuck actor: %q %+v", ev, reps)
	}
}

func TestStartErrors(t *testing.T) {
	ev := &events{}
	s := New(nil)
	s.Add(&fake{name: "a", log: ev}, After("b"))
	s.Add(&fake{name: "b", log: ev}, After("a"))
	if err := s.Start(t.Context(), time.Second); err == nil || !strings.Contains(err.Error(), "cycle") {
		t.Errorf("cycle: %v", err)
	}
	s = New(nil)
	s.Add(&fake{name: "a", log: ev}, After("missing"))
	if err := s.Start(t.Context(), time.Second); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("missing dependency: %v", err)
	}
	s = New(nil)
	if err := s.Add(&fake{name: "a", log: ev}); err != nil {
		t.Fatal(err)
	}
	if err := s.Add(&fake{name: "a", log: ev}); err == nil {
		t.Error("duplicate name accepted")
	}
	s = New(nil)
	s.Add(&fake{name: "nic", log: ev, fail: errors.New("no device"), ready: make(chan struct{})})
	if err := s.Start(t.Context(), time.Second); err == nil || !strings.Contains(err.Error(), "no device") {
		t.Errorf("actor failing before ready: %v", err)
	}
	s2 := New(nil)
	s2.Add(&neverReady{})
	if err := s2.Start(t.Context(), 20*time.Millisecond); err == nil || !strings.Contains(err.Error(), "not ready") {
		t.Errorf("readiness timeout: %v", err)
	}
	s2.Stop(time.Now().Add(time.Second))
}

type neverReady struct{}

func (neverReady) Name() string                  { return "never" }
func (neverReady) Ready() <-chan struct{}        { return nil }
func (neverReady) Run(ctx context.Context) error { <-ctx.Done(); return nil }

func TestPanicBecomesFailure(t *testing.T) {
	s := New(nil)
	s.Add(panicker{})
	s.Start(t.Context(), time.Second)
	select {
	case err := <-s.Failed():
		if !strings.Contains(err.Error(), "panic: boom") {
			t.Errorf("got %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("panic not reported")
	}
}

type panicker struct{}

func (panicker) Name() string                  { return "panicker" }
func (panicker) Run(ctx context.Context) error { panic("boom") }

func TestBatchPool(t *testing.T) {
	p := NewPool(64, 4)
	b := p.Full()
	if b.Len() != 4 || len(b.Bufs[0]) != 64 {
		t.Fatalf("full batch %d×%d", b.Len(), len(b.Bufs[0]))
	}
	b.Release()
	b = p.Get()
	if b.Len() != 0 {
		t.Fatal("Get returned a non-empty batch")
	}
	for i := 0; i < 4; i++ {
		if buf := b.Append(10 + i); len(buf) != 10+i {
			t.Fatalf("append %d", len(buf))
		}
	}
	if b.Append(1) != nil || !b.Full() {
		t.Error("append past the batch size")
	}
	if b.Bytes() != 10+11+12+13 {
		t.Errorf("bytes %d", b.Bytes())
	}
	if p.Get().Append(65) != nil {
		t.Error("append larger than a buffer")
	}
}

// TestBatchKeepsLargerBuffer: a buffer a receiver put in a slot in place of
// a pool buffer too small for its frame is handed out again from that slot.
func TestBatchKeepsLargerBuffer(t *testing.T) {
	p := NewPool(64, 2)
	b := p.Full()
	big := make([]byte, 1000)
	b.Bufs[1] = big[:700] // a driver's larger buffer for a larger frame
	b.Bufs = b.Bufs[:0]   // emptied as Release and Get do, slots kept
	if got := b.Append(10); cap(got) != 64 {
		t.Fatalf("slot 0 gave capacity %d, want the pool's 64", cap(got))
	}
	if got := b.Append(10); cap(got) != 1000 || &got[0] != &big[0] {
		t.Errorf("slot 1 gave a buffer of capacity %d, want the 1000-byte one back", cap(got))
	}
	b.Bufs = b.Bufs[:0]
	if b.Append(65) != nil {
		t.Error("Append takes more than the pool's size because a slot holds more")
	}
}
