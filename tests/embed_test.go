package tests

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ociboot/ociboot/efirt/qemu"
	"github.com/ociboot/ociboot/plan"
)

// TestChainLoadEmbedded builds bootd with `ociboot build -plan -embed`,
// compiling tests/chainee into the loader, and has it chain-load that
// program without any network: the program runs with the plan's load
// options, returns, and bootd reports it and goes back to the firmware.
func TestChainLoadEmbedded(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "ociboot")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/ociboot").CombinedOutput(); err != nil {
		t.Fatalf("building ociboot: %v\n%s", err, out)
	}
	data, err := json.Marshal(&plan.Plan{Targets: []plan.Target{{
		Name: "tool", Kind: "efi", Embedded: "chainee", Cmdline: "chainee.efi hello=embedded",
	}}})
	if err != nil {
		t.Fatal(err)
	}
	planFile := filepath.Join(dir, "plan.json")
	if err := os.WriteFile(planFile, data, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, arch := range arches {
		t.Run(arch, func(t *testing.T) {
			chainee := buildEFI(t, arch, "./tests/chainee")
			efi := filepath.Join(t.TempDir(), "bootd.efi")
			cmd := exec.Command(bin, "build", "-arch", arch, "-o", efi, "-plan", planFile, "-embed", "chainee="+chainee, "./cmd/bootd")
			cmd.Dir = ".."
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("ociboot build -embed: %v\n%s", err, out)
			}
			var con stampedConsole
			res, err := qemu.Run(context.Background(), qemu.Config{Arch: arch, Timeout: 3 * time.Minute, Stdout: &con, ChildExits: 1}, efi, nil)
			if err != nil {
				t.Fatal(err)
			}
			if !res.Exited || res.Status != 1 {
				t.Errorf("bootd: %s, want exit status 1 (every target tried)", res.Reason)
			}
			if err := con.inOrder(`bootd: target "tool": embedded program chainee`, chaineeMarker+` running, load options "hello=embedded"`,
				`bootd: target "tool" returned successfully; returning to the firmware`); err != nil {
				t.Errorf("%v\n%s", err, con.text.String())
			}
			if strings.Contains(con.text.String(), "nic: using") {
				t.Error("an embedded target brought the network up")
			}
		})
	}
	// A plan that names a program the build does not embed is refused.
	cmd := exec.Command(bin, "build", "-o", filepath.Join(dir, "x.efi"), "-plan", planFile, "./cmd/bootd")
	cmd.Dir = ".."
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), `embedded program "chainee"`) {
		t.Errorf("build without -embed: %v\n%s", err, out)
	}
}
