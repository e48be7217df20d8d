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

// TestFindQEMUTrixie fetches trixie's QEMU into the shared cache once
// per package — for loong64 always, for amd64 on request — and checks that
// the private root runs on this machine's kernel and libc, is QEMU 10 and
// has the machine we boot.
func TestFindQEMUTrixie(t *testing.T) {
	for _, c := range []struct {
		cfg     Config
		machine string
	}{
		{Config{Arch: "loong64"}, "virt"},
		{Config{Arch: "amd64", QEMU: Trixie}, "q35"},
	} {
		t.Run(c.cfg.Arch, func(t *testing.T) {
			var log strings.Builder
			c.cfg.Log = &log
			bin, err := FindQEMU(c.cfg)
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
			if err != nil || !strings.Contains(string(out), c.machine) {
				t.Errorf("%s -M help: %v\n%s", bin, err, out)
			}
		})
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
