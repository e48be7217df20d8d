//go:build linux

package qemu

import (
	"os"
	"strings"
	"testing"
)

// The loong64 machine is virt with the LA464 core, and shares every other
// option with amd64.
func TestCommandLineLoong64(t *testing.T) {
	joined := strings.Join(commandLine(Config{Arch: "loong64", MemoryMiB: 2048}, "code.fd", "vars.fd", "esp"), " ")
	for _, want := range []string{"-M virt", "-cpu la464", "-m 2048", "unit=0,readonly=on,file=code.fd", "unit=1,file=vars.fd", "fat:rw:esp"} {
		if !strings.Contains(joined, want) {
			t.Errorf("loong64 command line lacks %q: %s", want, joined)
		}
	}
}

func TestFindFirmwareLoong64(t *testing.T) {
	var log strings.Builder
	fw, err := FindFirmware(Config{Arch: "loong64", Log: &log})
	t.Log(log.String())
	if err != nil {
		t.Fatal(err)
	}
	if fw.Source != "cache" || !strings.Contains(fw.Version, "qemu-efi-loongarch64") {
		t.Errorf("got %+v, want trixie's qemu-efi-loongarch64 from the cache", fw)
	}
	for _, f := range []string{fw.Code, fw.Vars} {
		if st, err := os.Stat(f); err != nil || st.Size() == 0 {
			t.Errorf("%s: %v", f, err)
		}
	}
}
