package tests

import (
	"strings"
	"testing"
	"time"

	"github.com/ociboot/ociboot/efirt/qemu"
)

// nicARP boots tests/nicarp with one virtio-net device on QEMU user
// networking (restrict=on: nothing leaves the machine) and requires the
// ARP reply from the gateway, received through our driver.
//
// The device has no option ROM (romfile=), so OVMF's own virtio-net driver
// is the one nicarp takes the device from; with QEMU's iPXE ROM bound the
// firmware still refuses the exclusive open (open in the NIC issue).
func nicARP(t *testing.T, arch, device string) {
	efi := buildEFI(t, arch, "./tests/nicarp")
	var console strings.Builder
	res, err := qemu.Run(t.Context(), qemu.Config{
		Arch: arch, Timeout: 3 * time.Minute, Stdout: &console,
		QEMUArgs: []string{"-netdev", "user,id=n0,restrict=on", "-device", device + ",netdev=n0,romfile="},
	}, efi, nil)
	t.Logf("console:\n%s", console.String())
	if err != nil {
		t.Fatal(err)
	}
	if !res.Exited || res.Status != 0 {
		t.Fatalf("status %d (%s)", res.Status, res.Reason)
	}
	if !strings.Contains(res.Console, "nicarp: gateway 10.0.2.2 is at 52:55:0a:00:02:02") {
		t.Errorf("no ARP reply from the gateway")
	}
}

func TestNICVirtioModern(t *testing.T) {
	for _, arch := range arches {
		t.Run(arch, func(t *testing.T) {
			nicARP(t, arch, "virtio-net-pci,disable-legacy=on,disable-modern=off")
		})
	}
}

func TestNICVirtioTransitional(t *testing.T) {
	for _, arch := range arches {
		t.Run(arch, func(t *testing.T) {
			nicARP(t, arch, "virtio-net-pci")
		})
	}
}
