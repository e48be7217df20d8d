package stack

import (
	"sync"
	"time"
)

// deadline is one direction's deadline of a connection: wait returns a
// channel that is closed once the deadline passes. Setting a new deadline
// replaces a passed one's channel, so a later operation can wait again.
type deadline struct {
	mu      sync.Mutex
	t       *time.Timer
	c       chan struct{}
	expired bool
}

func (d *deadline) wait() <-chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.c == nil {
		d.c = make(chan struct{})
	}
	return d.c
}

func (d *deadline) set(t time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.t != nil {
		d.t.Stop()
		d.t = nil
	}
	if d.c == nil || d.expired {
		d.c = make(chan struct{})
		d.expired = false
	}
	if t.IsZero() {
		return
	}
	dur := time.Until(t)
	if dur <= 0 {
		close(d.c)
		d.expired = true
		return
	}
	c := d.c
	d.t = time.AfterFunc(dur, func() {
		d.mu.Lock()
		defer d.mu.Unlock()
		if d.c == c && !d.expired {
			close(c)
			d.expired = true
		}
	})
}
