package observe

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// Level is how much a line matters.
type Level int8

const (
	Info Level = iota
	Warn
	Error
)

// tag is the word a line of the level carries after its timestamp.
func (lv Level) tag() string {
	switch lv {
	case Warn:
		return "WARN "
	case Error:
		return "ERROR "
	}
	return ""
}

// Flusher is a sink that buffers and can be told to make its text durable:
// the block-IO ring.
type Flusher interface {
	Flush() error
}

// A Sink receives every line the logger writes.
type Sink struct {
	Name string
	W    io.Writer // a Flusher too, for sinks that buffer
	// Live marks a screen that can redraw a line in place with \r (ConOut,
	// a serial terminal). Progress lines redraw on live sinks and become
	// periodic lines on the others.
	Live bool
}

// Logger is the loader's one console: it stamps each line with the time
// since start and a level, and tees it to every sink. A sink that fails is
// dropped with a note on the others; logging never fails the caller.
// It is safe for concurrent use.
type Logger struct {
	mu    sync.Mutex
	start time.Time
	now   func() time.Time
	sinks []Sink
	buf   []byte

	liveOpen bool // a progress line is drawn on the live sinks, unterminated
	progress *Progress
}

// New returns a logger whose timestamps count from start (the loader's
// entry; zero = now).
func New(start time.Time) *Logger {
	if start.IsZero() {
		start = time.Now()
	}
	return &Logger{start: start, now: time.Now}
}

// Start is the time timestamps count from.
func (l *Logger) Start() time.Time { return l.start }

// Attach adds a sink.
func (l *Logger) Attach(s Sink) {
	l.mu.Lock()
	l.sinks = append(l.sinks, s)
	l.mu.Unlock()
}

// Sinks names the sinks still attached.
func (l *Logger) Sinks() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var names []string
	for _, s := range l.sinks {
		names = append(names, s.Name)
	}
	return names
}

// Logf logs an informational line.
func (l *Logger) Logf(format string, args ...any) { l.Log(Info, fmt.Sprintf(format, args...)) }

// Warnf logs a warning.
func (l *Logger) Warnf(format string, args ...any) { l.Log(Warn, fmt.Sprintf(format, args...)) }

// Errorf logs an error and flushes the sinks that buffer, so the ring holds
// it even if the machine dies next.
func (l *Logger) Errorf(format string, args ...any) { l.Log(Error, fmt.Sprintf(format, args...)) }

// Log logs msg at level lv; a multi-line msg becomes one stamped line per
// line. Error lines flush the buffering sinks.
func (l *Logger) Log(lv Level, msg string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines(lv, msg)
	if lv >= Error {
		l.flushLocked()
	}
}

// Block logs a multi-line block (a table, a summary) at level lv and
// flushes the buffering sinks: blocks are what one reads after a failure.
func (l *Logger) Block(lv Level, text string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines(lv, strings.TrimRight(text, "\n"))
	l.flushLocked()
}

// Milestone logs an informational line and flushes: the places the ring
// must hold in case nothing after them gets written.
func (l *Logger) Milestone(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines(Info, fmt.Sprintf(format, args...))
	l.flushLocked()
}

// Flush asks every buffering sink to make its text durable: before
// StartImage, before exiting.
func (l *Logger) Flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.flushLocked()
}

// Writer returns an io.Writer that logs each line written to it at lv, for
// code that wants one (a supervisor's logf, the standard log package).
func (l *Logger) Writer(lv Level) io.Writer { return lineWriter{l, lv} }

type lineWriter struct {
	l  *Logger
	lv Level
}

func (w lineWriter) Write(p []byte) (int, error) {
	w.l.Log(w.lv, strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// stamp formats the time since start as "[   12.345] ".
func (l *Logger) stamp() string {
	d := l.now().Sub(l.start)
	if d < 0 {
		d = 0
	}
	ms := d.Milliseconds()
	return fmt.Sprintf("[%5d.%03d] ", ms/1000, ms%1000)
}

// lines writes msg, one stamped line per line, to every sink.
func (l *Logger) lines(lv Level, msg string) {
	l.endLive()
	b := l.buf[:0]
	st, tag := l.stamp(), lv.tag()
	for _, line := range strings.Split(msg, "\n") {
		// Trailing blanks are invisible, and serial cleaners drop them:
		// keep every copy of the log the same by never writing them.
		line = strings.TrimRight(line, " \t\r")
		b = append(b, st...)
		b = append(b, tag...)
		b = append(b, line...)
		b = append(b, '\n')
	}
	l.buf = b
	l.write(b, func(Sink) bool { return true })
}

// endLive terminates a progress line left open on the live sinks so the
// next line starts on its own.
func (l *Logger) endLive() {
	if l.liveOpen {
		l.liveOpen = false
		l.write([]byte("\n"), func(s Sink) bool { return s.Live })
	}
}

// write sends p to the sinks want selects, dropping those that fail.
func (l *Logger) write(p []byte, want func(Sink) bool) {
	var failed []string
	for i := 0; i < len(l.sinks); i++ {
		s := l.sinks[i]
		if !want(s) {
			continue
		}
		if err := safeWrite(s.W, p); err != nil {
			failed = append(failed, fmt.Sprintf("%s: %v", s.Name, err))
			l.sinks = append(l.sinks[:i], l.sinks[i+1:]...)
			i--
		}
	}
	l.noteDropped(failed)
}

// flushLocked flushes the buffering sinks, dropping those that fail.
func (l *Logger) flushLocked() {
	var failed []string
	for i := 0; i < len(l.sinks); i++ {
		f, ok := l.sinks[i].W.(Flusher)
		if !ok {
			continue
		}
		if err := safeFlush(f); err != nil {
			failed = append(failed, fmt.Sprintf("%s: %v", l.sinks[i].Name, err))
			l.sinks = append(l.sinks[:i], l.sinks[i+1:]...)
			i--
		}
	}
	l.noteDropped(failed)
}

// noteDropped tells the remaining sinks which ones were dropped.
func (l *Logger) noteDropped(failed []string) {
	if len(failed) == 0 {
		return
	}
	st := l.stamp()
	var b []byte
	for _, f := range failed {
		b = fmt.Appendf(b, "%sWARN observe: log sink dropped after a failure: %s\n", st, f)
	}
	// Writing the note may drop further sinks, which notes them in turn;
	// each round removes at least one sink, so this ends.
	l.write(b, func(Sink) bool { return true })
}

// safeWrite writes p, turning a short write or a panic into an error: a
// broken sink must not take the loader down.
func safeWrite(w io.Writer, p []byte) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	n, err := w.Write(p)
	if err == nil && n != len(p) {
		err = io.ErrShortWrite
	}
	return err
}

func safeFlush(f Flusher) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	return f.Flush()
}
