package stack

import (
	"fmt"
	"testing"

	"github.com/ociboot/ociboot/stack/internal/gvisorlink"
)

// BenchmarkHTTPSvsGVisor fetches 64 MiB over HTTPS per iteration from a
// gVisor server, through our stack, hashing it (SHA-256) on both ends.
func BenchmarkHTTPSvsGVisor(b *testing.B) { benchFetch(b, true) }

// BenchmarkHTTPvsGVisor is the same over plain HTTP.
func BenchmarkHTTPvsGVisor(b *testing.B) { benchFetch(b, false) }

func benchFetch(b *testing.B, useTLS bool) {
	const size = 64 << 20
	p := newPair(b, gvisorlink.Config{}, Options{Logf: func(string, ...any) {}})
	c, bs, base := p.serve(b, useTLS)
	fetch(b, c, bs, base, 1<<20, "warm") // handshake and slow start out of the way
	b.SetBytes(size)
	b.ResetTimer()
	var mbps float64
	for i := 0; i < b.N; i++ {
		mbps += fetch(b, c, bs, base, size, fmt.Sprint(i))
	}
	b.ReportMetric(mbps/float64(b.N), "MB/s_fetch")
	st := p.s.TCPCounters().Snapshot("tcp")
	b.ReportMetric(float64(st.Busy.Milliseconds())/float64(b.N), "tcp_busy_ms/op")
}
