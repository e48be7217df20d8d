package observe

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ociboot/ociboot/actors"
)

// clock is a settable time source.
type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }
func newTestLogger() (*Logger, *clock) {
	c := &clock{t: time.Unix(1000, 0)}
	l := New(c.t)
	l.now = c.now
	return l, c
}

// failing fails its nth write (1-based) and every one after.
type failing struct {
	strings.Builder
	n, calls int
}

func (f *failing) Write(p []byte) (int, error) {
	f.calls++
	if f.calls >= f.n {
		return 0, errors.New("device gone")
	}
	return f.Builder.Write(p)
}

type panicking struct{}

func (panicking) Write([]byte) (int, error) { panic("firmware exploded") }

// flushCounter counts flushes.
type flushCounter struct {
	strings.Builder
	flushes int
	err     error
}

func (f *flushCounter) Flush() error { f.flushes++; return f.err }

func TestLoggerLinesAndLevels(t *testing.T) {
	l, c := newTestLogger()
	var a, b strings.Builder
	l.Attach(Sink{Name: "a", W: &a, Live: true})
	l.Attach(Sink{Name: "b", W: &b})
	l.Logf("hello %d", 1)
	c.advance(1234567 * time.Microsecond)
	l.Warnf("careful\nsecond line   ")
	c.advance(100 * time.Second)
	l.Errorf("broken: %v", errors.New("x"))
	want := "[    0.000] hello 1\n" +
		"[    1.234] WARN careful\n" +
		"[    1.234] WARN second line\n" +
		"[  101.234] ERROR broken: x\n"
	if a.String() != want || b.String() != want {
		t.Errorf("got\n%s\n%s\nwant\n%s", a.String(), b.String(), want)
	}
}

func TestLoggerDropsFailingSinks(t *testing.T) {
	l, _ := newTestLogger()
	var good strings.Builder
	bad := &failing{n: 2}
	l.Attach(Sink{Name: "bad", W: bad})
	l.Attach(Sink{Name: "boom", W: panicking{}})
	l.Attach(Sink{Name: "good", W: &good})
	l.Logf("one")
	l.Logf("two")
	l.Logf("three")
	got := good.String()
	for _, want := range []string{
		"[    0.000] one\n",
		"WARN observe: log sink dropped after a failure: boom: panic: firmware exploded\n",
		"WARN observe: log sink dropped after a failure: bad: device gone\n",
		"[    0.000] two\n[    0.000] three\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("good sink lacks %q:\n%s", want, got)
		}
	}
	if names := l.Sinks(); len(names) != 1 || names[0] != "good" {
		t.Errorf("sinks left: %v", names)
	}
	if bad.String() != "[    0.000] one\n" {
		t.Errorf("bad sink got %q", bad.String())
	}
}

func TestLoggerFlushes(t *testing.T) {
	l, _ := newTestLogger()
	ring := &flushCounter{}
	l.Attach(Sink{Name: "ring", W: ring})
	l.Logf("info does not flush")
	l.Warnf("nor does a warning")
	if ring.flushes != 0 {
		t.Fatalf("%d flushes after info and warn", ring.flushes)
	}
	l.Errorf("an error flushes")
	l.Milestone("so does a milestone")
	l.Block(Info, "and a block")
	l.Flush()
	if ring.flushes != 4 {
		t.Errorf("%d flushes, want 4", ring.flushes)
	}
	// A ring whose flush fails is dropped, with a note on the others.
	var con strings.Builder
	l.Attach(Sink{Name: "con", W: &con})
	ring.err = errors.New("WriteBlocks: EFI_DEVICE_ERROR")
	l.Flush()
	if !strings.Contains(con.String(), "dropped after a failure: ring: WriteBlocks: EFI_DEVICE_ERROR") || len(l.Sinks()) != 1 {
		t.Errorf("failed ring not dropped: %q %v", con.String(), l.Sinks())
	}
}

func TestLoggerWithRing(t *testing.T) {
	img, dev := scratch(t, 1<<20, 0)
	ring, err := OpenRing(dev)
	if err != nil {
		t.Fatal(err)
	}
	l, _ := newTestLogger()
	var con strings.Builder
	l.Attach(Sink{Name: "con", W: &con, Live: true})
	l.Attach(Sink{Name: "ring", W: ring})
	l.Logf("starting")
	l.Fail(Failure{What: "DHCP", Err: errors.New("no offer after 4 attempts"), Cause: "no DHCP server on this network", Next: "back to the firmware"})
	if got := recoverImage(t, img).Last().Text; got != con.String() {
		t.Errorf("ring %q\nconsole %q", got, con.String())
	}
	if !strings.Contains(con.String(), "ERROR likely cause: no DHCP server on this network\n") {
		t.Errorf("error block: %s", con.String())
	}
}

