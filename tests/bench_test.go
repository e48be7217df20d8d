package tests

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ociboot/ociboot/efirt/build"
	"github.com/ociboot/ociboot/efirt/qemu"
)

// BenchmarkBoot reports, per architecture, the image size and the seconds
// from QEMU start to the program's first line and to its exit, for a
// program that prints and exits at once (the self-test's exit3 variant).
// Run with: go test ./tests -run '^$' -bench Boot -benchtime 3x
func BenchmarkBoot(b *testing.B) {
	for _, arch := range arches {
		b.Run(arch, func(b *testing.B) {
			out := filepath.Join(b.TempDir(), "selftest.efi")
			if _, err := build.Build(context.Background(), build.Options{Arch: arch, Package: "./tests/selftest", Output: out, Dir: ".."}); err != nil {
				b.Fatal(err)
			}
			st, err := os.Stat(out)
			if err != nil {
				b.Fatal(err)
			}
			var first, exit time.Duration
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				res, err := qemu.Run(context.Background(), qemu.Config{Arch: arch, Timeout: 3 * time.Minute, FirstLineMarker: "selftest: Go "}, out, []string{"exit3"})
				if err != nil {
					b.Fatal(err)
				}
				if res.Status != 3 {
					b.Fatalf("status %d (%s)", res.Status, res.Reason)
				}
				first += res.FirstOutput
				exit += res.Duration
			}
			b.ReportMetric(float64(st.Size()), "image-bytes")
			b.ReportMetric(first.Seconds()/float64(b.N), "s-to-first-line")
			b.ReportMetric(exit.Seconds()/float64(b.N), "s-to-exit")
		})
	}
}
