// The amd64 machine layer of efirt: the firmware entry point, the trap that
// rewritten system-call sites reach, thread switching, firmware calls and a
// few privileged instructions. Offsets below mirror the Go structs in
// efirt.go and threads.go; layout_test.go keeps them in step.

#include "textflag.h"

// thread fields.
#define T_KSP	0
#define T_FS	8
#define T_KTOP	16
#define T_KG	24
#define T_G	32

// Kernel stacks: kstacks is [maxThreads][kstackSize]byte; the guard leaves
// room below which a kernel stack check would fire.
#define KSTACK_SIZE	(32*1024)
#define KSTACK_GUARD	2048

// frame fields (the user registers saved by efirt_trap).
#define F_AX	0
#define F_BX	8
#define F_DX	16
#define F_SI	24
#define F_DI	32
#define F_BP	40
#define F_R8	48
#define F_R9	56
#define F_R10	64
#define F_R12	72
#define F_R13	80
#define F_R14	88
#define F_R15	96
#define F_RIP	104
#define F_RSP	112
#define F_TLS	120
#define F_SIZE	128

#define MSR_FS_BASE	$0xc0000100

// efirt_entry is the PE entry point: EFI_IMAGE_ENTRY_POINT(ImageHandle in CX,
// SystemTable in DX) under the Microsoft x64 convention. It masks interrupts,
// moves to thread 0's kernel stack, lets kmain build the Linux process start,
// and jumps into the Go runtime's own Linux entry on the new user stack.
TEXT efirt_entry(SB),NOSPLIT|NOFRAME,$0
	CLI
	CLD
	MOVQ	CX, ·imageHandle(SB)
	MOVQ	DX, ·systemTable(SB)
	MOVQ	SP, ·firmwareSP(SB)

	// FS must point at a usable slot before any Go code runs: -8(FS) is
	// where Go keeps g on linux/amd64, and the trap parks the kernel g there.
	LEAQ	·bootTLS+8(SB), AX
	MOVQ	AX, ·threads+T_FS(SB)
	MOVQ	AX, DX
	SHRQ	$32, DX
	MOVL	MSR_FS_BASE, CX
	WRMSR

	// Thread 0 runs the kernel on kstacks[0] under the kernel g embedded
	// in its thread; no Go code may run before the g's bounds are set.
	LEAQ	·threads(SB), AX
	MOVQ	AX, ·curThread(SB)
	LEAQ	·kstacks+KSTACK_SIZE(SB), BX
	MOVQ	BX, ·threads+T_KTOP(SB)
	LEAQ	·threads+T_G(SB), R14
	MOVQ	R14, ·threads+T_KG(SB)
	LEAQ	·kstacks(SB), CX
	MOVQ	CX, 0(R14)
	MOVQ	BX, 8(R14)
	ADDQ	$KSTACK_GUARD, CX
	MOVQ	CX, 16(R14)
	MOVQ	CX, 24(R14)
	MOVQ	BX, SP
	MOVQ	·threads+T_KG(SB), R14
	MOVQ	R14, (TLS)
	XORPS	X15, X15

	SUBQ	$16, SP
	CALL	·kmain(SB)
	MOVQ	0(SP), BX

	// The Go runtime starts as a Linux process would: argc at 0(SP).
	MOVQ	BX, SP
	XORL	AX, AX
	XORL	BX, BX
	XORL	CX, CX
	XORL	DX, DX
	XORL	SI, SI
	XORL	DI, DI
	XORL	R8, R8
	XORL	R9, R9
	XORL	R10, R10
	XORL	R11, R11
	XORL	R12, R12
	XORL	R13, R13
	XORL	R14, R14
	XORL	R15, R15
	JMP	_rt0_amd64_linux(SB)

// efirt_trap replaces every SYSCALL instruction of the runtime and std. It
// is reached by CALL with the Linux system-call registers (number in AX,
// arguments in DI SI DX R10 R8 R9) and, like SYSCALL, may clobber CX and R11
// and returns the result in AX. Everything else is preserved. It saves the
// user registers in a frame at the top of the thread's kernel stack and runs
// dispatch there under the thread's kernel g.
TEXT efirt_trap(SB),NOSPLIT|NOFRAME,$0
	MOVQ	·curThread(SB), R11
	MOVQ	T_KTOP(R11), R11
	SUBQ	$F_SIZE, R11
	MOVQ	AX, F_AX(R11)
	MOVQ	BX, F_BX(R11)
	MOVQ	DX, F_DX(R11)
	MOVQ	SI, F_SI(R11)
	MOVQ	DI, F_DI(R11)
	MOVQ	BP, F_BP(R11)
	MOVQ	R8, F_R8(R11)
	MOVQ	R9, F_R9(R11)
	MOVQ	R10, F_R10(R11)
	MOVQ	R12, F_R12(R11)
	MOVQ	R13, F_R13(R11)
	MOVQ	R14, F_R14(R11)
	MOVQ	R15, F_R15(R11)
	// Take the return address off the user stack, so a thread that returns
	// from clone never touches its parent's stack.
	POPQ	CX
	MOVQ	CX, F_RIP(R11)
	MOVQ	SP, F_RSP(R11)
	MOVQ	R11, SP

	MOVQ	·curThread(SB), R11
	MOVQ	T_KG(R11), R11
	MOVQ	(TLS), CX
	MOVQ	CX, F_TLS(SP)
	MOVQ	R11, (TLS)
	MOVQ	R11, R14
	XORPS	X15, X15

	MOVQ	SP, AX
	SUBQ	$16, SP
	MOVQ	AX, 0(SP)
	CALL	·dispatch(SB)
	ADDQ	$16, SP
	JMP	·trapReturn(SB)

