package efirt

// The saved user register state of each architecture. Both layouts are
// compiled everywhere, so the host's layout test can hold each assembly file
// to its struct; sys_<arch>.go names the one in use frame.

// amd64Frame is saved on the kernel stack by efirt_trap (a system call) or
// by the exception entry (a CPU exception). The registers come in the order
// trapReturn pops them, ending with an IRETQ frame.
type amd64Frame struct {
	tls                        uintptr // the user's value of the g slot at -8(FS)
	vec                        uintptr // CPU exception vector, or vecSyscall
	err                        uintptr // exception error code
	cr2                        uintptr // faulting address of a page fault
	ax, bx, cx, dx, si, di, bp uintptr
	r8, r9, r10, r11           uintptr
	r12, r13, r14, r15         uintptr
	rip, cs, rflags, rsp, ss   uintptr
}

// arm64Frame is saved at the top of the kernel stack by efirt_trap or by
// the synchronous-exception entry. Its size is a multiple of 16, so the
// kernel stack below it stays aligned as AArch64 requires.
type arm64Frame struct {
	r      [31]uintptr // R0-R30; R30 is the link register
	sp     uintptr
	pc     uintptr // where the thread resumes
	pstate uintptr // SPSR for the exception return: NZCV, DAIF, mode
	vec    uintptr // excSync for a CPU exception, or vecSyscall
	esr    uintptr // exception syndrome
	far    uintptr // faulting address
	_      uintptr
}
