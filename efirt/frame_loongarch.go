package efirt

// loong64Frame is saved at the top of the kernel stack by efirt_trap or by
// the exception entry (layout in efirt_loong64.s). It is compiled on every
// architecture so the host's layout test can hold the assembly to it.
type loong64Frame struct {
	r     [32]uintptr // R0-R31; R0's slot is unused, R1 is the link register, R3 the stack pointer
	pc    uintptr     // where the thread resumes (ERA for an exception)
	prmd  uintptr     // PRMD at the exception
	vec   uintptr     // excSync for a CPU exception, or vecSyscall
	estat uintptr     // exception status: Ecode and EsubCode
	badv  uintptr     // faulting address
	_     uintptr
}
