package observe

import (
	"fmt"
	"strings"
	"sync"
	"time"
)

// Phase names of a boot, in the order they usually happen.
const (
	PhaseFirmware   = "firmware" // machine start to loader entry, when known
	PhaseEntry      = "loader entry"
	PhaseNIC        = "NIC up"
	PhaseDHCP       = "DHCP lease"
	PhaseDNS        = "DNS"
	PhaseTLS        = "TLS handshake"
	PhaseManifest   = "manifest"
	PhaseBlob       = "blob"
	PhaseVerify     = "verification"
	PhaseStartImage = "StartImage"
)

// Event is one entry of the timeline.
type Event struct {
	Phase  string
	Detail string        // e.g. the blob's name, the lease's address
	At     time.Duration // since the loader started, when the phase ended
	Took   time.Duration // how long the phase lasted
	Bytes  int64         // for blobs: their size
}

// Timeline records when the phases of a boot ended. It is safe for
// concurrent use.
type Timeline struct {
	mu     sync.Mutex
	start  time.Time
	now    func() time.Time
	last   time.Duration
	events []Event
}

// NewTimeline starts a timeline at start (the loader's entry).
func NewTimeline(start time.Time) *Timeline {
	return &Timeline{start: start, now: time.Now}
}

// Mark records that phase ended now; it took the time since the previous
// mark. It returns the event for the caller to log.
func (t *Timeline) Mark(phase, detail string) Event {
	t.mu.Lock()
	defer t.mu.Unlock()
	at := t.now().Sub(t.start)
	e := Event{Phase: phase, Detail: detail, At: at, Took: at - t.last}
	t.last = at
	t.events = append(t.events, e)
	return e
}

// Span records a phase that ended now and took took, such as one blob among
// several fetched at once; it does not move the point later marks count
// from.
func (t *Timeline) Span(phase, detail string, took time.Duration, bytes int64) Event {
	t.mu.Lock()
	defer t.mu.Unlock()
	e := Event{Phase: phase, Detail: detail, At: t.now().Sub(t.start), Took: took, Bytes: bytes}
	t.events = append(t.events, e)
	return e
}

// Before records a phase that ended before the loader started (the
// firmware's part of the boot, measured by other means).
func (t *Timeline) Before(phase string, took time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.events = append([]Event{{Phase: phase, At: 0, Took: took}}, t.events...)
}

// Events returns the recorded events in order.
func (t *Timeline) Events() []Event {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]Event(nil), t.events...)
}

// String renders one line for an event, as logged when it happens.
func (e Event) String() string {
	s := e.Phase
	if e.Detail != "" {
		s += " " + e.Detail
	}
	s += " in " + FormatSeconds(e.Took)
	if e.Bytes > 0 {
		s += fmt.Sprintf(", %s", FormatBytes(e.Bytes))
		if e.Took > 0 {
			s += ", " + FormatRate(float64(e.Bytes)/e.Took.Seconds())
		}
	}
	return s
}

// Summary renders the timeline as one block: the end of each phase since
// the loader started, how long it took, and for blobs size and rate.
func (t *Timeline) Summary() string {
	events := t.Events()
	var b strings.Builder
	b.WriteString("boot timeline (seconds since loader entry):\n")
	w := 0
	for _, e := range events {
		w = max(w, len(e.label()))
	}
	for _, e := range events {
		fmt.Fprintf(&b, "  %9s  %-*s  +%s", FormatSeconds(e.At), w, e.label(), FormatSeconds(e.Took))
		if e.Bytes > 0 {
			fmt.Fprintf(&b, "  %s", FormatBytes(e.Bytes))
			if e.Took > 0 {
				fmt.Fprintf(&b, " at %s", FormatRate(float64(e.Bytes)/e.Took.Seconds()))
			}
		}
		b.WriteByte('\n')
	}
	if n := len(events); n > 0 {
		fmt.Fprintf(&b, "  total %s", FormatSeconds(events[n-1].At))
	}
	return strings.TrimRight(b.String(), "\n")
}

func (e Event) label() string {
	if e.Detail == "" {
		return e.Phase
	}
	return e.Phase + " " + e.Detail
}
