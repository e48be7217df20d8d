package tests

import (
	"strings"
	"testing"
	"time"

	"github.com/ociboot/ociboot/efirt/qemu"
)

// nicARP boots tests/nicarp with one virtio-net device on QEMU user
// networking (restrict=on: nothing leaves the machine), asking the chooser
// for path, and requires the ARP reply from the gateway received through
// the poller, and the chooser's log line naming wantPath.
//
// Devices with romfile= have no option ROM, so OVMF's own virtio-net driver
// is the one the loader takes the device from.
func nicARP(t *testing.T, arch, device, path, wantPath string, want ...string) {
	efi := buildEFI(t, arch, "./tests/nicarp")
	var console strings.Builder
	res, err := qemu.Run(t.Context(), qemu.Config{
		Arch: arch, Timeout: 3 * time.Minute, Stdout: &console,
		QEMUArgs: []string{"-netdev", "user,id=n0,restrict=on", "-device", device + ",netdev=n0"},
	}, efi, []string{path})
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
	if !strings.Contains(res.Console, "nic: using "+wantPath) {
		t.Errorf("the chooser did not take %q", wantPath)
	}
	for _, w := range want {
		if !strings.Contains(res.Console, w) {
			t.Errorf("console lacks %q", w)
		}
	}
}

func TestNICVirtioModern(t *testing.T) {
	for _, arch := range arches {
		t.Run(arch, func(t *testing.T) {
			nicARP(t, arch, "virtio-net-pci,disable-legacy=on,disable-modern=off,romfile=", "auto", "virtio-net (modern")
		})
	}
}

func TestNICVirtioTransitional(t *testing.T) {
	for _, arch := range arches {
		t.Run(arch, func(t *testing.T) {
			nicARP(t, arch, "virtio-net-pci,romfile=", "auto", "virtio-net (transitional")
		})
	}
}

// TestNICSNP forces the firmware's Simple Network Protocol (here OVMF's own
// virtio-net driver under it).
func TestNICSNP(t *testing.T) {
	for _, arch := range arches {
		t.Run(arch, func(t *testing.T) {
			nicARP(t, arch, "virtio-net-pci,romfile=", "snp", "firmware Simple Network Protocol")
		})
	}
}

// optionROMArches are the arches QEMU's virtio-net option ROM has an EFI
// driver for: its efi-virtio.rom carries iPXE for x86-64 only, so on arm64
// the firmware never runs it and nothing holds the device.
var optionROMArches = []string{"amd64"}

// TestNICAutoFallback keeps QEMU's iPXE option ROM on the card: iPXE will
// not give up the PCI function, so the chooser must say so and use the SNP
// iPXE offers instead.
func TestNICAutoFallback(t *testing.T) {
	for _, arch := range optionROMArches {
		t.Run(arch, func(t *testing.T) {
			nicARP(t, arch, "virtio-net-pci", "auto", "firmware Simple Network Protocol", "because virtio-net was not usable", "EFI_ACCESS_DENIED")
		})
	}
}
