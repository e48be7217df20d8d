package actors

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
	"time"
)

// An Actor is a goroutine that owns its state and talks through channels.
// Run does the actor's work until ctx is cancelled (return nil or ctx.Err())
// or the actor fails (return the error).
type Actor interface {
	Name() string
	Run(ctx context.Context) error
}

// Metered is an actor whose counters observe samples.
type Metered interface {
	Counters() *Counters
}

// Readier is an actor whose dependents must wait until it is ready (a NIC
// that is up, a lease that is bound). Ready is closed once.
type Readier interface {
	Ready() <-chan struct{}
}

// Option configures how the supervisor runs one actor.
type Option func(*entry)

// After makes the actor start only after the named actors started (and, for
// Readiers, became ready), and stop before them.
func After(names ...string) Option {
	return func(e *entry) { e.after = append(e.after, names...) }
}

// Restart lets the supervisor restart a failed actor up to n times, waiting
// backoff (doubling) between attempts, before its failure counts.
func Restart(n int, backoff time.Duration) Option {
	return func(e *entry) { e.restarts, e.backoff = n, backoff }
}

// Optional marks an actor whose failure is reported but does not stop the
// others. By default a failed actor fails the whole supervisor.
func Optional() Option {
	return func(e *entry) { e.optional = true }
}

type entry struct {
	a        Actor
	after    []string
	restarts int
	backoff  time.Duration
	optional bool

	cancel context.CancelFunc
	done   chan struct{}
	err    error // final result, valid after done is closed
}

// Supervisor starts actors in dependency order, applies their failure policy
// and stops them in reverse order before handoff.
type Supervisor struct {
	logf func(format string, args ...any)

	mu       sync.Mutex
	entries  []*entry
	byName   map[string]*entry
	started  []*entry
	teardown []func()
	failed   chan error
	failOnce sync.Once
}

// New returns a supervisor that reports through logf (nil: silent).
func New(logf func(format string, args ...any)) *Supervisor {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	return &Supervisor{logf: logf, byName: map[string]*entry{}, failed: make(chan error, 1)}
}

