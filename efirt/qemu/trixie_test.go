//go:build linux

package qemu

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// The wrapper quotes every path, so a cache under a directory with spaces
// or quotes still starts QEMU.
func TestQEMU10ScriptQuotes(t *testing.T) {
	root := t.TempDir() + "/it's here"
	const bin = "qemu-system-loongarch64"
	for _, f := range []string{"usr/lib64/ld-linux-x86-64.so.2", "usr/bin/" + bin} {
		p := root + "/" + f
		if err := os.MkdirAll(p[:strings.LastIndex(p, "/")], 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, nil, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	s, err := qemu10Script(root, bin)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(s, `'\''s here/usr/bin/`+bin+`'`) || !strings.Contains(s, `"$@"`) {
		t.Errorf("script does not quote the root: %s", s)
	}
	if _, err := qemu10Script(t.TempDir(), bin); err == nil {
		t.Error("a root without a loader was accepted")
	}
}

// TestFindQEMUTrixieAmd64 fetches trixie's QEMU for amd64 on request and
// checks that it runs here and is the version asked for.
func TestFindQEMUTrixieAmd64(t *testing.T) {
	var log strings.Builder
	bin, err := FindQEMU(Config{Arch: "amd64", QEMU: Trixie, Log: &log})
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
	if err != nil || !strings.Contains(string(out), "q35") {
		t.Errorf("%s -M help: %v\n%s", bin, err, out)
	}
}

// An unknown QEMU choice is an error naming the choices, not a silent
// fallback to the machine's QEMU.
func TestFindQEMUUnknownChoice(t *testing.T) {
	_, err := FindQEMU(Config{QEMU: "sid"})
	if err == nil || !strings.Contains(err.Error(), `unknown QEMU "sid"`) || !strings.Contains(err.Error(), Trixie) {
		t.Errorf("got %v", err)
	}
}
