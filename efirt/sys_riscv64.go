package efirt

import "unsafe"

// sysRiscvHwprobe is riscv_hwprobe, which Go asks for the CPU's extensions.
const sysRiscvHwprobe = 258

type frame = riscv64Frame

// Registers by number.
const (
	regA0 = 10
	regA1 = 11
	regA2 = 12
	regA3 = 13
	regA4 = 14
	regA7 = 17
)

// args returns the first five system-call arguments (A0-A4); the number is
// in A7 and the result goes to A0.
func (f *frame) args() (a1, a2, a3, a4, a5 uintptr) {
	return f.x[regA0], f.x[regA1], f.x[regA2], f.x[regA3], f.x[regA4]
}

func (f *frame) sysno() uintptr { return f.x[regA7] }

func (f *frame) setResult(r uintptr) { f.x[regA0] = r }

// cloneTLS is clone's tls argument, the fourth on riscv64. Go keeps g in a
// register here, so nothing uses it.
func (f *frame) cloneTLS() uintptr { return f.x[regA3] }

// initChild makes cf, a copy of the parent's frame, return 0 on stack stk.
func initChild(t *thread, cf *frame, flags, stk, tls uintptr) {
	cf.x[regA0] = 0
	cf.x[2] = stk
}

// afterForeignCall has nothing to restore: g lives in S11, which LP64D
// preserves across the call, and installExceptions puts stvec back.
func afterForeignCall() {}

// archSyscall serves the system calls only riscv64 has.
func archSyscall(f *frame, n, a1, a2 uintptr) (uintptr, bool) {
	if n == sysRiscvHwprobe {
		return hwprobe(a1, a2), true
	}
	return 0, false
}

// hwprobe answers riscv_hwprobe(pairs, count, cpusetsize, cpus, flags) for
// the one CPU: each pair's key is replaced by -1 when unknown.
func hwprobe(pairs, count uintptr) uintptr {
	for i := uintptr(0); i < count; i++ {
		p := pairs + 16*i
		v, ok := rvProbe(int64(peek(p)), &rvCPU)
		if !ok {
			poke(p, ^uintptr(0))
			v = 0
		}
		poke(p+8, uintptr(v))
	}
	return 0
}

// The machine layer, in efirt_riscv64.s.

// trapReturn restores the user registers from the frame at SP and returns
// to the instruction after the rewritten system call. It is never called
// from Go; new threads start in it.
func trapReturn()

// trapReturnPC returns the address of trapReturn.
func trapReturnPC() uintptr

// swtch saves the kernel context of from and resumes to under its kernel g.
//
//go:noescape
func swtch(from, to *thread)

// fwcall calls the firmware function fn with the first n of args under
// LP64D, on the firmware stack, with interrupts (sstatus.SIE) enabled only
// for the duration of the call.
//
//go:noescape
func fwcall(fn uintptr, args *[maxArgs]uintptr, n uintptr) uintptr

// readTime reads the time CSR, the platform's constant-rate counter.
func readTime() uint64

// setSstatus sets bits in sstatus and returns its new value.
func setSstatus(bits uintptr) uintptr

// counter reads the free-running counter the monotonic clock is built on.
func counter() uint64 { return readTime() }

// counterFrequency is the timebase frequency from the device tree, or 0 to
// have calibrateClock measure it against Stall.
func counterFrequency() uint64 { return rvCPU.timebase }

const hwRandomName = "entropy instruction"

// unameMachine is uname's machine field.
const unameMachine = "riscv64"

// hwRandom: the Zkr seed CSR is M-mode's to grant and rarely offered to
// S-mode, so randomness comes from EFI_RNG_PROTOCOL.
func hwRandom() (uint64, bool) { return 0, false }

// rvCPU is what the device tree says about the CPU and the few devices
// efirt uses itself.
var rvCPU rvCPUInfo

// sstatus.VS, the vector unit's state: Initial turns it on.
const sstatusVSInitial = 1 << 9

func archInit() {
	if dtb := configTable(&dtbGUID); dtb != 0 {
		rvCPU = parseFDT(dtb)
	}
	if rvCPU.uart == 0 {
		// ConOut stays the console (see console_riscv64.go).
		widestConsole()
	}
	if rvCPU.ext&rvExtV != 0 && setSstatus(sstatusVSInitial)&(3<<9) == 0 {
		// The firmware left the vector unit unusable: do not offer it.
		rvCPU.ext &^= rvExtV
	}
	syncFirmwareClock()
	if rvCPU.letters != 0 {
		// Linux's AT_HWCAP on riscv64 is one bit per single-letter
		// extension.
		hwcap.valid, hwcap.hwcap = true, uintptr(rvCPU.letters)
	}
}

// widestConsole switches ConOut to its widest text mode. RISC-V EDK2 keeps
// the 80-column mode, whose terminal breaks every longer line, and the
// console is where the program's output is read.
func widestConsole() {
	const (
		queryMode = 24
		setMode   = 32
		modePtr   = 72
	)
	out := peek(systemTable + stConOut)
	if out == 0 {
		return
	}
	mode := peek(out + modePtr)
	if mode == 0 {
		return
	}
	maxMode, cur := int32(peek32(mode)), int32(peek32(mode+4))
	best, bestCols := cur, uintptr(0)
	for m := int32(0); m < maxMode; m++ {
		var cols, rows uintptr
		if efi(peek(out+queryMode), out, uintptr(m), uintptr(unsafe.Pointer(&cols)), uintptr(unsafe.Pointer(&rows))) != efiSuccess {
			continue
		}
		if m == cur && cols >= bestCols || cols > bestCols {
			best, bestCols = m, cols
		}
	}
	if best != cur {
		efi(peek(out+setMode), out, uintptr(best))
	}
}
