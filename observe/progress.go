package observe

import (
	"fmt"
	"strings"
	"time"
)

// Progress is the progress of one download. On live sinks it is one line
// redrawn in place; on the others (the ring) it becomes a line every
// RecordEvery, so the record stays readable and small.
type Progress struct {
	l     *Logger
	name  string
	total int64 // 0 = unknown
	begin time.Time

	lastDraw   time.Time
	lastRecord time.Time
	drawn      int // length of the line on screen, to blank a longer old one
	done       bool
}

// Redraw and record intervals.
const (
	DrawEvery   = 100 * time.Millisecond
	RecordEvery = 2 * time.Second
)

// NewProgress starts the progress of a download of total bytes (0 when
// unknown) named name.
func (l *Logger) NewProgress(name string, total int64) *Progress {
	now := l.now()
	return &Progress{l: l, name: name, total: total, begin: now, lastRecord: now}
}

// Update reports that done bytes have arrived.
func (p *Progress) Update(done int64) {
	l := p.l
	l.mu.Lock()
	defer l.mu.Unlock()
	if p.done {
		return
	}
	now := l.now()
	draw, record := now.Sub(p.lastDraw) >= DrawEvery, now.Sub(p.lastRecord) >= RecordEvery
	if !draw && !record {
		return // most updates: formatting the line costs more than the bytes' hash
	}
	line := FormatProgress(p.name, done, p.total, now.Sub(p.begin))
	if draw {
		p.lastDraw = now
		p.draw(line)
	}
	if record {
		p.lastRecord = now
		p.record(line)
	}
}

// Finish ends the progress with a last line on every sink, newline
// terminated, stamped like any other.
func (p *Progress) Finish(done int64) {
	l := p.l
	l.mu.Lock()
	defer l.mu.Unlock()
	if p.done {
		return
	}
	p.done = true
	line := FormatProgress(p.name, done, p.total, l.now().Sub(p.begin))
	if l.liveOpen && l.progress == p {
		// Blank the redrawn line, then write the final one as a log line.
		l.liveOpen = false
		l.write([]byte("\r"+strings.Repeat(" ", p.drawn)+"\r"), func(s Sink) bool { return s.Live })
	}
	l.lines(Info, line)
}

// draw redraws line in place on the live sinks.
func (p *Progress) draw(line string) {
	l := p.l
	if l.liveOpen && l.progress != p {
		l.endLive() // another download's line stays as it was
	}
	pad := ""
	if n := p.drawn - len(line); n > 0 && l.liveOpen {
		pad = strings.Repeat(" ", n)
	}
	l.write([]byte("\r"+line+pad), func(s Sink) bool { return s.Live })
	l.liveOpen, l.progress, p.drawn = true, p, len(line)
}

// record writes line as an ordinary stamped line to the sinks that are not
// live.
func (p *Progress) record(line string) {
	l := p.l
	b := []byte(l.stamp() + line + "\n")
	l.write(b, func(s Sink) bool { return !s.Live })
}

// FormatProgress renders "NAME: 12.3 MB of 14.1 MB (87%), 5.20 MB/s, ETA 0.4s".
func FormatProgress(name string, done, total int64, elapsed time.Duration) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s", name, FormatBytes(done))
	if total > 0 {
		fmt.Fprintf(&b, " of %s (%d%%)", FormatBytes(total), done*100/total)
	}
	rate := 0.0
	if elapsed > 0 {
		rate = float64(done) / elapsed.Seconds()
	}
	fmt.Fprintf(&b, ", %s", FormatRate(rate))
	if total > 0 && done < total && rate > 0 {
		fmt.Fprintf(&b, ", ETA %s", FormatSeconds(time.Duration(float64(total-done)/rate*float64(time.Second))))
	}
	return b.String()
}

// FormatBytes renders a size in decimal units: "512 B", "14.1 MB".
func FormatBytes(n int64) string {
	switch {
	case n < 1000:
		return fmt.Sprintf("%d B", n)
	case n < 1000*1000:
		return fmt.Sprintf("%.1f kB", float64(n)/1e3)
	case n < 1000*1000*1000:
		return fmt.Sprintf("%.1f MB", float64(n)/1e6)
	}
	return fmt.Sprintf("%.2f GB", float64(n)/1e9)
}

// FormatRate renders bytes per second as MB/s.
func FormatRate(bytesPerSec float64) string { return fmt.Sprintf("%.2f MB/s", bytesPerSec/1e6) }

// FormatSeconds renders d as seconds with milliseconds ("0.040s"); ASCII
// only, since firmware consoles mangle time.Duration's "µs".
func FormatSeconds(d time.Duration) string {
	ms := d.Milliseconds()
	return fmt.Sprintf("%d.%03ds", ms/1000, ms%1000)
}

// Failure is what the loader says when a boot attempt fails.
type Failure struct {
	What  string // what failed: "DHCP", "fetching the kernel blob"
	Err   error  // the error, with its context
	Cause string // the likely cause, in words for the operator
	Next  string // what the loader does next: retry, next target, back to firmware
}

// Format renders the final error block.
func (f Failure) Format() string {
	var b strings.Builder
	b.WriteString("==== ociboot: boot failed ====\n")
	fmt.Fprintf(&b, "what failed:  %s\n", f.What)
	if f.Err != nil {
		fmt.Fprintf(&b, "error:        %v\n", f.Err)
	}
	if f.Cause != "" {
		fmt.Fprintf(&b, "likely cause: %s\n", f.Cause)
	}
	if f.Next != "" {
		fmt.Fprintf(&b, "next:         %s\n", f.Next)
	}
	b.WriteString("==============================")
	return b.String()
}

// Fail logs the failure block at error level and flushes.
func (l *Logger) Fail(f Failure) { l.Block(Error, f.Format()) }
