package build

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"go/build"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// GoVersion is the Go release the overlay is written for; go.mod pins the
// same version. Another release may move a system-call site or a constant,
// so the generator refuses it rather than guess.
const GoVersion = "go1.26.8"

// overlayRevision changes whenever the generated files change, so cached
// overlays from an older generator are not reused.
const overlayRevision = "5"

// TrapSymbol is the assembly symbol every system-call instruction becomes a
// call to; package efirt defines it.
const TrapSymbol = "efirt_trap"

// EntrySymbol is the PE entry point, defined by package efirt.
const EntrySymbol = "efirt_entry"

// EfirtPackage is the import path injected into every main package.
const EfirtPackage = "github.com/ociboot/ociboot/efirt"

// archSpec says how one architecture's system-call instruction looks and
// which (file, function) pairs hold one, in order, in GoVersion.
type archSpec struct {
	instr string   // the instruction as it stands alone on a line
	call  string   // its replacement
	sites []string // "file\tfunction", one per site, in file order
	// reserved are registers the replacement uses as scratch; a file with
	// sites that names one of them could hold a value there, so the
	// generator refuses it.
	reserved []string
}

var archSpecs = map[string]archSpec{
	"amd64": {
		instr: "SYSCALL",
		call:  "CALL\t" + TrapSymbol + "(SB)",
		sites: []string{
			"internal/runtime/syscall/linux/asm_linux_amd64.s\t·Syscall6<ABIInternal>",
			"runtime/sys_linux_amd64.s\truntime·exit",
			"runtime/sys_linux_amd64.s\truntime·exitThread",
			"runtime/sys_linux_amd64.s\truntime·open",
			"runtime/sys_linux_amd64.s\truntime·closefd",
			"runtime/sys_linux_amd64.s\truntime·write1",
			"runtime/sys_linux_amd64.s\truntime·read",
			"runtime/sys_linux_amd64.s\truntime·pipe2",
			"runtime/sys_linux_amd64.s\truntime·usleep",
			"runtime/sys_linux_amd64.s\truntime·gettid",
			"runtime/sys_linux_amd64.s\truntime·raise",
			"runtime/sys_linux_amd64.s\truntime·raise",
			"runtime/sys_linux_amd64.s\truntime·raise",
			"runtime/sys_linux_amd64.s\truntime·raiseproc",
			"runtime/sys_linux_amd64.s\truntime·raiseproc",
			"runtime/sys_linux_amd64.s\t·getpid",
			"runtime/sys_linux_amd64.s\t·tgkill",
			"runtime/sys_linux_amd64.s\truntime·setitimer",
			"runtime/sys_linux_amd64.s\truntime·timer_create",
			"runtime/sys_linux_amd64.s\truntime·timer_settime",
			"runtime/sys_linux_amd64.s\truntime·timer_delete",
			"runtime/sys_linux_amd64.s\truntime·mincore",
			"runtime/sys_linux_amd64.s\truntime·nanotime1",
			"runtime/sys_linux_amd64.s\truntime·rtsigprocmask",
			"runtime/sys_linux_amd64.s\truntime·rt_sigaction",
			"runtime/sys_linux_amd64.s\truntime·sigreturn__sigaction",
			"runtime/sys_linux_amd64.s\truntime·sysMmap",
			"runtime/sys_linux_amd64.s\truntime·sysMunmap",
			"runtime/sys_linux_amd64.s\truntime·madvise",
			"runtime/sys_linux_amd64.s\truntime·futex",
			"runtime/sys_linux_amd64.s\truntime·clone",
			"runtime/sys_linux_amd64.s\truntime·clone",
			"runtime/sys_linux_amd64.s\truntime·clone",
			"runtime/sys_linux_amd64.s\truntime·sigaltstack",
			"runtime/sys_linux_amd64.s\truntime·settls",
			"runtime/sys_linux_amd64.s\truntime·osyield",
			"runtime/sys_linux_amd64.s\truntime·sched_getaffinity",
			"runtime/sys_linux_amd64.s\truntime·access",
			"runtime/sys_linux_amd64.s\truntime·connect",
			"runtime/sys_linux_amd64.s\truntime·socket",
			"runtime/sys_linux_amd64.s\truntime·sbrk0",
			"runtime/time_linux_amd64.s\ttime·now<ABIInternal>",
			"runtime/time_linux_amd64.s\ttime·now<ABIInternal>",
			"syscall/asm_linux_amd64.s\t·rawVforkSyscall",
			"syscall/asm_linux_amd64.s\t·rawSyscallNoError",
			"syscall/asm_linux_amd64.s\t·gettimeofday",
		},
	},
	"arm64": {
		// BL overwrites the link register, and many sites are NOFRAME
		// leaves whose LR is their only way back: R18, the platform
		// register Go never allocates, keeps it across the call. The
		// trap preserves every register but R0, as SVC does.
		instr:    "SVC",
		call:     "MOVD\tR30, R18_PLATFORM; BL\t" + TrapSymbol + "(SB); MOVD\tR18_PLATFORM, R30",
		reserved: []string{"R18", "R18_PLATFORM"},
		sites: []string{
			"internal/runtime/syscall/linux/asm_linux_arm64.s\t·Syscall6",
			"runtime/sys_linux_arm64.s\truntime·exit",
			"runtime/sys_linux_arm64.s\truntime·exitThread",
			"runtime/sys_linux_arm64.s\truntime·open",
			"runtime/sys_linux_arm64.s\truntime·closefd",
			"runtime/sys_linux_arm64.s\truntime·write1",
			"runtime/sys_linux_arm64.s\truntime·read",
			"runtime/sys_linux_arm64.s\truntime·pipe2",
			"runtime/sys_linux_arm64.s\truntime·usleep",
			"runtime/sys_linux_arm64.s\truntime·gettid",
			"runtime/sys_linux_arm64.s\truntime·raise",
			"runtime/sys_linux_arm64.s\truntime·raise",
			"runtime/sys_linux_arm64.s\truntime·raise",
			"runtime/sys_linux_arm64.s\truntime·raiseproc",
			"runtime/sys_linux_arm64.s\truntime·raiseproc",
			"runtime/sys_linux_arm64.s\t·getpid",
			"runtime/sys_linux_arm64.s\t·tgkill",
			"runtime/sys_linux_arm64.s\truntime·setitimer",
			"runtime/sys_linux_arm64.s\truntime·timer_create",
			"runtime/sys_linux_arm64.s\truntime·timer_settime",
			"runtime/sys_linux_arm64.s\truntime·timer_delete",
			"runtime/sys_linux_arm64.s\truntime·mincore",
			"runtime/sys_linux_arm64.s\truntime·walltime",
			"runtime/sys_linux_arm64.s\truntime·nanotime1",
			"runtime/sys_linux_arm64.s\truntime·rtsigprocmask",
			"runtime/sys_linux_arm64.s\truntime·rt_sigaction",
			"runtime/sys_linux_arm64.s\truntime·sysMmap",
			"runtime/sys_linux_arm64.s\truntime·sysMunmap",
			"runtime/sys_linux_arm64.s\truntime·madvise",
			"runtime/sys_linux_arm64.s\truntime·futex",
			"runtime/sys_linux_arm64.s\truntime·clone",
			"runtime/sys_linux_arm64.s\truntime·clone",
			"runtime/sys_linux_arm64.s\truntime·clone",
			"runtime/sys_linux_arm64.s\truntime·sigaltstack",
			"runtime/sys_linux_arm64.s\truntime·osyield",
			"runtime/sys_linux_arm64.s\truntime·sched_getaffinity",
			"runtime/sys_linux_arm64.s\truntime·access",
			"runtime/sys_linux_arm64.s\truntime·connect",
			"runtime/sys_linux_arm64.s\truntime·socket",
			"runtime/sys_linux_arm64.s\truntime·sbrk0",
			"syscall/asm_linux_arm64.s\t·rawVforkSyscall",
			"syscall/asm_linux_arm64.s\t·rawSyscallNoError",
		},
	},
}

