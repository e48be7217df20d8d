package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ociboot/ociboot/observe"
)

// bootOnce writes one loader run's log to the image at path through the
// same ring and logger the loader uses.
func bootOnce(t *testing.T, path string, lines []string, fail bool) string {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	ring, err := observe.OpenRing(&observe.ImageDevice{RW: f, Size: st.Size()})
	if err != nil {
		t.Fatal(err)
	}
	var con strings.Builder
	l := observe.New(time.Time{})
	l.Attach(observe.Sink{Name: "con", W: &con, Live: true})
	l.Attach(observe.Sink{Name: "ring", W: ring})
	for _, s := range lines {
		l.Logf("%s", s)
	}
	if fail {
		l.Fail(observe.Failure{What: "DHCP", Cause: "no DHCP server answered", Next: "back to the firmware"})
	}
	l.Flush()
	return con.String()
}

func TestLogs(t *testing.T) {
	dir := t.TempDir()
	img := filepath.Join(dir, "scratch.img")
	var out, errb bytes.Buffer
	if code := runLogs([]string{"init", img, "-size", "65536"}, &out, &errb); code != 0 {
		t.Fatalf("init: %d %s", code, errb.String())
	}
	if st, err := os.Stat(img); err != nil || st.Size() != 65536 {
		t.Fatalf("image: %v %v", st, err)
	}
	// Nothing written yet.
	if code := runLogs([]string{img}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "no log yet") {
		t.Errorf("empty disk: %d %q", code, errb.String())
	}
	first := bootOnce(t, img, []string{"first boot", "lease 10.0.2.15"}, false)
	second := bootOnce(t, img, []string{"second boot"}, true)

	out.Reset()
	errb.Reset()
	if code := runLogs([]string{img}, &out, &errb); code != 0 || out.String() != second {
		t.Errorf("logs: %d\n%s\nwant\n%s\n%s", code, out.String(), second, errb.String())
	}
	if !strings.Contains(out.String(), "ERROR likely cause: no DHCP server answered") {
		t.Error("error block not recovered")
	}
	out.Reset()
	if code := runLogs([]string{"-all", img}, &out, &errb); code != 0 ||
		out.String() != "==== boot 1 ====\n"+first+"==== boot 2 ====\n"+second {
		t.Errorf("logs -all:\n%s", out.String())
	}

	// init refuses to overwrite a file that is not a scratch disk, and
	// logs refuses to read one.
	other := filepath.Join(dir, "disk.img")
	if err := os.WriteFile(other, bytes.Repeat([]byte{0xab}, 8192), 0o644); err != nil {
		t.Fatal(err)
	}
	errb.Reset()
	if code := runLogs([]string{"init", other}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "not overwriting") {
		t.Errorf("init over a foreign file: %d %q", code, errb.String())
	}
	if b, _ := os.ReadFile(other); !bytes.Equal(b, bytes.Repeat([]byte{0xab}, 8192)) {
		t.Error("foreign file changed")
	}
	errb.Reset()
	if code := runLogs([]string{other}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "not an ociboot scratch disk") {
		t.Errorf("logs on a foreign file: %d %q", code, errb.String())
	}
	// Re-initialising a scratch disk starts it afresh.
	if code := runLogs([]string{"init", "-size", "65536", img}, &out, &errb); code != 0 {
		t.Fatal("re-init failed")
	}
	if code := runLogs([]string{img}, &out, &errb); code != 1 {
		t.Error("old log survived re-init")
	}
}

// TestLogsExitText: a boot that panicked leaves the console's tail in the
// crash area; `ociboot logs` prints it after that boot's log, and a torn
// crash area is reported and skipped.
func TestLogsExitText(t *testing.T) {
	img := filepath.Join(t.TempDir(), "scratch.img")
	if err := InitScratch(img, 256<<10, 512); err != nil {
		t.Fatal(err)
	}
	log := bootOnce(t, img, []string{"about to crash"}, false)
	panicText := "panic: boom\n\ngoroutine 9 [running]:\nmain.main.func1()\n\t/src/main.go:12 +0x1d\nefirt: exit_group(2)\n"
	b, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	h, err := observe.ParseHeader(b)
	if err != nil {
		t.Fatal(err)
	}
	area := b[h.CrashOffset() : h.CrashOffset()+int64(h.CrashBytes())]
	observe.PutExit(area, h.Generation, 1, false, []byte(panicText))
	if err := os.WriteFile(img, b, 0o644); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	if code := runLogs([]string{img}, &out, &errb); code != 0 || out.String() != log+observe.ExitMarker+panicText || errb.Len() != 0 {
		t.Errorf("logs: %d\n%s\nstderr %s", code, out.String(), errb.String())
	}

	// The next boot's log comes without the first boot's exit text.
	second := bootOnce(t, img, []string{"second boot"}, false)
	out.Reset()
	if code := runLogs([]string{img}, &out, &errb); code != 0 || out.String() != second {
		t.Errorf("second boot shown with an exit text:\n%s", out.String())
	}
	out.Reset()
	if code := runLogs([]string{"-all", img}, &out, &errb); code != 0 ||
		out.String() != "==== boot 1 ====\n"+log+observe.ExitMarker+panicText+"==== boot 2 ====\n"+second {
		t.Errorf("logs -all:\n%s", out.String())
	}

	// A torn crash area: the log alone, and a note.
	b, _ = os.ReadFile(img)
	b[h.CrashOffset()+observe.CrashHeader+1] ^= 0xff
	os.WriteFile(img, b, 0o644)
	out.Reset()
	errb.Reset()
	if code := runLogs([]string{"-all", img}, &out, &errb); code != 0 || strings.Contains(out.String(), "panic: boom") ||
		!strings.Contains(errb.String(), "crash area ignored: checksum mismatch") {
		t.Errorf("torn crash area: %d\n%s\nstderr %s", code, out.String(), errb.String())
	}
}
