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

// asmDefines reads the #define constants of the amd64 assembly.
func asmDefines(t *testing.T) map[string]int64 {
	t.Helper()
	data, err := os.ReadFile("efirt_amd64.s")
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

// The assembly addresses thread and frame fields by constant offsets.
func TestLayoutMatchesAssembly(t *testing.T) {
	d := asmDefines(t)
	var th thread
	var f frame
	want := map[string]uintptr{
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
	}
	for name, off := range want {
		got, ok := d[name]
		if !ok {
			t.Errorf("efirt_amd64.s does not define %s", name)
			continue
		}
		if got != int64(off) {
			t.Errorf("%s = %d in assembly, %d in Go", name, got, off)
		}
	}
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

// buildKernelProbe links a program that imports efirt (as the build
// injects it) and returns its path.
func buildKernelProbe(t *testing.T, gcflags string) (string, []byte) {
	t.Helper()
	dir := t.TempDir()
	main := filepath.Join(dir, "main.go")
	if err := os.WriteFile(main, []byte("package main\n\nimport _ \"github.com/ociboot/ociboot/efirt\"\n\nfunc main() {}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "probe")
	cmd := exec.Command("go", "build", "-gcflags=github.com/ociboot/ociboot/efirt="+gcflags, "-o", out, main)
	cmd.Env = append(os.Environ(), "GOOS=linux", "GOARCH=amd64", "CGO_ENABLED=0")
	msgs, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, msgs)
	}
	return out, msgs
}

// kmain runs before the Go runtime, so no package variable of efirt may
// need an initialiser at run time: every one must be static data.
func TestKernelHasNoDynamicInit(t *testing.T) {
	bin, _ := buildKernelProbe(t, "")
	out, err := exec.Command("go", "tool", "nm", bin).CombinedOutput()
	if err != nil {
		t.Fatalf("go tool nm: %v\n%s", err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasSuffix(line, " github.com/ociboot/ociboot/efirt.init") {
			t.Fatalf("package efirt has an init function: a package variable is initialised at run time")
		}
	}
}

// The kernel runs under a fake g: it must never allocate. Only the
// goroutine-side API in call.go may.
func TestKernelDoesNotAllocate(t *testing.T) {
	_, msgs := buildKernelProbe(t, "-m")
	for _, line := range strings.Split(string(msgs), "\n") {
		if !strings.Contains(line, "escapes to heap") && !strings.Contains(line, "moved to heap") {
			continue
		}
		if strings.Contains(line, "call.go:") {
			continue
		}
		t.Errorf("kernel allocation: %s", line)
	}
}
