package actors

import (
	"sync/atomic"
	"time"
)

// Counters are one actor's throughput figures. The actor updates them as it
// works; observe samples them from another goroutine, hence the atomics.
type Counters struct {
	messages atomic.Uint64
	bytes    atomic.Uint64
	queue    atomic.Int64
	busy     atomic.Int64 // nanoseconds
}

// Add counts msgs messages carrying n bytes.
func (c *Counters) Add(msgs, n int) {
	c.messages.Add(uint64(msgs))
	c.bytes.Add(uint64(n))
}

// SetQueue records the current depth of the actor's input queue.
func (c *Counters) SetQueue(n int) { c.queue.Store(int64(n)) }

// BusySince adds the time since start to the actor's busy time. Typical use:
// start := time.Now(); handle(msg); c.BusySince(start).
func (c *Counters) BusySince(start time.Time) { c.busy.Add(int64(time.Since(start))) }

// Snapshot is a sample of an actor's counters.
type Snapshot struct {
	Name     string
	At       time.Time
	Messages uint64
	Bytes    uint64
	Queue    int64
	Busy     time.Duration
}

// Snapshot samples the counters.
func (c *Counters) Snapshot(name string) Snapshot {
	return Snapshot{
		Name:     name,
		At:       time.Now(),
		Messages: c.messages.Load(),
		Bytes:    c.bytes.Load(),
		Queue:    c.queue.Load(),
		Busy:     time.Duration(c.busy.Load()),
	}
}