// goPatch replaces one whole line of a Go source file; the old line must
// occur exactly once.
type goPatch struct {
	file, old, new string
}

var goPatches = []goPatch{
	// The runtime assumes an MMU and reserves > 1.5 GiB of address space
	// up front. efirt hands out real memory below 64 GiB: 36 address bits
	// and no arena offset shrink the reservations to a few hundred KiB;
	// 4 MiB arenas (as on windows/64) keep what is reserved close to what
	// is used.
	{"runtime/malloc.go",
		"\theapAddrBits = (_64bit*(1-goarch.IsWasm)*(1-goos.IsIos*goarch.IsArm64))*48 + (1-_64bit+goarch.IsWasm)*(32-(goarch.IsMips+goarch.IsMipsle)) + 40*goos.IsIos*goarch.IsArm64",
		"\theapAddrBits = 36 // efirt: firmware memory below 64 GiB"},
	{"runtime/malloc.go",
		"\tlogHeapArenaBytes = (6+20)*(_64bit*(1-goos.IsWindows)*(1-goarch.IsWasm)*(1-goos.IsIos*goarch.IsArm64)) + (2+20)*(_64bit*goos.IsWindows) + (2+20)*(1-_64bit) + (9+10)*goarch.IsWasm + (2+20)*goos.IsIos*goarch.IsArm64",
		"\tlogHeapArenaBytes = 2 + 20 // efirt: 4 MiB arenas"},
	{"runtime/malloc.go",
		"\tarenaBaseOffset = 0xffff800000000000*goarch.IsAmd64 + 0x0a00000000000000*goos.IsAix",
		"\tarenaBaseOffset = 0 // efirt: addresses start at 0"},
	// The FIPS CPU-jitter entropy source keeps a 32 MiB scratch buffer in
	// BSS in every binary that imports crypto; it is only used in FIPS
	// mode, which efirt does not offer.
	{"crypto/internal/entropy/v1.0.0/entropy.go",
		"type ScratchBuffer [1 << 25]byte",
		"type ScratchBuffer [1 << 12]byte // efirt: FIPS mode is not offered"},
}

