package tests

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ociboot/ociboot/efirt/build"
	"github.com/ociboot/ociboot/efirt/qemu"
	"github.com/ociboot/ociboot/oci"
	"github.com/ociboot/ociboot/oci/publish"
	"github.com/ociboot/ociboot/plan"
	"github.com/ociboot/ociboot/tests/bed"
	"github.com/ociboot/ociboot/tests/payload"
)

// buildBootd builds the loader with p embedded.
func buildBootd(t testing.TB, arch string, p *plan.Plan) string {
	t.Helper()
	data, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := plan.Parse(data); err != nil {
		t.Fatalf("test plan: %v", err)
	}
	out := filepath.Join(t.TempDir(), "bootd.efi")
	res, err := build.Build(context.Background(), build.Options{Arch: arch, Package: "./cmd/bootd", Output: out, Dir: "..",
		Files: map[string][]byte{"zz_plan.go": plan.GoSource(data)}})
	if err != nil {
		t.Fatalf("building bootd: %v", err)
	}
	t.Logf("bootd: %d bytes", res.Size)
	return out
}

// pushBoot pushes kernel and initrd as our boot artifact into the bed's
// registry under repo:tag and returns the reference the guest uses.
func pushBoot(t testing.TB, b *bed.Bed, arch, repoTag string, kernel, initrd []byte, cmdline string) string {
	t.Helper()
	ref, err := oci.ParseReference(b.RegistryHost() + "/" + repoTag)
	if err != nil {
		t.Fatal(err)
	}
	c := oci.NewClient(b.HTTPClient())
	img := publish.BootImage{Platform: &ocispec.Platform{OS: "linux", Architecture: arch}, Kernel: kernel, Cmdline: cmdline}
	if initrd != nil {
		img.Initrds = [][]byte{initrd}
	}
	if _, err := publish.PushBoot(context.Background(), c, ref, []publish.BootImage{img}); err != nil {
		t.Fatalf("pushing %s: %v", ref, err)
	}
	return ref.String()
}

// bootInBed boots efi in the bed and returns the run; the console goes to
// the test log with -v or when the test fails.
func bootInBed(t testing.TB, b *bed.Bed, arch, efi string, marker string) *bootRun {
	t.Helper()
	return runInBed(t, b, qemu.Config{Arch: arch, FirstLineMarker: marker}, efi)
}

// runInBed boots efi with args attached to bed b under cfg (Arch,
// FirstLineMarker, Timeout — 6 minutes if unset — and whatever else a test
// needs); the console is kept in the run and goes to the test log with -v
// or when the test fails.
func runInBed(t testing.TB, b *bed.Bed, cfg qemu.Config, efi string, args ...string) *bootRun {
	t.Helper()
	con := &stampedConsole{}
	cfg.Stdout = con
	if cfg.Timeout == 0 {
		cfg.Timeout = 6 * time.Minute
	}
	res, err := qemu.Run(context.Background(), b.Config(cfg), efi, args)
	run := &bootRun{res: res, console: con}
	// A benchmark's log is trimmed to a few lines: keep the console for
	// -v and for failures.
	if testing.Verbose() {
		t.Logf("console:\n%s", con.text.String())
	} else {
		t.Cleanup(func() {
			if t.Failed() {
				t.Logf("console:\n%s", con.text.String())
			}
		})
	}
	if err != nil {
		t.Fatalf("qemu: %v", err)
	}
	if at, ok := con.when(cfg.FirstLineMarker); ok && cfg.FirstLineMarker != "" && res.FirstOutput > 0 {
		run.start = at.Add(-res.FirstOutput)
	}
	return run
}

func TestBootLinux(t *testing.T) {
	// Linux kernels only: see noLinux.
	for _, arch := range linuxArches() {
		t.Run(arch, func(t *testing.T) {
			b := bed.New(t, bed.Options{Registry: true})
			kernel, initrd := payloadFiles(t, arch)
			ref := pushBoot(t, b, arch, "ociboot/debian:12", kernel, initrd, "console=ttyS0 ociboot.test=artifact")
			efi := buildBootd(t, arch, &plan.Plan{Timeout: plan.Duration(4 * time.Minute), Targets: []plan.Target{{
				Name: "debian", Ref: ref, Cmdline: "console=ttyS0 ociboot.test=plan", CA: []string{string(b.Certs.CAPEM)},
			}}})
			run := bootInBed(t, b, arch, efi, payload.Marker)
			if run.res.FirstOutput == 0 {
				t.Fatalf("no userspace marker (%s)", run.res.Reason)
			}
			cmdline := run.console.line(payload.CmdlinePrefix)
			if !strings.Contains(cmdline, "ociboot.test=plan") || strings.Contains(cmdline, "initrd=") {
				t.Errorf("kernel command line %q: want the plan's, without initrd=", cmdline)
			}
			if run.console.line("LINUX_EFI_INITRD_MEDIA_GUID") == "" {
				t.Errorf("the EFI stub did not report loading the initrd through LoadFile2")
			}
			for _, m := range []string{"ociboot bootd", "dhcp: lease", "verified", "starting debian", payload.Marker} {
				if d, ok := run.since(m); ok {
					t.Logf("%6.2fs  %s", d.Seconds(), m)
				}
			}
		})
	}
}
