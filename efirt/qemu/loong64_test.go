//go:build linux

package qemu

import (
	"os"
	"os/exec"
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

// The wrapper quotes every path, so a cache under a directory with spaces
// or quotes still starts QEMU.
func TestQEMU10ScriptQuotes(t *testing.T) {
	root := t.TempDir() + "/it's here"
	for _, f := range []string{"usr/lib64/ld-linux-x86-64.so.2", "usr/bin/" + loongQEMU} {
		p := root + "/" + f
		if err := os.MkdirAll(p[:strings.LastIndex(p, "/")], 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, nil, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	s, err := qemu10Script(root)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(s, `'\''s here/usr/bin/`+loongQEMU+`'`) || !strings.Contains(s, `"$@"`) {
		t.Errorf("script does not quote the root: %s", s)
	}
	if _, err := qemu10Script(t.TempDir()); err == nil {
		t.Error("a root without a loader was accepted")
	}
}

// TestFindQEMULoong64 fetches trixie's QEMU into the shared cache once and
// checks that the private root runs on this machine's kernel and libc.
func TestFindQEMULoong64(t *testing.T) {
	var log strings.Builder
	bin, err := FindQEMU(Config{Arch: "loong64", Log: &log})
	t.Log(log.String())
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "-version").CombinedOutput()
	if err != nil {
		t.Fatalf("%s -version: %v\n%s", bin, err, out)
	}
	if !strings.Contains(string(out), "QEMU emulator version 10.") {
		t.Errorf("not QEMU 10: %s", out)
	}
	out, err = exec.Command(bin, "-M", "help").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "virt") {
		t.Errorf("%s -M help: %v\n%s", bin, err, out)
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
