package build

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// On loong64 the JAL that replaces SYSCALL clobbers R1: the site must keep
// R1 in R2 across it and put it back before anything else runs.
func TestOverlayRewriteLoong64KeepsLR(t *testing.T) {
	in := "TEXT runtime·osyield<ABIInternal>(SB),NOSPLIT,$0\n\tMOVV\t$SYS_sched_yield, R11\n\tSYSCALL\n\tRET\n"
	out, funcs := rewriteAsm([]byte(in), archSpecs["loong64"])
	if len(funcs) != 1 || funcs[0] != "runtime·osyield<ABIInternal>" {
		t.Fatalf("sites %q", funcs)
	}
	want := "\tMOVV\tR1, R2; JAL\tefirt_trap(SB); MOVV\tR2, R1\t// efirt: was SYSCALL\n\tRET\n"
	if !strings.Contains(string(out), want) {
		t.Fatalf("rewritten:\n%s\nwant %q", out, want)
	}
}

// A loong64 site file that already uses R2 is refused.
func TestOverlayRejectsReservedRegisterLoong64(t *testing.T) {
	root := fakeGoroot(t)
	if _, err := GenerateOverlay(root, "loong64", t.TempDir()); err != nil {
		t.Fatalf("pristine tree: %v", err)
	}
	f := filepath.Join(root, "src/runtime/sys_linux_loong64.s")
	data, err := os.ReadFile(f)
	if err != nil {
		t.Fatal(err)
	}
	data = append(data, []byte("\nTEXT runtime·usesR2(SB),NOSPLIT,$0\n\tMOVV\tR4, R2\n\tRET\n")...)
	if err := os.WriteFile(f, data, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = GenerateOverlay(root, "loong64", t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "sys_linux_loong64.s uses R2") {
		t.Fatalf("got %v, want the scratch register refused", err)
	}
}

// A loong64 site the table does not know is refused.
func TestOverlayRejectsUnexpectedSiteLoong64(t *testing.T) {
	root := fakeGoroot(t)
	f := filepath.Join(root, "src/runtime/sys_linux_loong64.s")
	data, err := os.ReadFile(f)
	if err != nil {
		t.Fatal(err)
	}
	data = append(data, []byte("\nTEXT runtime·extra(SB),NOSPLIT,$0\n\tSYSCALL\n\tRET\n")...)
	if err := os.WriteFile(f, data, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = GenerateOverlay(root, "loong64", t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "unexpected: runtime/sys_linux_loong64.s in runtime·extra") {
		t.Fatalf("got %v, want the extra site refused", err)
	}
}
