package efirt

// Linux system-call numbers for amd64, as the runtime and std issue them.
const (
	sysRead            = 0
	sysWrite           = 1
	sysClose           = 3
	sysMmap            = 9
	sysMprotect        = 10
	sysMunmap          = 11
	sysBrk             = 12
	sysRtSigaction     = 13
	sysRtSigprocmask   = 14
	sysRtSigreturn     = 15
	sysIoctl           = 16
	sysPread64         = 17
	sysSchedYield      = 24
	sysMincore         = 27
	sysMadvise         = 28
	sysNanosleep       = 35
	sysSetitimer       = 38
	sysGetpid          = 39
	sysClone           = 56
	sysExit            = 60
	sysKill            = 62
	sysUname           = 63
	sysFcntl           = 72
	sysSigaltstack     = 131
	sysPrctl           = 157
	sysArchPrctl       = 158
	sysGettid          = 186
	sysTkill           = 200
	sysFutex           = 202
	sysSchedGetaffin   = 204
	sysTimerCreate     = 222
	sysTimerSettime    = 223
	sysTimerDelete     = 226
	sysClockGettime    = 228
	sysExitGroup       = 231
	sysEpollCtl        = 233
	sysTgkill          = 234
	sysOpenat          = 257
	sysFaccessat       = 269
	sysEpollPwait      = 281
	sysEventfd2        = 290
	sysEpollCreate1    = 291
	sysPipe2           = 293
	sysPrlimit64       = 302
	sysGetrandom       = 318
	sysEpollPwait2     = 441
	sysMaxKnown        = 512
	sysFirmwareCall    = 0x0ef1 // efirt's own: Call from a goroutine
	sysForeignCall     = 0x0ef2 // efirt's own: CallForeign
	archSetFS          = 0x1002 // arch_prctl(ARCH_SET_FS)
	epollEventSize     = 12     // struct epoll_event is packed on amd64
	pageSize           = 4096
	firmwareStackBytes = 256 << 10
)

// The machine layer, in efirt_amd64.s.

// trapReturn restores the user registers from the frame at SP and returns
// to the instruction after the rewritten system call. It is never called
// from Go; new threads start in it.
func trapReturn()

// trapReturnPC returns the address of trapReturn.
func trapReturnPC() uintptr

// swtch saves the kernel context of from and resumes to, loading its FS base.
//
//go:noescape
func swtch(from, to *thread)

// setFSBase loads the FS base register of the running thread.
func setFSBase(addr uintptr)

// fwcall calls the firmware function fn with the first n of args under the
// Microsoft x64 convention, on the firmware stack, with interrupts enabled
// only for the duration of the call.
//
//go:noescape
func fwcall(fn uintptr, args *[maxArgs]uintptr, n uintptr) uintptr

// rdtsc reads the time-stamp counter.
func rdtsc() uint64

// rdrand returns a hardware random number, or ok false when RDRAND keeps
// failing.
func rdrand() (v uint64, ok bool)

// cpuid executes CPUID for leaf and sub-leaf.
func cpuid(leaf, sub uint32) (a, b, c, d uint32)

// enableXSAVE turns on XSAVE support in CR4 and loads XCR0.
func enableXSAVE(xcr0 uint64)

// The CPU exception entry points; each pushes its vector and enters the
// common handler, which hands program faults to exception.
func excDE()
func excBP()
func excUD()
func excGP()
func excPF()

// excHandlers returns the addresses of the exception entry points.
func excHandlers() (de, bp, ud, gp, pf uintptr)

// trapReturnFull restores every register from the frame at SP with IRETQ.
// It is never called from Go.
func trapReturnFull()

// readCR3 returns the page-table base register.
func readCR3() uintptr

// writeCR3 loads the page-table base, flushing the TLB.
func writeCR3(v uintptr)

// readCR4 returns control register 4.
func readCR4() uintptr

// setWriteProtect sets or clears CR0.WP.
func setWriteProtect(on bool)

// sidt returns the interrupt descriptor table's base and limit.
func sidt() (base uintptr, limit uint16)

// counter reads the free-running CPU counter the monotonic clock is built on.
func counter() uint64 { return rdtsc() }

// counterFrequency is 0: the TSC's rate is measured against Stall.
func counterFrequency() uint64 { return 0 }

const hwRandomName = "RDRAND"

// unameMachine is uname's machine field.
const unameMachine = "x86_64"

// hwRandom returns a random word from the CPU when it has an instruction
// for that.
func hwRandom() (uint64, bool) {
	if !hasRDRAND {
		return 0, false
	}
	return rdrand()
}

var hasRDRAND bool

func archInit() {
	_, _, c, _ := cpuid(1, 0)
	hasRDRAND = c&(1<<30) != 0
	// Firmware runs with only SSE enabled. Turning on the AVX (and
	// AVX-512) register state lets the runtime and crypto pick their
	// vector code: SHA-256 of a kernel is the loader's hot loop. Firmware
	// code does not use these registers, and Go treats them as clobbered
	// across every firmware call.
	const xsave, avx = 1 << 26, 1 << 28
	if c&xsave != 0 && c&avx != 0 {
		supported, _, _, _ := cpuid(0xd, 0)
		const x87, sse, ymm, opmask, zmmHi256, hi16zmm = 1, 2, 4, 32, 64, 128
		want := uint64(x87 | sse | ymm)
		if avx512 := uint32(opmask | zmmHi256 | hi16zmm); supported&avx512 == avx512 {
			want |= uint64(avx512)
		}
		enableXSAVE(want)
	}
}