// memRegionFile adds the hook tamago's dma package expects of its runtime.
const memRegionFile = `// Code generated by ociboot efirt/build; DO NOT EDIT.

package runtime

// MemRegion returns the start and end of the memory the runtime occupies,
// as TamaGo's runtime does for github.com/usbarmory/tamago/dma. Under efirt
// that is the loaded image; heap pages come from the firmware's page
// allocator and never overlap other allocations.
func MemRegion() (start uint64, end uint64) { return efirtMemRegion() }

// efirtMemRegion is implemented by package efirt (linkname push).
func efirtMemRegion() (start uint64, end uint64)
`

// Overlay is a generated overlay for one architecture.
type Overlay struct {
	Dir     string            // where the generated files live
	Replace map[string]string // GOROOT file -> generated file ("" deletes)
	Sites   int               // system-call instructions rewritten
}

// GenerateOverlay writes (or reuses from cacheDir) the overlay for arch
// from the sources in goroot.
func GenerateOverlay(goroot, arch, cacheDir string) (*Overlay, error) {
	spec, ok := archSpecs[arch]
	if !ok {
		return nil, fmt.Errorf("efirt/build: architecture %q is not supported yet (have %s)", arch, strings.Join(supportedArches(), ", "))
	}
	if err := checkGoVersion(goroot); err != nil {
		return nil, err
	}
	sum := sha256.Sum256([]byte(GoVersion + "\x00" + arch + "\x00" + overlayRevision + "\x00" + goroot))
	dir := filepath.Join(cacheDir, "overlay", arch+"-"+hex.EncodeToString(sum[:8]))
	manifest := filepath.Join(dir, "overlay.json")
	if data, err := os.ReadFile(manifest); err == nil {
		var ov Overlay
		if err := json.Unmarshal(data, &ov); err == nil {
			return &ov, nil
		}
	}

	tmp, err := os.MkdirTemp(cacheDir, "overlay-tmp-")
	if err != nil {
		return nil, fmt.Errorf("efirt/build: overlay cache: %w", err)
	}
	defer os.RemoveAll(tmp)
	ov := &Overlay{Dir: dir, Replace: map[string]string{}}
	write := func(rel string, data []byte) error {
		gen := filepath.Join(tmp, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(gen), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(gen, data, 0o644); err != nil {
			return err
		}
		ov.Replace[filepath.Join(goroot, "src", filepath.FromSlash(rel))] = filepath.Join(dir, filepath.FromSlash(rel))
		return nil
	}

	files, err := rewriteSyscallSites(goroot, arch, spec)
	if err != nil {
		return nil, err
	}
	for _, f := range files {
		if err := write(f.rel, f.data); err != nil {
			return nil, fmt.Errorf("efirt/build: writing overlay: %w", err)
		}
		ov.Sites += f.sites
	}
	patched, err := applyGoPatches(goroot, goPatches)
	if err != nil {
		return nil, err
	}
	for _, rel := range sortedKeys(patched) {
		if err := write(rel, patched[rel]); err != nil {
			return nil, fmt.Errorf("efirt/build: writing overlay: %w", err)
		}
	}
	if err := write("runtime/efirt_memregion.go", []byte(memRegionFile)); err != nil {
		return nil, fmt.Errorf("efirt/build: writing overlay: %w", err)
	}
	data, err := json.MarshalIndent(ov, "", "\t")
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(tmp, "overlay.json"), data, 0o644); err != nil {
		return nil, fmt.Errorf("efirt/build: writing overlay: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return nil, fmt.Errorf("efirt/build: overlay cache: %w", err)
	}
	// Publish atomically; a concurrent build may have won the race.
	if err := os.Rename(tmp, dir); err != nil {
		if _, statErr := os.Stat(manifest); statErr != nil {
			return nil, fmt.Errorf("efirt/build: publishing overlay: %w", err)
		}
	}
	return ov, nil
}

func supportedArches() []string { return sortedKeys(archSpecs) }

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// checkGoVersion refuses a GOROOT of another release than GoVersion.
func checkGoVersion(goroot string) error {
	data, err := os.ReadFile(filepath.Join(goroot, "VERSION"))
	if err != nil {
		return fmt.Errorf("efirt/build: reading the Go version of %s: %w", goroot, err)
	}
	v, _, _ := strings.Cut(string(data), "\n")
	if strings.TrimSpace(v) != GoVersion {
		return fmt.Errorf("efirt/build: GOROOT %s is %s, but efirt's overlay is written for %s (the version go.mod pins); build with %s",
			goroot, strings.TrimSpace(v), GoVersion, GoVersion)
	}
	return nil
}

type rewritten struct {
	rel   string
	data  []byte
	sites int
}

// rewriteSyscallSites finds every assembly file of std that builds for
// linux/arch and holds a system-call instruction, replaces each with a call
// to the trap, and checks the sites against the expected list.
func rewriteSyscallSites(goroot, arch string, spec archSpec) ([]rewritten, error) {
	ctx := build.Default
	ctx.GOROOT, ctx.GOOS, ctx.GOARCH, ctx.CgoEnabled = goroot, "linux", arch, false
	src := filepath.Join(goroot, "src")
	var out []rewritten
	var found []string
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel := filepath.ToSlash(strings.TrimPrefix(path, src+string(filepath.Separator)))
		if d.IsDir() {
			if rel == "cmd" || d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".s") {
			return nil
		}
		if ok, err := ctx.MatchFile(filepath.Dir(path), d.Name()); err != nil || !ok {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		newData, funcs := rewriteAsm(data, spec)
		if len(funcs) == 0 {
			return nil
		}
		if r := usesRegister(data, spec.reserved); r != "" {
			return fmt.Errorf("%s uses %s, which the rewritten system calls need as scratch", rel, r)
		}
		for _, fn := range funcs {
			found = append(found, rel+"\t"+fn)
		}
		out = append(out, rewritten{rel: rel, data: newData, sites: len(funcs)})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("efirt/build: scanning %s: %w", src, err)
	}
	if err := compareSites(found, spec.sites); err != nil {
		return nil, err
	}
	return out, nil
}

// rewriteAsm replaces every line that is exactly the system-call
// instruction (with an optional comment) and returns the enclosing TEXT
// symbol of each.
func rewriteAsm(data []byte, spec archSpec) ([]byte, []string) {
	var out bytes.Buffer
	var funcs []string
	current := ""
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		code, comment, _ := strings.Cut(line, "//")
		code = strings.TrimSpace(code)
		if strings.HasPrefix(code, "TEXT") {
			if f := strings.Fields(strings.TrimPrefix(code, "TEXT")); len(f) > 0 {
				current = strings.TrimSuffix(strings.SplitN(f[0], "(SB)", 2)[0], ",")
			}
		}
		if code == spec.instr {
			funcs = append(funcs, current)
			indent := line[:len(line)-len(strings.TrimLeft(line, " \t"))]
			line = indent + spec.call + "\t// efirt: was " + spec.instr
			if comment != "" {
				line += ";" + comment
			}
		}
		out.WriteString(line)
		out.WriteByte('\n')
	}
	return out.Bytes(), funcs
}

