//go:build linux

package qemu

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestRunInNetns checks that Config.Netns starts QEMU inside the namespace:
// a tap netdev opens the namespace's device of that name, which the host's
// namespace does not have.
func TestRunInNetns(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("creating a network namespace needs root")
	}
	ns := fmt.Sprintf("ociboot-qemutest-%d", os.Getpid())
	ip := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	ip("netns", "add", ns)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })

	const dev = "ocqtap0"
	netdev := []string{"-netdev", "tap,id=n0,ifname=" + dev + ",script=no,downscript=no", "-device", "virtio-net-pci,netdev=n0"}
	prog := writeProgram(t, testProgram("hello from netns\r\nefirt: exit_group(3)\r\n", endReturn))
	run := func() Result {
		t.Helper()
		cfg := Config{Timeout: 2 * time.Minute, Log: logWriter{t}, QEMUArgs: netdev, Netns: ns}
		res, err := Run(context.Background(), cfg, prog, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("result: status %d, %q", res.Status, res.Reason)
		return res
	}

	// A tun (layer 3) device of that name in the namespace: QEMU there
	// cannot open it as a tap. (In the host's namespace it would create a
	// tap and run.)
	ip("-n", ns, "tuntap", "add", "dev", dev, "mode", "tun")
	if res := run(); res.Exited || res.Status != StatusFirmwareFailure || !strings.Contains(res.Reason, dev) {
		t.Errorf("with a tun %s in the namespace: got status %d (%s), want QEMU failing on the tap", dev, res.Status, res.Reason)
	}

	// A tap device of that name: QEMU attaches and the program runs.
	ip("-n", ns, "link", "del", dev)
	ip("-n", ns, "tuntap", "add", "dev", dev, "mode", "tap")
	if res := run(); !res.Exited || res.Status != 3 {
		t.Errorf("with a tap %s in the namespace: got status %d (%s), want the program's exit 3", dev, res.Status, res.Reason)
	}
	noQEMUChildren(t)
}
