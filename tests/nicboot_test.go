package tests

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ociboot/ociboot/efirt/qemu"
	"github.com/ociboot/ociboot/plan"
	"github.com/ociboot/ociboot/tests/bed"
	"github.com/ociboot/ociboot/tests/payload"
)

// TestBootLinuxOverSNP boots the kernel end to end through the firmware's
// Simple Network Protocol: OVMF's own (forced with nic=snp), and iPXE's,
// which the chooser falls back to when QEMU's iPXE option ROM keeps the
// virtio-net function. iPXE's SNP hands over full-size frames longer than
// MTU+14; this test is what caught buffers sized exactly to that.
func TestBootLinuxOverSNP(t *testing.T) {
	// Linux kernels only: see noLinux.
	for _, arch := range linuxArches() {
		for _, c := range []struct {
			name, nic, want string
			rom             bool
		}{
			{"ovmf", "snp", "(asked for SNP)", false},
			{"ipxe-rom", "auto", "because virtio-net was not usable", true},
		} {
			if c.rom && !slices.Contains(optionROMArches, arch) {
				continue // QEMU has no option ROM this firmware runs
			}
			t.Run(arch+"/"+c.name, func(t *testing.T) {
				b := bed.New(t, bed.Options{Registry: true})
				kernel, initrd := payloadFiles(t, arch)
				ref := pushBoot(t, b, arch, "ociboot/debian:12", kernel, initrd, "console=ttyS0")
				efi := buildBootd(t, arch, &plan.Plan{NIC: c.nic, Timeout: plan.Duration(2 * time.Minute), Targets: []plan.Target{{
					Name: "debian", Ref: ref, Cmdline: "console=ttyS0 ociboot.test=snp", CA: []string{string(b.Certs.CAPEM)},
				}}})
				con := &stampedConsole{}
				cfg := b.Config(qemu.Config{Arch: arch, Timeout: 3 * time.Minute, Stdout: con, FirstLineMarker: payload.Marker})
				if c.rom {
					for i, a := range cfg.QEMUArgs {
						cfg.QEMUArgs[i] = strings.ReplaceAll(a, ",romfile=", "")
					}
				}
				res, err := qemu.Run(context.Background(), cfg, efi, nil)
				t.Logf("console:\n%s", con.text.String())
				if err != nil {
					t.Fatal(err)
				}
				if res.FirstOutput == 0 {
					t.Fatalf("no userspace marker (%s)", res.Reason)
				}
				if l := con.line("nic: using firmware Simple Network Protocol"); !strings.Contains(l, c.want) {
					t.Errorf("NIC path line %q lacks %q", l, c.want)
				}
				if !strings.Contains(con.line(payload.CmdlinePrefix), "ociboot.test=snp") {
					t.Errorf("wrong kernel command line")
				}
			})
		}
	}
}
