package tests

import (
	"os"
	"testing"
	"time"

	"github.com/ociboot/ociboot/efirt/qemu"
	"github.com/ociboot/ociboot/plan"
	"github.com/ociboot/ociboot/tests/bed"
	"github.com/ociboot/ociboot/tests/payload"
)

// TestGoChainLoad has bootd chain-load tests/chainee — a Go program on its
// own efirt, running nested inside bootd's StartImage — twice, once
// exiting 0 and once 3, then boot Linux (where there is a kernel: see
// noLinux): the parent runtime must survive its child's (its FS base,
// exception hooks and page 0 come back), report each exit and go on with
// the plan.
func TestGoChainLoad(t *testing.T) {
	for _, arch := range arches {
		t.Run(arch, func(t *testing.T) {
			b := bed.New(t, bed.Options{Registry: true})
			chainee, err := os.ReadFile(buildEFI(t, arch, "./tests/chainee"))
			if err != nil {
				t.Fatal(err)
			}
			prog := pushBoot(t, b, arch, "ociboot/chainee:1", chainee, nil, "")
			ca := []string{string(b.Certs.CAPEM)}
			targets := []plan.Target{
				{Name: "chainee-ok", Ref: prog, Kind: "efi", Cmdline: "chainee.efi hello=world", CA: ca},
				{Name: "chainee-fail", Ref: prog, Kind: "efi", Cmdline: "chainee.efi exit=3", CA: ca},
			}
			if noLinux[arch] {
				// No kernel to end with (see noLinux): bootd reports both
				// children and then returns to the firmware itself.
				efi := buildBootd(t, arch, &plan.Plan{Timeout: plan.Duration(4 * time.Minute), Targets: targets})
				run := runInBed(t, b, qemu.Config{Arch: arch, Timeout: 5 * time.Minute, ChildExits: 2}, efi)
				res, con := run.res, run.console
				if !res.Exited || res.Status != 1 {
					t.Errorf("bootd: %s, want exit status 1 after the last target", res.Reason)
				}
				if err := con.inOrder(`bootd: starting chainee-ok`, chaineeMarker+` running, load options "hello=world"`,
					`bootd: target "chainee-ok" returned successfully`, `bootd: starting chainee-fail`, chaineeMarker+" returning status 3",
					`what failed:  running chainee-fail`, `next:         returning to the firmware`); err != nil {
					t.Errorf("%v\n%s", err, con.text.String())
				}
				return
			}
			kernel, initrd := payloadFiles(t, arch)
			linux := pushBoot(t, b, arch, "ociboot/debian:12", kernel, initrd, "console=ttyS0")
			targets = append(targets, plan.Target{Name: "debian", Ref: linux, Cmdline: "console=ttyS0 ociboot.test=after-chain", CA: ca})
			efi := buildBootd(t, arch, &plan.Plan{Timeout: plan.Duration(4 * time.Minute), Targets: targets})
			run := runInBed(t, b, qemu.Config{Arch: arch, Timeout: 5 * time.Minute, FirstLineMarker: payload.Marker, ChildExits: 2}, efi)
			con := run.console
			if run.res.FirstOutput == 0 {
				t.Fatalf("no userspace marker (%s)\n%s", run.res.Reason, con.text.String())
			}
			if err := con.inOrder(`bootd: starting chainee-ok`, chaineeMarker+` running, load options "hello=world"`,
				`bootd: target "chainee-ok" returned successfully`, `bootd: starting chainee-fail`, chaineeMarker+" returning status 3",
				`what failed:  running chainee-fail`, `next:         trying the next target, "debian"`, "EFI stub:", payload.Marker); err != nil {
				t.Errorf("%v\n%s", err, con.text.String())
			}
		})
	}
}
