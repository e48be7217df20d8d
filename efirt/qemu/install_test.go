//go:build linux

package qemu

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestFindQEMUPresent(t *testing.T) {
	var log strings.Builder
	p, err := FindQEMU(Config{Log: &log})
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Base(p) != "qemu-system-x86_64" || !strings.Contains(log.String(), p) {
		t.Errorf("got %q, log %q", p, log.String())
	}
}

// TestFindQEMUInstalls runs the install path against a stand-in apt-get
// on PATH (the real QEMU must stay installed for the other tests). The
// stand-in fails to install until the lists were updated, as on a fresh
// machine, and records how it was called.
func TestFindQEMUInstalls(t *testing.T) {
	dir := t.TempDir()
	script := `#!/bin/sh
echo "$DEBIAN_FRONTEND $*" >> ` + dir + `/apt.log
for a in "$@"; do
	case "$a" in
	update) : > ` + dir + `/updated; exit 0 ;;
	install)
		if [ -e ` + dir + `/updated ]; then
			printf '#!/bin/sh\n' > ` + dir + `/qemu-system-x86_64
			/bin/chmod +x ` + dir + `/qemu-system-x86_64
			exit 0
		fi
		echo "E: Unable to locate package qemu-system-x86" >&2
		exit 100 ;;
	esac
done
exit 1
`
	if err := os.WriteFile(filepath.Join(dir, "apt-get"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir)
	p, err := FindQEMU(Config{})
	if os.Geteuid() != 0 {
		// Not root: no install, and the error says what to install.
		if err == nil || !strings.Contains(err.Error(), "qemu-system-x86") {
			t.Fatalf("not root: got %q, %v", p, err)
		}
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	if p != filepath.Join(dir, "qemu-system-x86_64") {
		t.Errorf("got %q", p)
	}
	log, _ := os.ReadFile(filepath.Join(dir, "apt.log"))
	if !strings.Contains(string(log), "noninteractive -o DPkg::Lock::Timeout=600 install -y --no-install-recommends qemu-system-x86 ovmf") ||
		!strings.Contains(string(log), "update") {
		t.Errorf("apt-get calls:\n%s", log)
	}
}

func TestFindQEMUWithoutApt(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	_, err := FindQEMU(Config{})
	if err == nil || !strings.Contains(err.Error(), "install the Debian package qemu-system-x86") {
		t.Errorf("got %v", err)
	}
}
