package efirt

// riscv64Frame is saved at the top of the kernel stack by efirt_trap or by
// the exception entry, on riscv64. It lives in a file every architecture
// compiles, like the layouts in frames.go, so the host's layout test can
// hold efirt_riscv64.s to it. Its size is a multiple of 16, as the LP64D
// stack alignment asks.
type riscv64Frame struct {
	x      [32]uintptr // X0-X31 by number; the X0 and X4 (TP) slots are unused
	pc     uintptr     // where the thread resumes
	status uintptr     // sstatus at an exception
	vec    uintptr     // excSync for a CPU exception, or vecSyscall
	cause  uintptr     // scause
	tval   uintptr     // stval: the faulting address or instruction
	_      uintptr
}
