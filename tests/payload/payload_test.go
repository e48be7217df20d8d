//go:build linux

package payload

import (
	"bytes"
	"compress/gzip"
	"context"
	"debug/elf"
	"debug/pe"
	"io"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/cavaliergopher/cpio"
)

type logWriter struct{ t *testing.T }

func (w logWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func TestInitrd(t *testing.T) {
	for _, arch := range []struct {
		goarch  string
		machine elf.Machine
	}{{"amd64", elf.EM_X86_64}, {"arm64", elf.EM_AARCH64}} {
		t.Run(arch.goarch, func(t *testing.T) {
			gz, err := Initrd(context.Background(), arch.goarch)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("initramfs for %s: %d bytes gzip'd", arch.goarch, len(gz))
			again, err := Initrd(context.Background(), arch.goarch)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(gz, again) {
				t.Error("two builds of the initramfs differ")
			}
			zr, err := gzip.NewReader(bytes.NewReader(gz))
			if err != nil {
				t.Fatal(err)
			}
			raw, err := io.ReadAll(zr)
			if err != nil {
				t.Fatal(err)
			}
			r := cpio.NewReader(bytes.NewReader(raw))
			modes := map[string]cpio.FileMode{}
			var initData []byte
			for {
				h, err := r.Next()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				modes[h.Name] = h.Mode
				if h.Name == "init" {
					if initData, err = io.ReadAll(r); err != nil {
						t.Fatal(err)
					}
				}
			}
			want := map[string]cpio.FileMode{
				"dev":         cpio.TypeDir | 0o755,
				"dev/console": cpio.TypeChar | 0o600,
				"proc":        cpio.TypeDir | 0o555,
				"sys":         cpio.TypeDir | 0o555,
				"init":        cpio.TypeReg | 0o755,
			}
			for name, mode := range want {
				if got, ok := modes[name]; !ok || got != mode {
					t.Errorf("%s: mode %o (present %v), want %o", name, got, ok, mode)
				}
			}
			// The cpio reader ignores device numbers: read them raw.
			i := bytes.Index(raw, []byte("dev/console\x00")) - newcHeaderLen
			if i < 0 {
				t.Fatal("no dev/console header")
			}
			major, _ := strconv.ParseUint(string(raw[i+newcRdevMajor:i+newcRdevMajor+8]), 16, 32)
			minor, _ := strconv.ParseUint(string(raw[i+newcRdevMinor:i+newcRdevMinor+8]), 16, 32)
			if major != 5 || minor != 1 {
				t.Errorf("dev/console is %d:%d, want 5:1", major, minor)
			}
			f, err := elf.NewFile(bytes.NewReader(initData))
			if err != nil {
				t.Fatalf("init is not ELF: %v", err)
			}
			if f.Machine != arch.machine {
				t.Errorf("init machine %v, want %v", f.Machine, arch.machine)
			}
			for _, p := range f.Progs {
				if p.Type == elf.PT_INTERP {
					t.Error("init has an interpreter: not static")
				}
			}
			if !bytes.Contains(initData, []byte(Marker)) || !bytes.Contains(initData, []byte(CmdlinePrefix)) {
				t.Error("init does not contain the marker lines this package documents")
			}
		})
	}
}

func TestFetchKernel(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("apt downloads here run as root")
	}
	for _, tc := range []struct {
		goarch  string
		machine uint16
	}{{"amd64", pe.IMAGE_FILE_MACHINE_AMD64}, {"arm64", pe.IMAGE_FILE_MACHINE_ARM64}} {
		t.Run(tc.goarch, func(t *testing.T) {
			k, err := FetchKernel(tc.goarch, logWriter{t})
			if err != nil {
				t.Fatal(err)
			}
			st, err := os.Stat(k.Path)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("kernel %s %s (%s): %s, %d bytes", k.Package, k.Version, k.Suite, k.Path, st.Size())
			f, err := pe.Open(k.Path)
			if err != nil {
				t.Fatalf("kernel is not a PE image (EFI stub): %v", err)
			}
			defer f.Close()
			if f.Machine != tc.machine {
				t.Errorf("PE machine %#x, want %#x", f.Machine, tc.machine)
			}
			again, err := FetchKernel(tc.goarch, nil)
			if err != nil || again != k {
				t.Errorf("second fetch: %+v, %v; want the cached %+v", again, err, k)
			}
		})
	}
}