// trapReturn leaves the kernel: SP points at the frame of the current thread.
TEXT ·trapReturn(SB),NOSPLIT|NOFRAME,$0
	MOVQ	F_TLS(SP), CX
	MOVQ	CX, (TLS)
	XORPS	X15, X15
	// The frame is laid out in pop order.
	POPQ	AX
	POPQ	BX
	POPQ	DX
	POPQ	SI
	POPQ	DI
	POPQ	BP
	POPQ	R8
	POPQ	R9
	POPQ	R10
	POPQ	R12
	POPQ	R13
	POPQ	R14
	POPQ	R15
	POPQ	CX	// rip
	MOVQ	0(SP), SP	// rsp
	JMP	CX

// func trapReturnPC() uintptr
TEXT ·trapReturnPC(SB),NOSPLIT,$0-8
	LEAQ	·trapReturn(SB), AX
	MOVQ	AX, ret+0(FP)
	RET

// func swtch(from, to *thread)
TEXT ·swtch(SB),NOSPLIT,$0-16
	MOVQ	from+0(FP), AX
	MOVQ	to+8(FP), BX
	PUSHQ	BP
	MOVQ	SP, T_KSP(AX)
	MOVQ	T_KSP(BX), SP
	MOVQ	BX, ·curThread(SB)
	MOVQ	T_FS(BX), AX
	MOVQ	AX, DX
	SHRQ	$32, DX
	MOVL	MSR_FS_BASE, CX
	WRMSR
	POPQ	BP
	RET

// func setFSBase(addr uintptr)
TEXT ·setFSBase(SB),NOSPLIT,$0-8
	MOVQ	addr+0(FP), AX
	MOVQ	AX, DX
	SHRQ	$32, DX
	MOVL	MSR_FS_BASE, CX
	WRMSR
	RET

// func fwcall(fn uintptr, args *[maxArgs]uintptr, n uintptr) uintptr
//
// The Microsoft x64 convention: arguments 1-4 in CX DX R8 R9, the rest on
// the stack above 32 bytes of shadow space, SP 16-byte aligned at the call.
// BX, R12-R15, SI, DI, BP and X6-X15 survive the call.
TEXT ·fwcall(SB),NOSPLIT,$0-32
	MOVQ	fn+0(FP), AX
	MOVQ	args+8(FP), SI
	MOVQ	n+16(FP), BX
	MOVQ	SP, R12
	MOVQ	·firmwareStackTop(SB), SP
	SUBQ	$(8*24), SP
	ANDQ	$~15, SP
	// Copy every argument to its stack slot; slots 0-3 are the shadow space.
	XORL	DI, DI
copy:
	CMPQ	DI, BX
	JAE	regs
	MOVQ	(SI)(DI*8), R8
	MOVQ	R8, (SP)(DI*8)
	INCQ	DI
	JMP	copy
regs:
	MOVQ	0(SI), CX
	MOVQ	8(SI), DX
	MOVQ	16(SI), R8
	MOVQ	24(SI), R9
	STI
	CALL	AX
	CLI
	CLD
	MOVQ	R12, SP
	XORPS	X15, X15
	MOVQ	AX, ret+24(FP)
	RET

// func rdtsc() uint64
TEXT ·rdtsc(SB),NOSPLIT,$0-8
	LFENCE
	RDTSC
	SHLQ	$32, DX
	ORQ	DX, AX
	MOVQ	AX, ret+0(FP)
	RET

// func rdrand() (v uint64, ok bool)
TEXT ·rdrand(SB),NOSPLIT,$0-9
	MOVL	$32, CX
retry:
	RDRANDQ	AX
	JCS	done
	DECL	CX
	JNZ	retry
	MOVQ	$0, v+0(FP)
	MOVB	$0, ok+8(FP)
	RET
done:
	MOVQ	AX, v+0(FP)
	MOVB	$1, ok+8(FP)
	RET

// func cpuid(leaf, sub uint32) (a, b, c, d uint32)
TEXT ·cpuid(SB),NOSPLIT,$0-24
	MOVL	leaf+0(FP), AX
	MOVL	sub+4(FP), CX
	CPUID
	MOVL	AX, a+8(FP)
	MOVL	BX, b+12(FP)
	MOVL	CX, c+16(FP)
	MOVL	DX, d+20(FP)
	RET


// func enableXSAVE(xcr0 uint64)
//
// Sets CR4.OSXSAVE and loads XCR0, so the runtime may use the AVX state
// the CPU has; firmware leaves it off.
TEXT ·enableXSAVE(SB),NOSPLIT,$0-8
	MOVQ	CR4, AX
	ORQ	$(1<<18), AX
	MOVQ	AX, CR4
	MOVQ	xcr0+0(FP), AX
	MOVQ	AX, DX
	SHRQ	$32, DX
	XORL	CX, CX
	BYTE	$0x0f; BYTE $0x01; BYTE $0xd1	// XSETBV
	RET
