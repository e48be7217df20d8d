package efirt

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"unsafe"
)

// asmDefines reads the #define constants of one architecture's assembly.
func asmDefines(t *testing.T, arch string) map[string]int64 {
	t.Helper()
	data, err := os.ReadFile("efirt_" + arch + ".s")
	if err != nil {
		t.Fatal(err)
	}
	defs := map[string]int64{}
	for _, m := range regexp.MustCompile(`(?m)^#define\s+(\w+)\s+\$?\(?([0-9a-fx]+)(?:\*(\d+))?\)?`).FindAllStringSubmatch(string(data), -1) {
		v, err := strconv.ParseInt(m[2], 0, 64)
		if err != nil {
			t.Fatal(err)
		}
		if m[3] != "" {
			k, _ := strconv.ParseInt(m[3], 10, 64)
			v *= k
		}
		defs[m[1]] = v
	}
	return defs
}

// checkDefines compares the assembly's constants with the Go layout.
func checkDefines(t *testing.T, arch string, want map[string]uintptr) {
	t.Helper()
	d := asmDefines(t, arch)
	for name, off := range want {
		got, ok := d[name]
		if !ok {
			t.Errorf("efirt_%s.s does not define %s", arch, name)
			continue
		}
		if got != int64(off) {
			t.Errorf("%s: %s = %d in assembly, %d in Go", arch, name, got, off)
		}
	}
}

// The assembly addresses thread and frame fields by constant offsets.
func TestLayoutMatchesAssembly(t *testing.T) {
	var th thread
	var f amd64Frame
	checkDefines(t, "amd64", map[string]uintptr{
		"T_KSP": unsafe.Offsetof(th.ksp), "T_FS": unsafe.Offsetof(th.fs), "T_KTOP": unsafe.Offsetof(th.ktop),
		"T_KG": unsafe.Offsetof(th.kg), "T_G": unsafe.Offsetof(th.g),
		"F_TLS": unsafe.Offsetof(f.tls), "F_VEC": unsafe.Offsetof(f.vec), "F_ERR": unsafe.Offsetof(f.err),
		"F_CR2": unsafe.Offsetof(f.cr2), "F_CX": unsafe.Offsetof(f.cx), "F_R11": unsafe.Offsetof(f.r11),
		"F_CS": unsafe.Offsetof(f.cs), "F_FLAGS": unsafe.Offsetof(f.rflags), "F_SS": unsafe.Offsetof(f.ss),
		"MAX_THREADS": maxThreads, "FIRMWARE_STACK": firmwareStackBytes,
		"F_AX": unsafe.Offsetof(f.ax), "F_BX": unsafe.Offsetof(f.bx), "F_DX": unsafe.Offsetof(f.dx),
		"F_SI": unsafe.Offsetof(f.si), "F_DI": unsafe.Offsetof(f.di), "F_BP": unsafe.Offsetof(f.bp),
		"F_R8": unsafe.Offsetof(f.r8), "F_R9": unsafe.Offsetof(f.r9), "F_R10": unsafe.Offsetof(f.r10),
		"F_R12": unsafe.Offsetof(f.r12), "F_R13": unsafe.Offsetof(f.r13), "F_R14": unsafe.Offsetof(f.r14),
		"F_R15": unsafe.Offsetof(f.r15), "F_RIP": unsafe.Offsetof(f.rip), "F_RSP": unsafe.Offsetof(f.rsp),
		"F_SIZE":      unsafe.Sizeof(f),
		"KSTACK_SIZE": kstackSize, "KSTACK_GUARD": kstackGuard,
	})
	// The return paths pop AX..R15 in field order and IRETQ takes the
	// last five words.
	regs := []uintptr{unsafe.Offsetof(f.ax), unsafe.Offsetof(f.bx), unsafe.Offsetof(f.cx), unsafe.Offsetof(f.dx),
		unsafe.Offsetof(f.si), unsafe.Offsetof(f.di), unsafe.Offsetof(f.bp), unsafe.Offsetof(f.r8),
		unsafe.Offsetof(f.r9), unsafe.Offsetof(f.r10), unsafe.Offsetof(f.r11), unsafe.Offsetof(f.r12),
		unsafe.Offsetof(f.r13), unsafe.Offsetof(f.r14), unsafe.Offsetof(f.r15), unsafe.Offsetof(f.rip),
		unsafe.Offsetof(f.cs), unsafe.Offsetof(f.rflags), unsafe.Offsetof(f.rsp), unsafe.Offsetof(f.ss)}
	for i := 1; i < len(regs); i++ {
		if regs[i] != regs[i-1]+8 {
			t.Errorf("frame word %d is not in pop order", i)
		}
	}
	if unsafe.Sizeof(f) != unsafe.Offsetof(f.ss)+8 {
		t.Errorf("the IRETQ frame does not end the frame")
	}
}

