package tests

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ociboot/ociboot/plan"
	"github.com/ociboot/ociboot/tests/bed"
	"github.com/ociboot/ociboot/tests/payload"
)

// BenchmarkBootArches prints, in one table, each architecture's seconds
// from QEMU start to bootd's banner, its lease, the verified artifact and
// StartImage (TCG, namespace bed, registry over HTTPS): Debian's kernel
// where there is one (then also Linux userspace), tests/chainee elsewhere,
// which goes through the same fetch, LoadImage and StartImage.
// Run with: go test ./tests -run XXX -bench BootArches -benchtime 1x
func BenchmarkBootArches(b *testing.B) {
	for b.Loop() {
		var tab strings.Builder
		fmt.Fprintf(&tab, "%-8s %-8s %8s %8s %10s %11s %10s\n", "arch", "payload", "banner", "lease", "verified", "StartImage", "userspace")
		for _, arch := range arches {
			bd := bed.New(b, bed.Options{Registry: true, FileSize: -1})
			ca := []string{string(bd.Certs.CAPEM)}
			var t plan.Target
			marker, what := payload.Marker, "linux"
			if noLinux[arch] {
				chainee, err := os.ReadFile(buildEFI(b, arch, "./tests/chainee"))
				if err != nil {
					b.Fatal(err)
				}
				t = plan.Target{Name: "chainee", Kind: "efi", Ref: pushBoot(b, bd, arch, "ociboot/chainee:1", chainee, nil, ""), CA: ca}
				marker, what = chaineeMarker, "chainee"
			} else {
				kernel, initrd := payloadFiles(b, arch)
				t = plan.Target{Name: "debian", Ref: pushBoot(b, bd, arch, "ociboot/debian:12", kernel, initrd, "console=ttyS0"), Cmdline: "console=ttyS0", CA: ca}
			}
			efi := buildBootd(b, arch, &plan.Plan{Timeout: plan.Duration(4 * time.Minute), Targets: []plan.Target{t}})
			run := bootInBed(b, bd, arch, efi, marker)
			row := []string{arch, what}
			for _, l := range []string{"ociboot bootd ", "dhcp: lease ", " verified: ", lineStarting, payload.Marker} {
				if d, ok := run.since(l); ok && !(what != "linux" && l == payload.Marker) {
					row = append(row, fmt.Sprintf("%.2f", d.Seconds()))
				} else {
					row = append(row, "-")
				}
			}
			if d, ok := run.since(lineStarting); ok {
				b.ReportMetric(d.Seconds(), "s-startimage-"+arch)
			} else {
				b.Errorf("%s: bootd never reached StartImage", arch)
			}
			fmt.Fprintf(&tab, "%-8s %-8s %8s %8s %10s %11s %10s\n", row[0], row[1], row[2], row[3], row[4], row[5], row[6])
			bd.Close()
		}
		fmt.Print("per-arch boot, seconds from QEMU start (TCG):\n" + tab.String())
	}
}
