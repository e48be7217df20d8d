package build

// The riscv64 system-call sites live in their own file so that ports to
// other architectures can add theirs without touching the same lines.

func init() {
	archSpecs["riscv64"] = archSpec{
		// CALL (JAL) overwrites RA, and several sites are NOFRAME leaves
		// whose RA is their only way back: X3 (GP), which Go never
		// allocates, keeps it across the call. The trap also uses X4
		// (TP), likewise never allocated, as its scratch register. It
		// preserves every register but A0, as ECALL does.
		instr:    "ECALL",
		call:     "MOV\tX1, X3; CALL\t" + TrapSymbol + "(SB); MOV\tX3, X1",
		reserved: []string{"X3", "GP", "X4", "TP"},
		sites: []string{
			"internal/runtime/syscall/linux/asm_linux_riscv64.s\t·Syscall6<ABIInternal>",
			"runtime/sys_linux_riscv64.s\truntime·exit<ABIInternal>",
			"runtime/sys_linux_riscv64.s\truntime·exitThread",
			"runtime/sys_linux_riscv64.s\truntime·open",
			"runtime/sys_linux_riscv64.s\truntime·closefd",
			"runtime/sys_linux_riscv64.s\truntime·write1<ABIInternal>",
			"runtime/sys_linux_riscv64.s\truntime·read<ABIInternal>",
			"runtime/sys_linux_riscv64.s\truntime·pipe2",
			"runtime/sys_linux_riscv64.s\truntime·usleep",
			"runtime/sys_linux_riscv64.s\truntime·gettid<ABIInternal>",
			"runtime/sys_linux_riscv64.s\truntime·raise",
			"runtime/sys_linux_riscv64.s\truntime·raise",
			"runtime/sys_linux_riscv64.s\truntime·raiseproc",
			"runtime/sys_linux_riscv64.s\truntime·raiseproc",
			"runtime/sys_linux_riscv64.s\t·getpid<ABIInternal>",
			"runtime/sys_linux_riscv64.s\t·tgkill<ABIInternal>",
			"runtime/sys_linux_riscv64.s\truntime·setitimer<ABIInternal>",
			"runtime/sys_linux_riscv64.s\truntime·timer_create<ABIInternal>",
			"runtime/sys_linux_riscv64.s\truntime·timer_settime<ABIInternal>",
			"runtime/sys_linux_riscv64.s\truntime·timer_delete<ABIInternal>",
			"runtime/sys_linux_riscv64.s\truntime·mincore<ABIInternal>",
			"runtime/sys_linux_riscv64.s\truntime·walltime",
			"runtime/sys_linux_riscv64.s\truntime·nanotime1",
			"runtime/sys_linux_riscv64.s\truntime·rtsigprocmask",
			"runtime/sys_linux_riscv64.s\truntime·rt_sigaction<ABIInternal>",
			"runtime/sys_linux_riscv64.s\truntime·mmap",
			"runtime/sys_linux_riscv64.s\truntime·munmap",
			"runtime/sys_linux_riscv64.s\truntime·madvise<ABIInternal>",
			"runtime/sys_linux_riscv64.s\truntime·futex<ABIInternal>",
			"runtime/sys_linux_riscv64.s\truntime·clone",
			"runtime/sys_linux_riscv64.s\truntime·clone",
			"runtime/sys_linux_riscv64.s\truntime·clone",
			"runtime/sys_linux_riscv64.s\truntime·sigaltstack",
			"runtime/sys_linux_riscv64.s\truntime·osyield<ABIInternal>",
			"runtime/sys_linux_riscv64.s\truntime·sched_getaffinity<ABIInternal>",
			"runtime/sys_linux_riscv64.s\truntime·sbrk0<ABIInternal>",
			"syscall/asm_linux_riscv64.s\t·rawVforkSyscall",
			"syscall/asm_linux_riscv64.s\t·rawSyscallNoError",
		},
	}
}
