//go:build linux

package qemu

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func TestParseOneLineSources(t *testing.T) {
	text := `# comment
deb http://mirror.example/debian bookworm main contrib
deb-src http://mirror.example/debian bookworm main
deb [arch=amd64 signed-by=/usr/share/keyrings/x.gpg] https://other.example/debian/ bookworm-updates main # trailing
   
deb cdrom:[Debian 12]/ bookworm main
`
	srcs := parseOneLineSources(text)
	if len(srcs) != 4 {
		t.Fatalf("got %d entries: %+v", len(srcs), srcs)
	}
	s := srcs[2]
	if s.Types[0] != "deb" || s.URIs[0] != "https://other.example/debian/" || s.Suites[0] != "bookworm-updates" || len(s.Components) != 1 || s.Components[0] != "main" {
		t.Errorf("options entry parsed as %+v", s)
	}
}

func TestParseDeb822Sources(t *testing.T) {
	text := `Types: deb
# a comment
URIs: http://mirror.example/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://disabled.example/debian
Suites: bookworm
Components: main
Enabled: no

types: deb deb-src
uris: http://multi.example/debian
suites:
 trixie
 forky
components: main contrib
`
	srcs := parseDeb822Sources(text)
	if len(srcs) != 2 {
		t.Fatalf("got %d entries: %+v", len(srcs), srcs)
	}
	if got := strings.Join(srcs[0].Suites, ","); got != "bookworm,bookworm-updates" || srcs[0].URIs[0] != "http://mirror.example/debian" {
		t.Errorf("first stanza %+v", srcs[0])
	}
	if got := strings.Join(srcs[1].Suites, ","); got != "trixie,forky" || len(srcs[1].Types) != 2 {
		t.Errorf("continuation lines / lower-case keys: %+v", srcs[1])
	}
}

