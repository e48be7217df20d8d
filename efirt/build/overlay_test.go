package build

import (
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
)

func TestOverlayGoModPinsGoVersion(t *testing.T) {
	data, err := os.ReadFile("../../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^go (\S+)$`).FindSubmatch(data)
	if m == nil || "go"+string(m[1]) != GoVersion {
		t.Fatalf("go.mod pins %q, the overlay is written for %s", m, GoVersion)
	}
	if runtime.Version() != GoVersion {
		t.Fatalf("tests run with %s, the pinned toolchain is %s", runtime.Version(), GoVersion)
	}
}

func TestOverlayGenerate(t *testing.T) {
	for _, arch := range supportedArches() {
		t.Run(arch, func(t *testing.T) { testOverlayGenerate(t, arch) })
	}
}

func testOverlayGenerate(t *testing.T, arch string) {
	goroot := runtime.GOROOT()
	cache := t.TempDir()
	spec := archSpecs[arch]
	ov, err := GenerateOverlay(goroot, arch, cache)
	if err != nil {
		t.Fatal(err)
	}
	if ov.Sites != len(spec.sites) {
		t.Errorf("rewrote %d sites, want %d", ov.Sites, len(spec.sites))
	}
	calls := 0
	for orig, gen := range ov.Replace {
		data, err := os.ReadFile(gen)
		if err != nil {
			t.Fatal(err)
		}
		text := string(data)
		if strings.HasSuffix(orig, ".s") {
			for _, line := range strings.Split(text, "\n") {
				code, _, _ := strings.Cut(line, "//")
				if strings.TrimSpace(code) == spec.instr {
					t.Errorf("%s still has a %s instruction", orig, spec.instr)
				}
			}
			calls += strings.Count(text, spec.call)
		}
		if strings.HasSuffix(orig, "runtime/malloc.go") {
			for _, want := range []string{"heapAddrBits = 36", "logHeapArenaBytes = 2 + 20", "arenaBaseOffset = 0 "} {
				if !strings.Contains(text, want) {
					t.Errorf("malloc.go overlay lacks %q", want)
				}
			}
		}
		if strings.HasSuffix(orig, "entropy/v1.0.0/entropy.go") && !strings.Contains(text, "type ScratchBuffer [1 << 12]byte") {
			t.Errorf("entropy.go overlay keeps the 32 MiB scratch buffer")
		}
	}
	if calls != ov.Sites {
		t.Errorf("%d trap calls in the overlay, want %d", calls, ov.Sites)
	}
	if _, ok := ov.Replace[filepath.Join(goroot, "src", "runtime", "efirt_memregion.go")]; !ok {
		t.Errorf("runtime.MemRegion is not added")
	}

	// The second call reuses the cached files.
	again, err := GenerateOverlay(goroot, arch, cache)
	if err != nil {
		t.Fatal(err)
	}
	if again.Dir != ov.Dir || len(again.Replace) != len(ov.Replace) {
		t.Errorf("cached overlay differs: %s vs %s", again.Dir, ov.Dir)
	}
}

func TestOverlayRejectsOtherGoVersion(t *testing.T) {
	fake := t.TempDir()
	if err := os.WriteFile(filepath.Join(fake, "VERSION"), []byte("go1.25.3\ntime 2025-01-01\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := GenerateOverlay(fake, "amd64", t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "go1.25.3") || !strings.Contains(err.Error(), GoVersion) {
		t.Fatalf("got %v, want an error naming both versions", err)
	}
}

func TestOverlayRejectsUnknownArch(t *testing.T) {
	if _, err := GenerateOverlay(runtime.GOROOT(), "mips64", t.TempDir()); err == nil {
		t.Fatal("mips64 accepted")
	}
}

// fakeGoroot copies the files the generator reads into a temporary GOROOT,
// so a test can change their shape.
func fakeGoroot(t *testing.T) string {
	t.Helper()
	src := runtime.GOROOT()
	dst := t.TempDir()
	files := []string{"VERSION"}
	seen := map[string]bool{}
	for _, arch := range supportedArches() {
		for _, s := range archSpecs[arch].sites {
			f, _, _ := strings.Cut(s, "\t")
			if !seen[f] {
				seen[f] = true
				files = append(files, "src/"+f)
			}
		}
	}
	for _, p := range goPatches {
		files = append(files, "src/"+p.file)
	}
	for _, f := range files {
		data, err := os.ReadFile(filepath.Join(src, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dst, f)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, f), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

func TestOverlayRejectsUnexpectedSites(t *testing.T) {
	root := fakeGoroot(t)
	if _, err := GenerateOverlay(root, "amd64", t.TempDir()); err != nil {
		t.Fatalf("unchanged copy rejected: %v", err)
	}

	// A new system call in a function the generator does not know.
	extra := filepath.Join(root, "src/runtime/sys_linux_amd64.s")
	data, _ := os.ReadFile(extra)
	data = append(data, []byte("\nTEXT runtime·newcall(SB),NOSPLIT,$0\n\tMOVL\t$999, AX\n\tSYSCALL\n\tRET\n")...)
	os.WriteFile(extra, data, 0o644)
	_, err := GenerateOverlay(root, "amd64", t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "unexpected: runtime/sys_linux_amd64.s in runtime·newcall") {
		t.Fatalf("got %v, want the unexpected site named", err)
	}
}

func TestOverlayRejectsMissingSite(t *testing.T) {
	root := fakeGoroot(t)
	f := filepath.Join(root, "src/syscall/asm_linux_amd64.s")
	data, _ := os.ReadFile(f)
	// Hide the last site behind a different spelling.
	i := strings.LastIndex(string(data), "\tSYSCALL")
	data = []byte(string(data[:i]) + "\tBYTE $0x0f; BYTE $0x05" + string(data[i+len("\tSYSCALL"):]))
	os.WriteFile(f, data, 0o644)
	_, err := GenerateOverlay(root, "amd64", t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "missing: syscall/asm_linux_amd64.s in ·gettimeofday") {
		t.Fatalf("got %v, want the missing site named", err)
	}
}

func TestOverlayRejectsChangedConstant(t *testing.T) {
	root := fakeGoroot(t)
	f := filepath.Join(root, "src/runtime/malloc.go")
	data, _ := os.ReadFile(f)
	os.WriteFile(f, []byte(strings.Replace(string(data), "0xffff800000000000*goarch.IsAmd64", "0xffff000000000000*goarch.IsAmd64", 1)), 0o644)
	_, err := GenerateOverlay(root, "amd64", t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "arenaBaseOffset") || !strings.Contains(err.Error(), "found 0") {
		t.Fatalf("got %v, want the changed line reported", err)
	}
}

// On arm64 the branch-and-link that replaces SVC clobbers LR: the site
// must keep LR in R18 across it and put it back before anything else runs.
func TestOverlayRewriteArm64KeepsLR(t *testing.T) {
	in := "TEXT runtime·osyield(SB),NOSPLIT|NOFRAME,$0\n\tMOVD\t$SYS_sched_yield, R8\n\tSVC\n\tRET\n"
	out, funcs := rewriteAsm([]byte(in), archSpecs["arm64"])
	if len(funcs) != 1 || funcs[0] != "runtime·osyield" {
		t.Fatalf("sites %q", funcs)
	}
	want := "\tMOVD\tR30, R18_PLATFORM; BL\tefirt_trap(SB); MOVD\tR18_PLATFORM, R30\t// efirt: was SVC\n\tRET\n"
	if !strings.Contains(string(out), want) {
		t.Fatalf("rewritten:\n%s\nwant %q", out, want)
	}
}

// A site file that already uses the scratch register is refused.
func TestOverlayRejectsReservedRegister(t *testing.T) {
	root := fakeGoroot(t)
	if _, err := GenerateOverlay(root, "arm64", t.TempDir()); err != nil {
		t.Fatalf("pristine tree: %v", err)
	}
	f := filepath.Join(root, "src/runtime/sys_linux_arm64.s")
	data, err := os.ReadFile(f)
	if err != nil {
		t.Fatal(err)
	}
	data = append(data, []byte("\nTEXT runtime·usesR18(SB),NOSPLIT,$0\n\tMOVD\tR0, R18_PLATFORM // keep\n\tRET\n")...)
	if err := os.WriteFile(f, data, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = GenerateOverlay(root, "arm64", t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "sys_linux_arm64.s uses R18_PLATFORM") {
		t.Fatalf("got %v, want the scratch register refused", err)
	}
}

func TestOverlayRewriteAsmKeepsComments(t *testing.T) {
	in := "TEXT ·f(SB),NOSPLIT,$0\n\tMOVQ\t$1, AX\n\tSYSCALL // note\n\tRET\n"
	out, funcs := rewriteAsm([]byte(in), archSpecs["amd64"])
	if len(funcs) != 1 || funcs[0] != "·f" {
		t.Fatalf("sites %q", funcs)
	}
	want := "\tCALL\tefirt_trap(SB)\t// efirt: was SYSCALL; note\n"
	if !strings.Contains(string(out), want) {
		t.Fatalf("rewritten:\n%s\nwant line %q", out, want)
	}
}
