package observe

import (
	"fmt"
	"strings"
	"time"

	"github.com/ociboot/ociboot/actors"
)

// Rate is one actor's throughput over a sampling interval.
type Rate struct {
	Name        string
	Interval    time.Duration
	Messages    uint64  // total so far
	Bytes       uint64  // total so far
	MsgsPerSec  float64 // over the interval
	BytesPerSec float64 // over the interval
	Queue       int64   // input queue depth at the sample
	Busy        float64 // fraction of the interval spent working, 0..1
}

// Sampler turns successive counter snapshots into rates. Each Sample is
// measured against the previous one; an actor seen for the first time is
// measured against zero at the sampler's start.
type Sampler struct {
	start time.Time
	prev  map[string]actors.Snapshot
}

// NewSampler returns a sampler whose first interval starts at start.
func NewSampler(start time.Time) *Sampler {
	return &Sampler{start: start, prev: map[string]actors.Snapshot{}}
}

// Sample computes rates from snaps (Supervisor.Snapshots) and remembers
// them as the base of the next interval.
func (s *Sampler) Sample(snaps []actors.Snapshot) []Rate {
	out := make([]Rate, 0, len(snaps))
	for _, cur := range snaps {
		prev, ok := s.prev[cur.Name]
		if !ok {
			prev = actors.Snapshot{Name: cur.Name, At: s.start}
		}
		out = append(out, rateBetween(prev, cur))
		s.prev[cur.Name] = cur
	}
	return out
}

// rateBetween is the throughput from prev to cur. Counters that went
// backwards (an actor restarted with fresh counters) count from zero.
func rateBetween(prev, cur actors.Snapshot) Rate {
	r := Rate{Name: cur.Name, Interval: cur.At.Sub(prev.At), Messages: cur.Messages, Bytes: cur.Bytes, Queue: cur.Queue}
	dm, db, dbusy := cur.Messages, cur.Bytes, cur.Busy
	if cur.Messages >= prev.Messages && cur.Bytes >= prev.Bytes && cur.Busy >= prev.Busy {
		dm, db, dbusy = cur.Messages-prev.Messages, cur.Bytes-prev.Bytes, cur.Busy-prev.Busy
	}
	if sec := r.Interval.Seconds(); sec > 0 {
		r.MsgsPerSec = float64(dm) / sec
		r.BytesPerSec = float64(db) / sec
		r.Busy = min(1, dbusy.Seconds()/sec)
	}
	return r
}

// FormatRates renders rates as a compact table, one actor per line.
func FormatRates(rates []Rate) string {
	var b strings.Builder
	w := len("actor")
	for _, r := range rates {
		w = max(w, len(r.Name))
	}
	fmt.Fprintf(&b, "%-*s %10s %9s %12s %9s %6s %5s\n", w, "actor", "msgs", "msgs/s", "bytes", "MB/s", "queue", "busy")
	for _, r := range rates {
		fmt.Fprintf(&b, "%-*s %10d %9.0f %12d %9.2f %6d %4.0f%%\n",
			w, r.Name, r.Messages, r.MsgsPerSec, r.Bytes, r.BytesPerSec/1e6, r.Queue, r.Busy*100)
	}
	return strings.TrimRight(b.String(), "\n")
}

// FormatLive renders rates on one line for a live status display:
// "nic 1.20 MB/s q0 12% | tcp ...".
func FormatLive(rates []Rate) string {
	parts := make([]string, len(rates))
	for i, r := range rates {
		parts[i] = fmt.Sprintf("%s %.2f MB/s q%d %.0f%%", r.Name, r.BytesPerSec/1e6, r.Queue, r.Busy*100)
	}
	return strings.Join(parts, " | ")
}
