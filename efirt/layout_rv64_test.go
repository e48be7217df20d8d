package efirt

import (
	"testing"
	"unsafe"
)

// efirt_riscv64.s addresses thread and frame fields by constant offsets.
func TestLayoutMatchesAssemblyRiscv64(t *testing.T) {
	var th thread
	var f riscv64Frame
	checkDefines(t, "riscv64", map[string]uintptr{
		"T_KSP": unsafe.Offsetof(th.ksp), "T_FS": unsafe.Offsetof(th.fs), "T_KTOP": unsafe.Offsetof(th.ktop),
		"T_KG": unsafe.Offsetof(th.kg), "T_G": unsafe.Offsetof(th.g),
		"F_X1": unsafe.Offsetof(f.x) + 8, "F_X2": unsafe.Offsetof(f.x) + 16, "F_X3": unsafe.Offsetof(f.x) + 24,
		"F_PC": unsafe.Offsetof(f.pc), "F_STATUS": unsafe.Offsetof(f.status), "F_VEC": unsafe.Offsetof(f.vec),
		"F_CAUSE": unsafe.Offsetof(f.cause), "F_TVAL": unsafe.Offsetof(f.tval), "F_SIZE": unsafe.Sizeof(f),
		"KSTACK_SIZE": kstackSize, "KSTACK_GUARD": kstackGuard, "MAX_THREADS": maxThreads,
		"FIRMWARE_STACK": firmwareStackBytes,
	})
	if unsafe.Sizeof(f)%16 != 0 {
		t.Errorf("riscv64Frame is %d bytes, not a multiple of 16", unsafe.Sizeof(f))
	}
}
