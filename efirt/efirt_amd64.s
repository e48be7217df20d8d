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
#define MAX_THREADS	48
#define FIRMWARE_STACK	(256*1024)

// frame fields. The saved registers come in pop order and end with the
// five words IRETQ takes, so both return paths pop the same layout.
#define F_TLS	0
#define F_VEC	8
#define F_ERR	16
#define F_CR2	24
#define F_AX	32
#define F_BX	40
#define F_CX	48
#define F_DX	56
#define F_SI	64
#define F_DI	72
#define F_BP	80
#define F_R8	88
#define F_R9	96
#define F_R10	104
#define F_R11	112
#define F_R12	120
#define F_R13	128
#define F_R14	136
#define F_R15	144
#define F_RIP	152
#define F_CS	160
#define F_FLAGS	168
#define F_RSP	176
#define F_SS	184
#define F_SIZE	192

// POP_FRAME gives the user back its g slot and pops the saved registers,
// leaving SP at the frame's IRETQ words (rip, cs, rflags, rsp, ss).
#define POP_FRAME \
	MOVQ F_TLS(SP), CX; \
	MOVQ CX, (TLS); \
	XORPS X15, X15; \
	ADDQ $F_AX, SP; \
	POPQ AX; \
	POPQ BX; \
	POPQ CX; \
	POPQ DX; \
	POPQ SI; \
	POPQ DI; \
	POPQ BP; \
	POPQ R8; \
	POPQ R9; \
	POPQ R10; \
	POPQ R11; \
	POPQ R12; \
	POPQ R13; \
	POPQ R14; \
	POPQ R15

// F_VEC of a system-call frame; dispatch sets frameFull when the whole
// register state must come back (rt_sigreturn).
#define VEC_SYSCALL	$-1

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
	MOVQ	VEC_SYSCALL, F_VEC(R11)
	// Take the return address off the user stack, so a thread that returns
	// from clone never touches its parent's stack.
	POPQ	CX
	MOVQ	CX, F_RIP(R11)
	MOVQ	SP, F_RSP(R11)
	MOVQ	R11, SP
	JMP	kernel<>(SB)

// kernel runs dispatch on the frame at SP under the thread's kernel g and
// leaves through the return path the frame asks for.
TEXT kernel<>(SB),NOSPLIT|NOFRAME,$0
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
	CMPQ	F_VEC(SP), VEC_SYSCALL
	JNE	full
	JMP	·trapReturn(SB)
full:
	JMP	·trapReturnFull(SB)

// trapReturn leaves the kernel after a system call: SP points at the frame
// of the current thread. CX and R11 are clobbered, as SYSCALL does.
TEXT ·trapReturn(SB),NOSPLIT|NOFRAME,$0
	POP_FRAME
	POPQ	CX	// rip
	MOVQ	16(SP), SP	// rsp, past cs and rflags
	JMP	CX

// trapReturnFull restores every register, flags included, with IRETQ: the
// way back from a CPU exception and from rt_sigreturn.
TEXT ·trapReturnFull(SB),NOSPLIT|NOFRAME,$0
	POP_FRAME
	IRETQ

// CPU exceptions. The CPU pushes SS, RSP, RFLAGS, CS, RIP (and for some
// vectors an error code) on the current stack; each stub evens that out
// and names its vector. A fault on a kernel or firmware stack goes on to
// the firmware's own handler; a fault in the program becomes a signal.
#define EXC_NOCODE(n) \
	PUSHQ	$0; \
	PUSHQ	$n; \
	JMP	exception<>(SB)
#define EXC_CODE(n) \
	PUSHQ	$n; \
	JMP	exception<>(SB)

TEXT ·excDE(SB),NOSPLIT|NOFRAME,$0
	EXC_NOCODE(0)
TEXT ·excBP(SB),NOSPLIT|NOFRAME,$0
	EXC_NOCODE(3)
TEXT ·excUD(SB),NOSPLIT|NOFRAME,$0
	EXC_NOCODE(6)
TEXT ·excGP(SB),NOSPLIT|NOFRAME,$0
	EXC_CODE(13)
TEXT ·excPF(SB),NOSPLIT|NOFRAME,$0
	EXC_CODE(14)

// exception: SP -> vector, error code, RIP, CS, RFLAGS, RSP, SS.
TEXT exception<>(SB),NOSPLIT|NOFRAME,$0
	MOVQ	AX, ·excAX(SB)
	MOVQ	BX, ·excBX(SB)
	MOVQ	40(SP), AX	// the interrupted RSP
	// On a kernel stack or the firmware stack: not ours to handle.
	LEAQ	·kstacks(SB), BX
	CMPQ	AX, BX
	JB	notKernel
	ADDQ	$(KSTACK_SIZE*MAX_THREADS), BX
	CMPQ	AX, BX
	JB	chain