func TestProgress(t *testing.T) {
	l, c := newTestLogger()
	var live, rec strings.Builder
	l.Attach(Sink{Name: "live", W: &live, Live: true})
	l.Attach(Sink{Name: "rec", W: &rec})
	p := l.NewProgress("kernel", 10_000_000)
	for i := 1; i <= 50; i++ {
		c.advance(100 * time.Millisecond)
		p.Update(int64(i) * 100_000)
		if i == 25 {
			l.Logf("in between")
		}
	}
	p.Finish(10_000_000)
	l.Logf("after")
	// Live: redraws with \r, never a newline inside the redraws; the
	// interruption ends the line first.
	if n := strings.Count(live.String(), "\r"); n < 40 {
		t.Errorf("%d redraws on the live sink", n)
	}
	if !strings.Contains(live.String(), "\rkernel: 2.5 MB of 10.0 MB (25%), 1.00 MB/s, ETA 7.500s\n[    2.500] in between\n") {
		t.Errorf("live output:\n%q", live.String())
	}
	// Recorded: a line every 2 s, then the final one; no \r.
	wantRec := "[    2.000] kernel: 2.0 MB of 10.0 MB (20%), 1.00 MB/s, ETA 8.000s\n" +
		"[    2.500] in between\n" +
		"[    4.000] kernel: 4.0 MB of 10.0 MB (40%), 1.00 MB/s, ETA 6.000s\n" +
		"[    5.000] kernel: 10.0 MB of 10.0 MB (100%), 2.00 MB/s\n" +
		"[    5.000] after\n"
	if rec.String() != wantRec {
		t.Errorf("recorded:\n%s\nwant\n%s", rec.String(), wantRec)
	}
	if strings.Contains(rec.String(), "\r") {
		t.Error("carriage return on a record sink")
	}
}

func TestFormatProgress(t *testing.T) {
	for _, c := range []struct {
		done, total int64
		el          time.Duration
		want        string
	}{
		{0, 0, 0, "x: 0 B, 0.00 MB/s"},
		{1500, 0, time.Second, "x: 1.5 kB, 0.00 MB/s"},
		{14_100_000, 28_200_000, 2 * time.Second, "x: 14.1 MB of 28.2 MB (50%), 7.05 MB/s, ETA 2.000s"},
		{3e9, 3e9, 10 * time.Second, "x: 3.00 GB of 3.00 GB (100%), 300.00 MB/s"},
	} {
		if got := FormatProgress("x", c.done, c.total, c.el); got != c.want {
			t.Errorf("got %q, want %q", got, c.want)
		}
	}
}

func TestSamplerAndTable(t *testing.T) {
	t0 := time.Unix(0, 0)
	s := NewSampler(t0)
	r := s.Sample([]actors.Snapshot{
		{Name: "nic", At: t0.Add(2 * time.Second), Messages: 200, Bytes: 4_000_000, Queue: 3, Busy: time.Second},
	})
	if r[0].MsgsPerSec != 100 || r[0].BytesPerSec != 2e6 || r[0].Busy != 0.5 || r[0].Queue != 3 {
		t.Errorf("first sample %+v", r[0])
	}
	r = s.Sample([]actors.Snapshot{
		{Name: "nic", At: t0.Add(3 * time.Second), Messages: 300, Bytes: 5_000_000, Busy: 1250 * time.Millisecond},
		{Name: "tcp-conn", At: t0.Add(3 * time.Second), Messages: 30, Bytes: 3_000_000},
	})
	if r[0].MsgsPerSec != 100 || r[0].BytesPerSec != 1e6 || r[0].Busy != 0.25 {
		t.Errorf("second sample %+v", r[0])
	}
	if r[1].BytesPerSec != 1e6 || r[1].Interval != 3*time.Second {
		t.Errorf("new actor %+v", r[1])
	}
	// A restarted actor's counters start over: rate from zero.
	r = s.Sample([]actors.Snapshot{{Name: "nic", At: t0.Add(4 * time.Second), Messages: 10, Bytes: 1000}})
	if r[0].MsgsPerSec != 10 {
		t.Errorf("after restart %+v", r[0])
	}
	table := FormatRates([]Rate{
		{Name: "nic", Messages: 300, MsgsPerSec: 100, Bytes: 5_000_000, BytesPerSec: 1e6, Queue: 2, Busy: 0.25},
		{Name: "tcp-conn", Messages: 30, MsgsPerSec: 10, Bytes: 3_000_000, BytesPerSec: 1e6},
	})
	want := "actor          msgs    msgs/s        bytes      MB/s  queue  busy\n" +
		"nic             300       100      5000000      1.00      2   25%\n" +
		"tcp-conn         30        10      3000000      1.00      0    0%"
	if table != want {
		t.Errorf("table:\n%s\nwant\n%s", table, want)
	}
	if got := FormatLive([]Rate{{Name: "nic", BytesPerSec: 1.5e6, Queue: 1, Busy: 0.5}}); got != "nic 1.50 MB/s q1 50%" {
		t.Errorf("live %q", got)
	}
}

func TestTimeline(t *testing.T) {
	c := &clock{t: time.Unix(0, 0)}
	tl := NewTimeline(c.t)
	tl.now = c.now
	c.advance(300 * time.Millisecond)
	tl.Mark(PhaseEntry, "")
	c.advance(time.Second)
	tl.Mark(PhaseNIC, "virtio-net")
	c.advance(2 * time.Second)
	e := tl.Span(PhaseBlob, "kernel", 2*time.Second, 14_000_000)
	if e.String() != "blob kernel in 2.000s, 14.0 MB, 7.00 MB/s" {
		t.Errorf("event %q", e.String())
	}
	c.advance(time.Second)
	tl.Mark(PhaseStartImage, "")
	tl.Before(PhaseFirmware, 1500*time.Millisecond)
	sum := tl.Summary()
	for _, line := range []string{
		"  0.000s  firmware           +1.500s",
		"  1.300s  NIC up virtio-net  +1.000s",
		"  3.300s  blob kernel        +2.000s  14.0 MB at 7.00 MB/s",
		"  4.300s  StartImage         +3.000s",
		"  total 4.300s",
	} {
		if !strings.Contains(sum, line) {
			t.Errorf("summary lacks %q:\n%s", line, sum)
		}
	}
}
