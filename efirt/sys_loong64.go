package efirt

type frame = loong64Frame

// args returns the first five system-call arguments (R4-R8); the number is
// in R11 and the result goes to R4.
func (f *frame) args() (a1, a2, a3, a4, a5 uintptr) { return f.r[4], f.r[5], f.r[6], f.r[7], f.r[8] }

func (f *frame) sysno() uintptr { return f.r[11] }

func (f *frame) setResult(r uintptr) { f.r[4] = r }

// cloneTLS is clone's tls argument, the fifth on loong64. Go keeps g in a
// register here, so nothing uses it.
func (f *frame) cloneTLS() uintptr { return f.r[8] }

// initChild makes cf, a copy of the parent's frame, return 0 on stack stk.
func initChild(t *thread, cf *frame, flags, stk, tls uintptr) {
	cf.r[4] = 0
	cf.r[3] = stk
}

// afterForeignCall has nothing to restore: g lives in R22, which LP64D
// preserves across the call, and installExceptions puts the entry back.
func afterForeignCall() {}

// archSyscall serves the system calls only one architecture has: none here.
func archSyscall(f *frame, n, a1, a2 uintptr) (uintptr, bool) { return 0, false }

// The machine layer, in efirt_loong64.s.

// trapReturn restores the user registers from the frame at R3 and returns
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
// LP64D, on the firmware stack, with CRMD.IE set only for the duration of
// the call.
//
//go:noescape
func fwcall(fn uintptr, args *[maxArgs]uintptr, n uintptr) uintptr

// readTime reads the stable counter (rdtime.d).
func readTime() uint64

// cpucfg reads one word of the CPU's configuration.
func cpucfg(word uint32) uint32

// counter reads the free-running CPU counter the monotonic clock is built on.
func counter() uint64 { return readTime() }

// counterFrequency is the stable counter's frequency from CPUCFG words 4
// (the base clock) and 5 (its multiplier and divider).
func counterFrequency() uint64 { return stableCounterHz(cpucfg(4), cpucfg(5)) }

// LoongArch has no random-number instruction; EFI_RNG_PROTOCOL it is.
const hwRandomName = "a random-number instruction"

// unameMachine is uname's machine field.
const unameMachine = "loongarch64"

func hwRandom() (uint64, bool) { return 0, false }

// euen is the EUEN value efirt_entry set (FPE, and SXE, ASXE as the CPU
// has LSX, LASX).
var euen uintptr

func archInit() {
	hwcap.valid = true
	hwcap.hwcap = loong64Hwcap(cpucfg(1), cpucfg(2), euen)
}
