package observe

import (
	"io"
	"testing"
	"time"

	"github.com/ociboot/ociboot/observe/observetest"
)

var zeroTime time.Time

// BenchmarkLogRing measures a logged line going to a console sink and the
// ring, with a flush every 16 lines (milestones are rarer than that).
func BenchmarkLogRing(b *testing.B) {
	img := observetest.NewImage(4 << 20)
	if _, err := FormatImage(img, int64(len(img.B)), 0, 1); err != nil {
		b.Fatal(err)
	}
	ring, err := OpenRing(&ImageDevice{RW: img, Size: int64(len(img.B))})
	if err != nil {
		b.Fatal(err)
	}
	l := New(zeroTime)
	l.Attach(Sink{Name: "con", W: io.Discard, Live: true})
	l.Attach(Sink{Name: "ring", W: ring})
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		l.Logf("fetch: blob sha256:%064x chunk %d", i, i)
		if i%16 == 0 {
			l.Flush()
		}
	}
}

// BenchmarkRecover measures reading back a full 4 MiB scratch disk.
func BenchmarkRecover(b *testing.B) {
	img := observetest.NewImage(4 << 20)
	FormatImage(img, int64(len(img.B)), 0, 1)
	ring, _ := OpenRing(&ImageDevice{RW: img, Size: int64(len(img.B))})
	line := []byte("[    1.234] a line of log text of a typical length, with some figures 12345\n")
	for i := 0; i < 60000; i++ {
		ring.Write(line)
	}
	ring.Flush()
	b.SetBytes(int64(len(img.B)))
	for b.Loop() {
		if _, err := Recover(img); err != nil {
			b.Fatal(err)
		}
	}
}