notKernel:
	LEAQ	·firmwareStack(SB), BX
	CMPQ	AX, BX
	JB	program
	ADDQ	$FIRMWARE_STACK, BX
	CMPQ	AX, BX
	JB	chain
program:
	MOVQ	·curThread(SB), AX
	MOVQ	T_KTOP(AX), AX
	SUBQ	$F_SIZE, AX
	MOVQ	CX, F_CX(AX)
	MOVQ	DX, F_DX(AX)
	MOVQ	SI, F_SI(AX)
	MOVQ	DI, F_DI(AX)
	MOVQ	BP, F_BP(AX)
	MOVQ	R8, F_R8(AX)
	MOVQ	R9, F_R9(AX)
	MOVQ	R10, F_R10(AX)
	MOVQ	R11, F_R11(AX)
	MOVQ	R12, F_R12(AX)
	MOVQ	R13, F_R13(AX)
	MOVQ	R14, F_R14(AX)
	MOVQ	R15, F_R15(AX)
	MOVQ	·excAX(SB), CX
	MOVQ	CX, F_AX(AX)
	MOVQ	·excBX(SB), CX
	MOVQ	CX, F_BX(AX)
	MOVQ	CR2, CX
	MOVQ	CX, F_CR2(AX)
	MOVQ	0(SP), CX
	MOVQ	CX, F_VEC(AX)
	MOVQ	8(SP), CX
	MOVQ	CX, F_ERR(AX)
	MOVQ	16(SP), CX
	MOVQ	CX, F_RIP(AX)
	MOVQ	24(SP), CX
	MOVQ	CX, F_CS(AX)
	MOVQ	32(SP), CX
	MOVQ	CX, F_FLAGS(AX)
	MOVQ	40(SP), CX
	MOVQ	CX, F_RSP(AX)
	MOVQ	48(SP), CX
	MOVQ	CX, F_SS(AX)
	MOVQ	AX, SP
	JMP	kernel<>(SB)
chain:
	MOVQ	0(SP), AX	// vector
	LEAQ	·oldHandlers(SB), BX
	MOVQ	(BX)(AX*8), BX
	// Return into the firmware's handler with the stack as the CPU left
	// it: the target takes the place of the vector, or of the zero a stub
	// pushed for a vector without an error code of its own.
	CMPQ	AX, $13
	JEQ	code
	CMPQ	AX, $14
	JEQ	code
	LEAQ	8(SP), SP
code:
	MOVQ	BX, 0(SP)
	MOVQ	·excAX(SB), AX
	MOVQ	·excBX(SB), BX
	RET

// func excHandlers() (de, bp, ud, gp, pf uintptr)
TEXT ·excHandlers(SB),NOSPLIT,$0-40
	LEAQ	·excDE(SB), AX
	MOVQ	AX, de+0(FP)
	LEAQ	·excBP(SB), AX
	MOVQ	AX, bp+8(FP)
	LEAQ	·excUD(SB), AX
	MOVQ	AX, ud+16(FP)
	LEAQ	·excGP(SB), AX
	MOVQ	AX, gp+24(FP)
	LEAQ	·excPF(SB), AX
	MOVQ	AX, pf+32(FP)
	RET

// func readCR3() uintptr
TEXT ·readCR3(SB),NOSPLIT,$0-8
	MOVQ	CR3, AX
	MOVQ	AX, ret+0(FP)
	RET

// func writeCR3(v uintptr)
TEXT ·writeCR3(SB),NOSPLIT,$0-8
	MOVQ	v+0(FP), AX
	MOVQ	AX, CR3
	RET

// func readCR4() uintptr
TEXT ·readCR4(SB),NOSPLIT,$0-8
	MOVQ	CR4, AX
	MOVQ	AX, ret+0(FP)
	RET

// func setWriteProtect(on bool)
//
// CR0.WP: with it clear the kernel may write pages the firmware mapped
// read-only, such as its page tables and IDT.
TEXT ·setWriteProtect(SB),NOSPLIT,$0-1
	MOVQ	CR0, AX
	ANDQ	$~(1<<16), AX
	CMPB	on+0(FP), $0
	JEQ	2(PC)
	ORQ	$(1<<16), AX
	MOVQ	AX, CR0
	RET

// func sidt() (base uintptr, limit uint16)
TEXT ·sidt(SB),NOSPLIT,$16-10
	// SIDT stores 2 bytes of limit then 8 of base.
	LEAQ	0(SP), AX
	BYTE	$0x0f; BYTE $0x01; BYTE $0x08	// SIDT (AX)
	MOVW	0(SP), BX
	MOVW	BX, limit+8(FP)
	MOVQ	2(SP), BX
	MOVQ	BX, base+0(FP)
	RET

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
