package efirt

import (
	"testing"
	"unsafe"
)

func TestLayoutMatchesAssemblyLoong64(t *testing.T) {
	var th thread
	var f loong64Frame
	checkDefines(t, "loong64", map[string]uintptr{
		"T_KSP": unsafe.Offsetof(th.ksp), "T_FS": unsafe.Offsetof(th.fs), "T_KTOP": unsafe.Offsetof(th.ktop),
		"T_KG": unsafe.Offsetof(th.kg), "T_G": unsafe.Offsetof(th.g),
		"F_R1": unsafe.Offsetof(f.r) + 1*8, "F_R3": unsafe.Offsetof(f.r) + 3*8,
		"F_R12": unsafe.Offsetof(f.r) + 12*8, "F_R13": unsafe.Offsetof(f.r) + 13*8,
		"F_PC": unsafe.Offsetof(f.pc), "F_PRMD": unsafe.Offsetof(f.prmd), "F_VEC": unsafe.Offsetof(f.vec),
		"F_ESTAT": unsafe.Offsetof(f.estat), "F_BADV": unsafe.Offsetof(f.badv), "F_SIZE": unsafe.Sizeof(f),
		"MAX_THREADS": maxThreads, "FIRMWARE_STACK": firmwareStackBytes,
		"KSTACK_SIZE": kstackSize, "KSTACK_GUARD": kstackGuard,
	})
	// The save and load macros address R0-R31 as consecutive words from
	// the frame's start, and the kernel stack below it stays 16-byte
	// aligned as LP64D requires.
	if unsafe.Offsetof(f.r) != 0 || unsafe.Offsetof(f.pc) != 32*8 {
		t.Errorf("loong64 frame: registers at %d, pc at %d", unsafe.Offsetof(f.r), unsafe.Offsetof(f.pc))
	}
	if unsafe.Sizeof(f)%16 != 0 {
		t.Errorf("loong64 frame size %d is not a multiple of 16", unsafe.Sizeof(f))
	}
}

// AT_HWCAP follows CPUCFG as Linux derives it, and a vector unit counts
// only when EUEN enables it. The words have the bits QEMU's la464 sets
// for these features (FP, LSX, LASX, LAM, UAL, CRC32).
func TestLoong64Hwcap(t *testing.T) {
	const cfg1, cfg2 = 0x03f2f2fe, 0x007ccfc7
	all := uintptr(euenFPE | euenSXE | euenASXE)
	hw := loong64Hwcap(cfg1, cfg2, all)
	for _, b := range []uintptr{hwcapLoongCPUCFG, hwcapLoongLAM, hwcapLoongUAL, hwcapLoongFPU, hwcapLoongLSX, hwcapLoongLASX, hwcapLoongCRC32} {
		if hw&b == 0 {
			t.Errorf("hwcap %#x lacks %#x", hw, b)
		}
	}
	if hw := loong64Hwcap(cfg1, cfg2, euenFPE); hw&(hwcapLoongLSX|hwcapLoongLASX) != 0 {
		t.Errorf("vector units advertised while EUEN disables them: %#x", hw)
	}
	if hw := loong64Hwcap(cfg1, 0, all); hw&(hwcapLoongFPU|hwcapLoongLSX|hwcapLoongLASX|hwcapLoongLAM) != 0 {
		t.Errorf("features without CPUCFG2 bits: %#x", hw)
	}
}

// The stable counter runs at CPUCFG4 * mul / div; missing words mean
// unknown (calibrate instead).
func TestStableCounterHz(t *testing.T) {
	for _, c := range []struct {
		cfg4, cfg5 uint32
		want       uint64
	}{
		{100000000, 1 | 1<<16, 100000000}, // QEMU virt: 100 MHz
		{25000000, 4 | 1<<16, 100000000},
		{100000000, 3 | 2<<16, 150000000},
		{0, 1 | 1<<16, 0},
		{100000000, 0, 0},
	} {
		if got := stableCounterHz(c.cfg4, c.cfg5); got != c.want {
			t.Errorf("stableCounterHz(%d, %#x) = %d, want %d", c.cfg4, c.cfg5, got, c.want)
		}
	}
}
