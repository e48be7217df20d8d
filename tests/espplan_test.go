package tests

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ociboot/ociboot/efirt/build"
	"github.com/ociboot/ociboot/efirt/qemu"
	"github.com/ociboot/ociboot/plan"
)

// TestPlanFromESP boots a bootd built without a plan, with plan.FileName
// next to it on the ESP: the loader must read and use that plan (here its
// one target fails for want of a NIC, which the error block says), and an
// invalid plan file must be refused with an error naming the file.
func TestPlanFromESP(t *testing.T) {
	for _, arch := range arches {
		t.Run(arch, func(t *testing.T) {
			efi := filepath.Join(t.TempDir(), "bootd.efi")
			if _, err := build.Build(context.Background(), build.Options{Arch: arch, Package: "./cmd/bootd", Output: efi, Dir: ".."}); err != nil {
				t.Fatal(err)
			}
			for _, c := range []struct {
				name, plan string
				want       []string
			}{
				{"valid", `{"targets": [{"name": "from-esp", "ref": "10.0.2.100:5000/boot/x:1", "plainHTTP": true}]}`,
					[]string{"plan: " + plan.FileName + " from the ESP, 1 target(s)", `bootd: target "from-esp"`, "what failed:  bringing up the network card", "returning to the firmware"}},
				{"invalid", `{"targets": [{"name": "x", "ref": "not a reference"}]}`,
					[]string{"what failed:  reading the boot plan", plan.FileName + " on the ESP", "returning to the firmware"}},
			} {
				t.Run(c.name, func(t *testing.T) {
					var con strings.Builder
					res, err := qemu.Run(context.Background(), qemu.Config{Arch: arch, Timeout: 3 * time.Minute, Stdout: &con,
						Beside: map[string][]byte{plan.FileName: []byte(c.plan)}}, efi, nil)
					if err != nil {
						t.Fatal(err)
					}
					if !res.Exited || res.Status != 1 {
						t.Errorf("bootd: %s, want exit status 1", res.Reason)
					}
					for _, w := range c.want {
						if !strings.Contains(con.String(), w) {
							t.Errorf("console lacks %q\n%s", w, con.String())
						}
					}
				})
			}
		})
	}
}
