package build

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// On riscv64 the CALL that replaces ECALL clobbers RA: the site must keep
// RA in X3 across it and put it back before anything else runs.
func TestOverlayRewriteRiscv64KeepsRA(t *testing.T) {
	in := "TEXT runtime·osyield<ABIInternal>(SB),NOSPLIT,$0\n\tMOV\t$SYS_sched_yield, A7\n\tECALL\n\tRET\n"
	out, funcs := rewriteAsm([]byte(in), archSpecs["riscv64"])
	if len(funcs) != 1 || funcs[0] != "runtime·osyield<ABIInternal>" {
		t.Fatalf("sites %q", funcs)
	}
	want := "\tMOV\tX1, X3; CALL\tefirt_trap(SB); MOV\tX3, X1\t// efirt: was ECALL\n\tRET\n"
	if !strings.Contains(string(out), want) {
		t.Fatalf("rewritten:\n%s\nwant %q", out, want)
	}
}

// The riscv64 table is exact: one more ECALL in a known file is refused,
// and so is a site file that names a register the rewrite reserves.
func TestOverlayRiscv64RejectsChanges(t *testing.T) {
	for _, tc := range []struct{ name, add, want string }{
		{"new site", "\nTEXT runtime·newcall(SB),NOSPLIT,$0\n\tMOV\t$999, A7\n\tECALL\n\tRET\n",
			"unexpected: runtime/sys_linux_riscv64.s in runtime·newcall"},
		{"uses GP", "\nTEXT runtime·usesGP(SB),NOSPLIT,$0\n\tMOV\tA0, GP // keep\n\tRET\n",
			"sys_linux_riscv64.s uses GP"},
		{"uses X4", "\nTEXT runtime·usesX4(SB),NOSPLIT,$0\n\tMOV\tX4, A0\n\tRET\n",
			"sys_linux_riscv64.s uses X4"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := fakeGoroot(t)
			if _, err := GenerateOverlay(root, "riscv64", t.TempDir()); err != nil {
				t.Fatalf("pristine tree: %v", err)
			}
			f := filepath.Join(root, "src/runtime/sys_linux_riscv64.s")
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(f, append(data, tc.add...), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err = GenerateOverlay(root, "riscv64", t.TempDir())
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}
