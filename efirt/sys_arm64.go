package efirt

type frame = arm64Frame

// args returns the first five system-call arguments (R0-R4); the number is
// in R8 and the result goes to R0.
func (f *frame) args() (a1, a2, a3, a4, a5 uintptr) { return f.r[0], f.r[1], f.r[2], f.r[3], f.r[4] }

func (f *frame) sysno() uintptr { return f.r[8] }

func (f *frame) setResult(r uintptr) { f.r[0] = r }

// cloneTLS is clone's tls argument, the fourth on arm64. Go keeps g in a
// register here, so nothing uses it.
func (f *frame) cloneTLS() uintptr { return f.r[3] }

// initChild makes cf, a copy of the parent's frame, return 0 on stack stk.
func initChild(t *thread, cf *frame, flags, stk, tls uintptr) {
	cf.r[0] = 0
	cf.sp = stk
}

// afterForeignCall has nothing to restore: g lives in R28, which AAPCS64
// preserves across the call, and installExceptions puts the vectors back.
func afterForeignCall() {}

// archSyscall serves the system calls only one architecture has: none here.
func archSyscall(f *frame, n, a1, a2 uintptr) (uintptr, bool) { return 0, false }

// The machine layer, in efirt_arm64.s.

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
// AAPCS64, on the firmware stack, with IRQs unmasked only for the duration
// of the call.
//
//go:noescape
func fwcall(fn uintptr, args *[maxArgs]uintptr, n uintptr) uintptr

// readCNTVCT reads the virtual counter; readCNTFRQ its frequency in Hz.
func readCNTVCT() uint64
func readCNTFRQ() uint64

// readIDRegs reads ID_AA64ISAR0_EL1 and ID_AA64PFR0_EL1.
func readIDRegs() (isar0, pfr0 uint64)

// rndr returns a hardware random number, or ok false when RNDR keeps
// failing.
func rndr() (v uint64, ok bool)

// counter reads the free-running CPU counter the monotonic clock is built on.
func counter() uint64 { return readCNTVCT() }

// counterFrequency is the generic timer's frequency, which the firmware
// programmed into CNTFRQ_EL0.
func counterFrequency() uint64 { return readCNTFRQ() }

const hwRandomName = "RNDR"

// unameMachine is uname's machine field.
const unameMachine = "aarch64"

var hasRNDR bool

// hwRandom returns a random word from the CPU when it has RNDR.
func hwRandom() (uint64, bool) {
	if !hasRNDR {
		return 0, false
	}
	return rndr()
}

func archInit() {
	isar0, pfr0 := readIDRegs()
	hw, hw2 := hwcapsFromID(isar0, pfr0)
	hwcap.valid, hwcap.hwcap, hwcap.hwcap2 = true, hw, hw2
	hasRNDR = hw2&hwcap2RNG != 0
}
