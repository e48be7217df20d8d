package tests

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestDemo runs `ociboot demo` (what `make demo` runs) on every
// architecture: Linux userspace where Debian has a kernel here, a
// chain-loaded EFI program elsewhere.
func TestDemo(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "ociboot")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/ociboot").CombinedOutput(); err != nil {
		t.Fatalf("building ociboot: %v\n%s", err, out)
	}
	for _, arch := range arches {
		t.Run(arch, func(t *testing.T) {
			cmd := exec.Command(bin, "demo", "-arch", arch)
			cmd.Dir = ".."
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("ociboot demo -arch %s: %v\n%s", arch, err, out)
			}
			want := "demo: OK — Linux userspace reached"
			if noLinux[arch] {
				want = "demo: OK — the chain-loaded program reached"
			}
			if !strings.Contains(string(out), want) {
				t.Errorf("no %q in the demo's output:\n%s", want, out)
			}
		})
	}
}
