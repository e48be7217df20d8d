package build

// The loong64 system-call sites of GoVersion. They are kept apart from the
// other architectures' so ports can be added side by side.

func init() {
	archSpecs["loong64"] = archSpec{
		// JAL overwrites the link register R1, and many sites are leaves
		// without a frame whose R1 is their only way back: R2, which the
		// LoongArch ABI gives to the thread pointer and Go never uses,
		// keeps it across the call. Like SYSCALL, the trap preserves every
		// register but R4. The only PC-relative branch across a site in
		// GoVersion is clone's "JMP -3(PC)" after its exit: it now lands
		// on the rewritten exit itself, which loops on exit as before.
		// Sites in $0 functions gain a frame saving R1 (the assembler's
		// doing for functions that call); the trap does not mind.
		instr:    "SYSCALL",
		call:     "MOVV\tR1, R2; JAL\t" + TrapSymbol + "(SB); MOVV\tR2, R1",
		reserved: []string{"R2"},
		sites: []string{
			"internal/runtime/syscall/linux/asm_linux_loong64.s\t·Syscall6<ABIInternal>",
			"runtime/sys_linux_loong64.s\truntime·exit<ABIInternal>",
			"runtime/sys_linux_loong64.s\truntime·exitThread<ABIInternal>",
			"runtime/sys_linux_loong64.s\truntime·open<ABIInternal>",
			"runtime/sys_linux_loong64.s\truntime·closefd<ABIInternal>",
			"runtime/sys_linux_loong64.s\truntime·write1<ABIInternal>",
			"runtime/sys_linux_loong64.s\truntime·read<ABIInternal>",
			"runtime/sys_linux_loong64.s\truntime·pipe2",
			"runtime/sys_linux_loong64.s\truntime·usleep<ABIInternal>",
			"runtime/sys_linux_loong64.s\truntime·gettid<ABIInternal>",
			"runtime/sys_linux_loong64.s\truntime·raise<ABIInternal>",
			"runtime/sys_linux_loong64.s\truntime·raise<ABIInternal>",
			"runtime/sys_linux_loong64.s\truntime·raise<ABIInternal>",
			"runtime/sys_linux_loong64.s\truntime·raiseproc<ABIInternal>",
			"runtime/sys_linux_loong64.s\truntime·raiseproc<ABIInternal>",
			"runtime/sys_linux_loong64.s\t·getpid<ABIInternal>",
			"runtime/sys_linux_loong64.s\t·tgkill<ABIInternal>",
			"runtime/sys_linux_loong64.s\truntime·setitimer<ABIInternal>",
			"runtime/sys_linux_loong64.s\truntime·timer_create<ABIInternal>",
			"runtime/sys_linux_loong64.s\truntime·timer_settime<ABIInternal>",
			"runtime/sys_linux_loong64.s\truntime·timer_delete<ABIInternal>",
			"runtime/sys_linux_loong64.s\truntime·mincore<ABIInternal>",
			"runtime/sys_linux_loong64.s\truntime·walltime<ABIInternal>",
			"runtime/sys_linux_loong64.s\truntime·nanotime1<ABIInternal>",
			"runtime/sys_linux_loong64.s\truntime·rtsigprocmask<ABIInternal>",
			"runtime/sys_linux_loong64.s\truntime·rt_sigaction<ABIInternal>",
			"runtime/sys_linux_loong64.s\truntime·sysMmap<ABIInternal>",
			"runtime/sys_linux_loong64.s\truntime·sysMunmap<ABIInternal>",
			"runtime/sys_linux_loong64.s\truntime·madvise<ABIInternal>",
			"runtime/sys_linux_loong64.s\truntime·futex<ABIInternal>",
			"runtime/sys_linux_loong64.s\truntime·clone<ABIInternal>",
			"runtime/sys_linux_loong64.s\truntime·clone<ABIInternal>",
			"runtime/sys_linux_loong64.s\truntime·clone<ABIInternal>",
			"runtime/sys_linux_loong64.s\truntime·sigaltstack<ABIInternal>",
			"runtime/sys_linux_loong64.s\truntime·osyield<ABIInternal>",
			"runtime/sys_linux_loong64.s\truntime·sched_getaffinity<ABIInternal>",
			"runtime/sys_linux_loong64.s\truntime·sbrk0<ABIInternal>",
			"syscall/asm_linux_loong64.s\t·rawVforkSyscall",
			"syscall/asm_linux_loong64.s\t·rawSyscallNoError",
		},
	}
}
