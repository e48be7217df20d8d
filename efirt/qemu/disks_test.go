//go:build linux

package qemu

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ociboot/ociboot/observe"
)

func TestDiskArgsAndScratchLog(t *testing.T) {
	dir := t.TempDir()
	scratch, args, err := diskArgs(Config{ScratchLog: true, Disks: []string{"/x/a,b.img"}}, dir)
	if err != nil {
		t.Fatal(err)
	}
	want := "-drive if=none,format=raw,id=disk0,file=" + scratch + " -device virtio-blk-pci,drive=disk0,addr=0x10 " +
		"-drive if=none,format=raw,id=disk1,file=/x/a,,b.img -device virtio-blk-pci,drive=disk1,addr=0x11"
	if got := strings.Join(args, " "); got != want {
		t.Errorf("args\n%s\nwant\n%s", got, want)
	}
	// The scratch disk is formatted; write a log the way the loader would.
	f, err := os.OpenFile(scratch, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	ring, err := observe.OpenRing(&observe.ImageDevice{RW: f, Size: scratchSize})
	if err != nil {
		t.Fatal(err)
	}
	ring.Write([]byte("[    0.001] bootd: hello\n[    0.002] bootd: bye\n"))
	ring.Flush()
	f.Close()

	// The console showed the log: nothing more is printed.
	var out strings.Builder
	res := Result{Console: "BdsDxe: starting ...\n[    0.001] bootd: hello\n"}
	showScratchLog(Config{Stdout: &out}, scratch, &res)
	if res.ScratchLog != "[    0.001] bootd: hello\n[    0.002] bootd: bye\n" || out.Len() != 0 {
		t.Errorf("shown %q, recovered %q", out.String(), res.ScratchLog)
	}
	// A silent console: the recovered log is shown.
	res = Result{Console: "BdsDxe: starting ...\n"}
	showScratchLog(Config{Stdout: &out}, scratch, &res)
	if !strings.Contains(out.String(), "recovered from its scratch disk") || !strings.HasSuffix(out.String(), "bootd: bye\n") {
		t.Errorf("silent console: shown %q", out.String())
	}
	if _, _, err := diskArgs(Config{ScratchLog: true}, filepath.Join(dir, "missing")); err == nil {
		t.Error("scratch disk created in a missing directory")
	}
}
