package tests

import (
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ociboot/ociboot/efirt/qemu"
	"github.com/ociboot/ociboot/plan"
	"github.com/ociboot/ociboot/tests/bed"
	"github.com/ociboot/ociboot/tests/payload"
)

// bootdFigures are the timings of one bootd boot, from QEMU's start, and
// what bootd reports about its memory.
type bootdFigures struct {
	banner, lease, verified, start, marker time.Duration
	peak, payload                          int64
}

// bootdMemory is the line bootd prints before StartImage.
var bootdMemory = regexp.MustCompile(`bootd: memory: .*\(peak=(\d+) held=\d+ payload=(\d+) bytes\)`)

// figures reads a bootd run's console.
func bootdFiguresOf(t testing.TB, run *bootRun) bootdFigures {
	t.Helper()
	var f bootdFigures
	for _, e := range []struct {
		line string
		d    *time.Duration
	}{{"ociboot bootd ", &f.banner}, {"dhcp: lease ", &f.lease}, {" verified: ", &f.verified}, {lineStarting, &f.start}, {payload.Marker, &f.marker}} {
		d, ok := run.since(e.line)
		if !ok {
			t.Fatalf("no %q on bootd's console", e.line)
		}
		*e.d = d
	}
	m := bootdMemory.FindStringSubmatch(run.console.line("bootd: memory: "))
	if m == nil {
		t.Fatal("bootd printed no memory line before StartImage")
	}
	f.peak, _ = strconv.ParseInt(m[1], 10, 64)
	f.payload, _ = strconv.ParseInt(m[2], 10, 64)
	return f
}

// BenchmarkBootLinux boots the test payload three ways in one namespace
// bed and prints the figures side by side: bootd from the registry over
// HTTPS, iPXE over HTTP from the same bed, and the EFI shell straight from
// the ESP. Seconds are from QEMU's start (TCG).
// Run with: go test ./tests -run XXX -bench BootLinux -benchtime 1x
func BenchmarkBootLinux(b *testing.B) {
	const arch = "amd64"
	if os.Geteuid() != 0 {
		b.Skip("the namespace bed and fetching the kernel need root (CI runs as root)")
	}
	kernel, initrd := payloadFiles(b, arch)
	for b.Loop() {
		bd := bed.New(b, bed.Options{Registry: true, FileSize: -1})
		ref := pushBoot(b, bd, arch, "ociboot/debian:12", kernel, initrd, "console=ttyS0")
		efi := buildBootd(b, arch, &plan.Plan{Timeout: plan.Duration(4 * time.Minute), Targets: []plan.Target{{
			Name: "debian", Ref: ref, Cmdline: "console=ttyS0 ociboot.bed=bootd", CA: []string{string(bd.Certs.CAPEM)},
		}}})
		st, err := os.Stat(efi)
		if err != nil {
			b.Fatal(err)
		}
		run := bootInBed(b, bd, arch, efi, payload.Marker)
		if run.res.FirstOutput == 0 {
			b.Fatalf("bootd: no userspace marker (%s)", run.res.Reason)
		}
		o := bootdFiguresOf(b, run)
		x := bootIPXEIn(b, bd, qemu.Config{Arch: arch}, kernel, initrd, false)
		esp, countdown := bootESP(b, arch, kernel, initrd)
		checkBedGone(b, bd)

		// Start → StartImage without the transfer: bootd's transfer runs
		// from the lease to the verified artifact (DNS, TLS, manifest,
		// blobs); iPXE's from its kernel command to its boot command (DNS,
		// HTTP). Each loader's start is its first console line.
		oNet := o.verified - o.lease
		oRest := o.start - o.banner - oNet
		xNet := x.boot - x.kernelStart
		xRest := x.boot - x.banner - xNet
		espMarker := esp.res.FirstOutput - countdown

		var tab strings.Builder
		fmt.Fprintf(&tab, "boot of %.1f MB kernel + %.1f kB initramfs (amd64, TCG), seconds from QEMU start:\n", float64(len(kernel))/1e6, float64(len(initrd))/1e3)
		fmt.Fprintf(&tab, "%-28s %8s %8s %12s %12s %10s %18s\n", "path", "loader", "lease", "transfer end", "StartImage", "userspace", "start→StartImage−transfer")
		fmt.Fprintf(&tab, "%-28s %8.2f %8.2f %12.2f %12.2f %10.2f %18.2f\n", "bootd (HTTPS, registry)", o.banner.Seconds(), o.lease.Seconds(), o.verified.Seconds(), o.start.Seconds(), o.marker.Seconds(), oRest.Seconds())
		fmt.Fprintf(&tab, "%-28s %8.2f %8.2f %12.2f %12.2f %10.2f %18.2f\n", "iPXE (HTTP, same bed)", x.banner.Seconds(), x.dhcp.Seconds(), x.boot.Seconds(), x.boot.Seconds(), x.marker.Seconds(), xRest.Seconds())
		fmt.Fprintf(&tab, "%-28s %8s %8s %12s %12s %10.2f %18s\n", "EFI shell from the ESP", "-", "-", "-", "-", espMarker.Seconds(), "-")
		fmt.Fprintf(&tab, "(ESP: %.2f s with the shell's %.2f s startup.nsh countdown, which is left out above)\n", esp.res.FirstOutput.Seconds(), countdown.Seconds())
		fmt.Fprintf(&tab, "transfer: bootd %.2f s, iPXE %.2f s\n", oNet.Seconds(), xNet.Seconds())
		fmt.Fprintf(&tab, "targets: start→StartImage−transfer %.2f s vs iPXE %.2f s (%s); peak %.1f MB runtime vs payload %.1f MB + 64 MiB (%s); image %.2f MiB ≤ 10 MiB (%s)",
			oRest.Seconds(), xRest.Seconds(), verdict(oRest <= xRest),
			float64(o.peak)/1e6, float64(o.payload)/1e6, verdict(o.peak <= o.payload+64<<20),
			float64(st.Size())/(1<<20), verdict(st.Size() <= 10<<20))
		// Printed, not logged: a benchmark's log is trimmed to a few lines.
		fmt.Println(tab.String())

		b.ReportMetric(o.banner.Seconds(), "s-banner")
		b.ReportMetric(o.lease.Seconds(), "s-lease")
		b.ReportMetric(o.verified.Seconds(), "s-transfer-end")
		b.ReportMetric(o.start.Seconds(), "s-startimage")
		b.ReportMetric(o.marker.Seconds(), "s-userspace")
		b.ReportMetric(oRest.Seconds(), "s-start-to-startimage-no-transfer")
		b.ReportMetric(x.marker.Seconds(), "s-ipxe-userspace")
		b.ReportMetric(xRest.Seconds(), "s-ipxe-start-to-boot-no-transfer")
		b.ReportMetric(espMarker.Seconds(), "s-esp-userspace")
		b.ReportMetric(float64(o.peak), "peak-bytes")
		b.ReportMetric(float64(o.payload), "payload-bytes")
		b.ReportMetric(float64(st.Size()), "image-bytes")
	}
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "MISSED"
}