// usesRegister returns the first of regs that the code (not the comments)
// of an assembly file names, or "".
func usesRegister(data []byte, regs []string) string {
	for _, line := range strings.Split(string(data), "\n") {
		code, _, _ := strings.Cut(line, "//")
		for _, f := range strings.FieldsFunc(code, func(r rune) bool {
			return !(r == '_' || r >= '0' && r <= '9' || r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z')
		}) {
			for _, r := range regs {
				if f == r {
					return r
				}
			}
		}
	}
	return ""
}

func compareSites(found, want []string) error {
	if strings.Join(found, "\n") == strings.Join(want, "\n") {
		return nil
	}
	var msg strings.Builder
	fmt.Fprintf(&msg, "efirt/build: the system-call sites of this Go tree differ from those known for %s (found %d, want %d):", GoVersion, len(found), len(want))
	wantSet := map[string]int{}
	for _, w := range want {
		wantSet[w]++
	}
	for _, f := range found {
		if wantSet[f] == 0 {
			fmt.Fprintf(&msg, "\n  unexpected: %s", strings.Replace(f, "\t", " in ", 1))
			continue
		}
		wantSet[f]--
	}
	for _, w := range sortedKeys(wantSet) {
		for i := 0; i < wantSet[w]; i++ {
			fmt.Fprintf(&msg, "\n  missing: %s", strings.Replace(w, "\t", " in ", 1))
		}
	}
	return fmt.Errorf("%s", msg.String())
}

// applyGoPatches returns the patched contents of every file patches touch.
func applyGoPatches(goroot string, patches []goPatch) (map[string][]byte, error) {
	files := map[string][]byte{}
	for _, p := range patches {
		data, ok := files[p.file]
		if !ok {
			var err error
			data, err = os.ReadFile(filepath.Join(goroot, "src", filepath.FromSlash(p.file)))
			if err != nil {
				return nil, fmt.Errorf("efirt/build: %w", err)
			}
		}
		lines := strings.Split(string(data), "\n")
		n := 0
		for i, l := range lines {
			if l == p.old {
				lines[i] = p.new
				n++
			}
		}
		if n != 1 {
			return nil, fmt.Errorf("efirt/build: %s: expected exactly one line %q, found %d: the Go source changed shape", p.file, strings.TrimSpace(p.old), n)
		}
		files[p.file] = []byte(strings.Join(lines, "\n"))
	}
	return files, nil
}