func TestDebianMirror(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files map[string]string
		want  string
	}{
		{
			name: "deb822 beside a third-party list",
			files: map[string]string{
				"sources.list.d/vendor.list": "deb https://vendor.example/apt stable main\n",
				"sources.list.d/debian.sources": "Types: deb\nURIs: http://security.example/debian-security\nSuites: bookworm-security\nComponents: main\n\n" +
					"Types: deb\nURIs: http://mirror.example/debian/\nSuites: bookworm bookworm-updates\nComponents: main\n",
			},
			want: "http://mirror.example/debian",
		},
		{
			name: "one-line sources.list",
			files: map[string]string{
				"sources.list":                   "deb http://mirror.example/debian bookworm-updates main\ndeb [signed-by=/k.gpg] http://mirror.example/debian bookworm main non-free-firmware\n",
				"sources.list.d/x.list.disabled": "deb http://wrong.example/debian bookworm main\n",
			},
			want: "http://mirror.example/debian",
		},
		{
			name: "bookworm without main is skipped",
			files: map[string]string{
				"sources.list": "deb http://wrong.example/debian bookworm contrib\ndeb http://mirror.example/debian trixie main\n",
			},
			want: "http://mirror.example/debian",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			os.Mkdir(filepath.Join(dir, "sources.list.d"), 0o755)
			for name, text := range tc.files {
				if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			got, err := debianMirror(dir)
			if err != nil || got != tc.want {
				t.Errorf("debianMirror = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
	if _, err := debianMirror(t.TempDir()); err == nil {
		t.Error("no sources: want an error")
	}
}

func TestDescribeVersion(t *testing.T) {
	if got, want := describeVersion("2025.02-8+deb13u1", "trixie"), "edk2 2025.02 (trixie, ovmf 2025.02-8+deb13u1)"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if got, want := describeVersion("1:2022.11-6", "bookworm"), "edk2 2022.11 (bookworm, ovmf 1:2022.11-6)"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

// TestFindFirmwareTrixie uses the shared cache (fetching into it once), as
// Run does.
func TestFindFirmwareTrixie(t *testing.T) {
	var log strings.Builder
	fw, err := FindFirmware(Config{Log: &log})
	t.Log(log.String())
	if err != nil {
		t.Fatal(err)
	}
	if fw.Source != "cache" || !strings.Contains(fw.Version, "2025") || !strings.Contains(fw.Version, "trixie") {
		t.Errorf("got %+v, want trixie's edk2 2025 from the cache", fw)
	}
	for _, f := range []string{fw.Code, fw.Vars} {
		if st, err := os.Stat(f); err != nil || st.Size() == 0 {
			t.Errorf("%s: %v", f, err)
		}
	}
}

// TestFetchTrixieConcurrently fetches into an empty cache from two
// goroutines at once: one fetches, the other waits for it and reuses it.
func TestFetchTrixieConcurrently(t *testing.T) {
	t.Setenv("OCIBOOT_CACHE", t.TempDir())
	var wg sync.WaitGroup
	fws := make([]Firmware, 2)
	errs := make([]error, 2)
	logs := make([]strings.Builder, 2)
	for i := range fws {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fws[i], errs[i] = FindFirmware(Config{Log: &logs[i]})
		}()
	}
	wg.Wait()
	fetches := 0
	for i := range fws {
		t.Logf("run %d: %+v\n%s", i, fws[i], logs[i].String())
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if fws[i].Source != "cache" || !strings.Contains(fws[i].Version, "2025") || fws[i] != fws[0] {
			t.Errorf("run %d got %+v", i, fws[i])
		}
		fetches += strings.Count(logs[i].String(), "fetched trixie's ovmf")
	}
	if fetches != 1 {
		t.Errorf("fetched %d times, want 1", fetches)
	}
	left, _ := filepath.Glob(filepath.Join(os.Getenv("OCIBOOT_CACHE"), firmwareSubdir, "*.tmp-*"))
	if len(left) > 0 {
		t.Errorf("temporary directories left: %v", left)
	}
}

func TestFlagFirmware(t *testing.T) {
	sys, err := systemFirmware(nil) // installs ovmf when missing
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(sys.Version, "edk2 ") || sys.Source != "system" {
		t.Errorf("system firmware %+v", sys)
	}
	fw, err := FindFirmware(Config{Firmware: sys.Code})
	if err != nil {
		t.Fatal(err)
	}
	if fw.Code != sys.Code || fw.Vars != sys.Vars || fw.Source != "flag" {
		t.Errorf("got %+v, want %s and %s from flag", fw, sys.Code, sys.Vars)
	}

	dir := t.TempDir()
	lone := filepath.Join(dir, "OVMF_CODE_X.fd")
	noCode := filepath.Join(dir, "firmware.bin")
	for _, f := range []string{lone, noCode} {
		os.WriteFile(f, []byte("x"), 0o644)
		if _, err := FindFirmware(Config{Firmware: f}); err == nil {
			t.Errorf("%s without a variable store: want an error", f)
		}
	}
	if _, err := FindFirmware(Config{Firmware: filepath.Join(dir, "missing_CODE.fd")}); err == nil {
		t.Error("missing firmware: want an error")
	}
}

// TestFindFirmwareFallsBackToSystem makes the trixie fetch fail (no apt-get
// on PATH, empty cache) and expects the system's OVMF with a log line.
func TestFindFirmwareFallsBackToSystem(t *testing.T) {
	if _, err := systemFirmware(nil); err != nil { // installs ovmf when missing
		t.Fatal(err)
	}
	t.Setenv("OCIBOOT_CACHE", t.TempDir())
	t.Setenv("PATH", t.TempDir())
	var log strings.Builder
	fw, err := FindFirmware(Config{Log: &log})
	if err != nil {
		t.Fatal(err)
	}
	if fw.Source != "system" || fw.Code != filepath.Join(systemOVMF, ovmfCode) || fw.Vars != filepath.Join(systemOVMF, ovmfVars) {
		t.Errorf("got %+v", fw)
	}
	if !strings.Contains(log.String(), "FALLING BACK to the system's OVMF") || !strings.Contains(log.String(), "no apt-get") {
		t.Errorf("log does not explain the fallback:\n%s", log.String())
	}
}