// Add registers an actor. Names must be unique.
func (s *Supervisor) Add(a Actor, opts ...Option) error {
	e := &entry{a: a, done: make(chan struct{})}
	for _, o := range opts {
		o(e)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, dup := s.byName[a.Name()]; dup {
		return fmt.Errorf("actors: two actors named %q", a.Name())
	}
	s.entries = append(s.entries, e)
	s.byName[a.Name()] = e
	return nil
}

// OnTeardown registers f to run at the end of Stop whatever happened before
// it, latest registered first. The NIC reset goes here: it must happen even
// when an actor refuses to stop.
func (s *Supervisor) OnTeardown(f func()) {
	s.mu.Lock()
	s.teardown = append(s.teardown, f)
	s.mu.Unlock()
}

// order sorts the entries so each comes after its dependencies.
func (s *Supervisor) order() ([]*entry, error) {
	var out []*entry
	state := map[*entry]int{} // 1 visiting, 2 done
	var visit func(e *entry, path []string) error
	visit = func(e *entry, path []string) error {
		switch state[e] {
		case 1:
			return fmt.Errorf("actors: dependency cycle %v", append(path, e.a.Name()))
		case 2:
			return nil
		}
		state[e] = 1
		for _, n := range e.after {
			d, ok := s.byName[n]
			if !ok {
				return fmt.Errorf("actors: %q starts after %q, which is not registered", e.a.Name(), n)
			}
			if err := visit(d, append(path, e.a.Name())); err != nil {
				return err
			}
		}
		state[e] = 2
		out = append(out, e)
		return nil
	}
	for _, e := range s.entries {
		if err := visit(e, nil); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Start starts every registered actor in dependency order. It waits for each
// Readier to become ready before starting the actors after it, up to
// readyTimeout per actor. An actor that fails before it is ready fails Start.
func (s *Supervisor) Start(ctx context.Context, readyTimeout time.Duration) error {
	s.mu.Lock()
	order, err := s.order()
	s.mu.Unlock()
	if err != nil {
		return err
	}
	for _, e := range order {
		actx, cancel := context.WithCancel(ctx)
		e.cancel = cancel
		s.mu.Lock()
		s.started = append(s.started, e)
		s.mu.Unlock()
		go s.run(actx, e)
		r, ok := e.a.(Readier)
		if !ok {
			continue
		}
		t := time.NewTimer(readyTimeout)
		select {
		case <-r.Ready():
			t.Stop()
		case <-e.done:
			t.Stop()
			err := e.err
			if err == nil {
				err = errors.New("stopped before it was ready")
			}
			return fmt.Errorf("actors: %s: %w", e.a.Name(), err)
		case <-t.C:
			return fmt.Errorf("actors: %s not ready after %v", e.a.Name(), readyTimeout)
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
	}
	return nil
}

// run runs one actor with its restart policy.
func (s *Supervisor) run(ctx context.Context, e *entry) {
	defer close(e.done)
	backoff := e.backoff
	for attempt := 0; ; attempt++ {
		err := runOnce(ctx, e.a)
		if ctx.Err() != nil {
			e.err = nil
			return
		}
		if err == nil {
			err = errors.New("returned while still wanted")
		}
		if attempt < e.restarts {
			s.logf("actors: %s failed (%v); restart %d of %d in %v", e.a.Name(), err, attempt+1, e.restarts, backoff)
			select {
			case <-time.After(backoff):
			case <-ctx.Done():
				return
			}
			backoff *= 2
			continue
		}
		e.err = err
		if e.optional {
			s.logf("actors: %s failed: %v (optional, the others carry on)", e.a.Name(), err)
			return
		}
		s.logf("actors: %s failed: %v", e.a.Name(), err)
		s.failOnce.Do(func() { s.failed <- fmt.Errorf("actors: %s: %w", e.a.Name(), err) })
		return
	}
}

// runOnce runs a.Run, turning a panic into an error so one actor's bug is
// reported by name instead of taking the loader down.
func runOnce(ctx context.Context, a Actor) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v\n%s", r, debug.Stack())
		}
	}()
	return a.Run(ctx)
}

// Failed delivers the first failure of a non-optional actor.
func (s *Supervisor) Failed() <-chan error { return s.failed }

// Report says how each actor ended during Stop.
type Report struct {
	Name    string
	Err     error         // the actor's failure, if it failed
	Stuck   bool          // it did not stop before the deadline
	Elapsed time.Duration // time taken to stop
}

// stopGrace is the least time each actor gets to stop, so one stuck actor
// that spent the whole deadline does not deny the NIC poller below it a clean
// exit.
const stopGrace = 50 * time.Millisecond

// Stop stops the started actors in reverse start order, giving all of them
// together until deadline (each at least stopGrace). An actor that does not
// stop in time is reported as stuck and left behind; the teardown functions
// run regardless, last.
func (s *Supervisor) Stop(deadline time.Time) []Report {
	s.mu.Lock()
	started := append([]*entry(nil), s.started...)
	teardown := append([]func(){}, s.teardown...)
	s.mu.Unlock()

	var reports []Report
	for i := len(started) - 1; i >= 0; i-- {
		e := started[i]
		begin := time.Now()
		e.cancel()
		r := Report{Name: e.a.Name()}
		t := time.NewTimer(max(time.Until(deadline), stopGrace))
		select {
		case <-e.done:
			r.Err = e.err
		case <-t.C:
			r.Stuck = true
			s.logf("actors: %s did not stop in time; going on without it", e.a.Name())
		}
		t.Stop()
		r.Elapsed = time.Since(begin)
		reports = append(reports, r)
	}
	for i := len(teardown) - 1; i >= 0; i-- {
		teardown[i]()
	}
	return reports
}

// Snapshots samples the counters of every Metered actor, in start order.
func (s *Supervisor) Snapshots() []Snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Snapshot
	for _, e := range s.entries {
		if m, ok := e.a.(Metered); ok {
			out = append(out, m.Counters().Snapshot(e.a.Name()))
		}
	}
	return out
}