func TestLayoutMatchesAssemblyArm64(t *testing.T) {
	var th thread
	var f arm64Frame
	checkDefines(t, "arm64", map[string]uintptr{
		"T_KSP": unsafe.Offsetof(th.ksp), "T_FS": unsafe.Offsetof(th.fs), "T_KTOP": unsafe.Offsetof(th.ktop),
		"T_KG": unsafe.Offsetof(th.kg), "T_G": unsafe.Offsetof(th.g),
		"F_R0": unsafe.Offsetof(f.r), "F_R30": unsafe.Offsetof(f.r) + 30*8, "F_SP": unsafe.Offsetof(f.sp),
		"F_PC": unsafe.Offsetof(f.pc), "F_PSTATE": unsafe.Offsetof(f.pstate), "F_VEC": unsafe.Offsetof(f.vec),
		"F_ESR": unsafe.Offsetof(f.esr), "F_FAR": unsafe.Offsetof(f.far), "F_SIZE": unsafe.Sizeof(f),
		"MAX_THREADS": maxThreads, "FIRMWARE_STACK": firmwareStackBytes,
		"KSTACK_SIZE": kstackSize, "KSTACK_GUARD": kstackGuard,
	})
	// The kernel stack below the frame must stay 16-byte aligned, and the
	// save and load macros store R0-R30 as consecutive words.
	if unsafe.Sizeof(f)%16 != 0 {
		t.Errorf("arm64 frame size %d is not a multiple of 16", unsafe.Sizeof(f))
	}
	if unsafe.Offsetof(f.sp) != unsafe.Offsetof(f.r)+31*8 {
		t.Errorf("sp does not follow R30")
	}
}

// kernelArches are the architectures efirt has a machine layer for.
var kernelArches = []string{"amd64", "arm64", "loong64", "riscv64"}

// buildKernelProbe links a program that imports efirt (as the build
// injects it) for arch and returns its path.
func buildKernelProbe(t *testing.T, arch, gcflags string) (string, []byte) {
	t.Helper()
	dir := t.TempDir()
	main := filepath.Join(dir, "main.go")
	if err := os.WriteFile(main, []byte("package main\n\nimport _ \"github.com/ociboot/ociboot/efirt\"\n\nfunc main() {}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "probe")
	cmd := exec.Command("go", "build", "-gcflags=github.com/ociboot/ociboot/efirt="+gcflags, "-o", out, main)
	cmd.Env = append(os.Environ(), "GOOS=linux", "GOARCH="+arch, "CGO_ENABLED=0")
	msgs, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, msgs)
	}
	return out, msgs
}

// kmain runs before the Go runtime, so no package variable of efirt may
// need an initialiser at run time: every one must be static data.
func TestKernelHasNoDynamicInit(t *testing.T) {
	for _, arch := range kernelArches {
		bin, _ := buildKernelProbe(t, arch, "")
		out, err := exec.Command("go", "tool", "nm", bin).CombinedOutput()
		if err != nil {
			t.Fatalf("go tool nm: %v\n%s", err, out)
		}
		for _, line := range strings.Split(string(out), "\n") {
			if strings.HasSuffix(line, " github.com/ociboot/ociboot/efirt.init") {
				t.Fatalf("%s: package efirt has an init function: a package variable is initialised at run time", arch)
			}
		}
	}
}

// The kernel runs under a fake g: it must never allocate. Only the
// goroutine-side API in call.go may.
func TestKernelDoesNotAllocate(t *testing.T) {
	for _, arch := range kernelArches {
		_, msgs := buildKernelProbe(t, arch, "-m")
		for _, line := range strings.Split(string(msgs), "\n") {
			if !strings.Contains(line, "escapes to heap") && !strings.Contains(line, "moved to heap") {
				continue
			}
			if strings.Contains(line, "call.go:") {
				continue
			}
			t.Errorf("%s: kernel allocation: %s", arch, line)
		}
	}
}
