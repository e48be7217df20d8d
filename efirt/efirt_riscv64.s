// The riscv64 machine layer of efirt: the firmware entry point, the trap
// that rewritten system-call sites reach, thread switching, firmware calls
// and a few CSRs. Offsets below mirror the Go structs in rvframe.go and
// threads.go; layout_rv64_test.go keeps them in step.
//
// EDK2 runs in S-mode under OpenSBI. Go keeps g in X27 (S11), so a
// thread's g travels in its registers. Go never allocates X3 (GP) or X4
// (TP): a rewritten system-call site parks its RA in X3 across the CALL,
// and efirt uses TP as the scratch register of its entry and exit paths.

#include "textflag.h"

// thread fields.
#define T_KSP	0
#define T_FS	8
#define T_KTOP	16
#define T_KG	24
#define T_G	32

#define KSTACK_SIZE	(32*1024)
#define KSTACK_GUARD	2048
#define MAX_THREADS	48
#define FIRMWARE_STACK	(256*1024)

// frame fields: X0-X31 at 8*n (the X0 and X4 slots unused), then the rest.
#define F_X1	8
#define F_X2	16
#define F_X3	24
#define F_PC	256
#define F_STATUS	264
#define F_VEC	272
#define F_CAUSE	280
#define F_TVAL	288
#define F_SIZE	304

// sstatus bits.
#define SSTATUS_SIE	0x2
#define SSTATUS_SPIE	0x20
#define SSTATUS_SPP	0x100
#define SSTATUS_FS_INITIAL	0x2000

// SRET is encoded by hand: the assembler does not take it.
#define SRET	WORD $0x10200073
#define SFENCE_VMA	WORD $0x12000073

// SAVE_REGS stores X1, X3 and X5-X31 into the frame at TP (X2 is saved
// by the caller of the macro, X4 is efirt's).
#define SAVE_REGS \
	MOV	X1, 8(TP); \
	MOV	X3, 24(TP); \
	MOV	X5, 40(TP); \
	MOV	X6, 48(TP); \
	MOV	X7, 56(TP); \
	MOV	X8, 64(TP); \
	MOV	X9, 72(TP); \
	MOV	X10, 80(TP); \
	MOV	X11, 88(TP); \
	MOV	X12, 96(TP); \
	MOV	X13, 104(TP); \
	MOV	X14, 112(TP); \
	MOV	X15, 120(TP); \
	MOV	X16, 128(TP); \
	MOV	X17, 136(TP); \
	MOV	X18, 144(TP); \
	MOV	X19, 152(TP); \
	MOV	X20, 160(TP); \
	MOV	X21, 168(TP); \
	MOV	X22, 176(TP); \
	MOV	X23, 184(TP); \
	MOV	X24, 192(TP); \
	MOV	X25, 200(TP); \
	MOV	X26, 208(TP); \
	MOV	g, 216(TP); \
	MOV	X28, 224(TP); \
	MOV	X29, 232(TP); \
	MOV	X30, 240(TP); \
	MOV	X31, 248(TP)

// LOAD_REGS loads X1, X3 and X5-X31 from the frame at TP.
#define LOAD_REGS \
	MOV	8(TP), X1; \
	MOV	24(TP), X3; \
	MOV	40(TP), X5; \
	MOV	48(TP), X6; \
	MOV	56(TP), X7; \
	MOV	64(TP), X8; \
	MOV	72(TP), X9; \
	MOV	80(TP), X10; \
	MOV	88(TP), X11; \
	MOV	96(TP), X12; \
	MOV	104(TP), X13; \
	MOV	112(TP), X14; \
	MOV	120(TP), X15; \
	MOV	128(TP), X16; \
	MOV	136(TP), X17; \
	MOV	144(TP), X18; \
	MOV	152(TP), X19; \
	MOV	160(TP), X20; \
	MOV	168(TP), X21; \
	MOV	176(TP), X22; \
	MOV	184(TP), X23; \
	MOV	192(TP), X24; \
	MOV	200(TP), X25; \
	MOV	208(TP), X26; \
	MOV	216(TP), g; \
	MOV	224(TP), X28; \
	MOV	232(TP), X29; \
	MOV	240(TP), X30; \
	MOV	248(TP), X31

// efirt_entry is the PE entry point: EFI_IMAGE_ENTRY_POINT(ImageHandle in
// A0, SystemTable in A1) under LP64D. It masks interrupts, turns the FPU
// on, moves to thread 0's kernel stack, lets kmain build the Linux process
// start, and jumps into the Go runtime's own Linux entry on the new user
// stack.
TEXT efirt_entry(SB),NOSPLIT|NOFRAME,$0
	CSRRCI	$SSTATUS_SIE, SSTATUS, ZERO
	MOV	$SSTATUS_FS_INITIAL, T0
	CSRRS	T0, SSTATUS, ZERO
	MOV	$·imageHandle(SB), T0
	MOV	A0, (T0)
	MOV	$·systemTable(SB), T0
	MOV	A1, (T0)
	MOV	$·firmwareSP(SB), T0
	MOV	X2, (T0)

	// Thread 0 runs the kernel on kstacks[0] under the kernel g embedded
	// in its thread; no Go code may run before the g's bounds are set.
	MOV	$·threads(SB), T3
	MOV	$·curThread(SB), T0
	MOV	T3, (T0)
	MOV	$·kstacks(SB), T5
	MOV	$KSTACK_SIZE, T4
	ADD	T5, T4
	AND	$~15, T4
	MOV	T4, T_KTOP(T3)
	ADD	$T_G, T3, g
	MOV	g, T_KG(T3)
	MOV	T5, 0(g)
	MOV	T4, 8(g)
	ADD	$KSTACK_GUARD, T5
	MOV	T5, 16(g)
	MOV	T5, 24(g)
	MOV	T4, X2

	ADD	$-16, X2
	CALL	·kmain(SB)
	MOV	8(X2), T0

	// The Go runtime starts as a Linux process would: argc at 0(X2).
	MOV	T0, X2
	MOV	ZERO, A0
	MOV	ZERO, A1
	MOV	ZERO, A2
	MOV	ZERO, A3
	MOV	ZERO, A4
	MOV	ZERO, A5
	MOV	ZERO, g
	MOV	ZERO, RA
	JMP	_rt0_riscv64_linux(SB)

// efirt_trap replaces every ECALL of the runtime and std. The rewritten
// site is "MOV X1, X3; CALL efirt_trap; MOV X3, X1", so the trap is
// reached with the return address in RA and the Linux system-call
// registers (number in A7, arguments in A0-A5); like ECALL it returns the
// result in A0 and preserves every other register. It saves the user
// registers in a frame at the top of the thread's kernel stack and runs
// dispatch there under the thread's kernel g.
TEXT efirt_trap(SB),NOSPLIT|NOFRAME,$0
	MOV	$·curThread(SB), TP
	MOV	(TP), TP
	MOV	T_KTOP(TP), TP
	ADD	$-F_SIZE, TP
	SAVE_REGS
	MOV	X2, F_X2(TP)
	MOV	X1, F_PC(TP)
	MOV	$-1, T0
	MOV	T0, F_VEC(TP)
	MOV	TP, X2
	JMP	kernel<>(SB)

// kernel runs dispatch on the frame at X2 under the thread's kernel g and
// leaves through the return path the frame asks for.
TEXT kernel<>(SB),NOSPLIT|NOFRAME,$0
	MOV	$·curThread(SB), T0
	MOV	(T0), T0
	MOV	T_KG(T0), g
	MOV	X2, T1
	ADD	$-16, X2
	MOV	T1, 8(X2)
	CALL	·dispatch(SB)
	ADD	$16, X2
	MOV	F_VEC(X2), T0
	MOV	$-1, T1
	BNE	T0, T1, full
	JMP	·trapReturn(SB)
full:
	JMP	·trapReturnFull(SB)

// trapReturn leaves the kernel after a system call: X2 points at the frame
// of the current thread. RA comes back as the return address, which the
// rewritten site replaces with the RA it kept in X3.
TEXT ·trapReturn(SB),NOSPLIT|NOFRAME,$0
	MOV	X2, TP
	LOAD_REGS
	MOV	F_PC(TP), X1
	MOV	F_X2(TP), X2
	JMP	(X1)

// trapReturnFull restores every register and the PC with SRET: the way
// back from a CPU exception and rt_sigreturn. It returns to S-mode with
// interrupts still masked.
TEXT ·trapReturnFull(SB),NOSPLIT|NOFRAME,$0
	MOV	X2, TP
	MOV	F_PC(TP), T0
	CSRRW	T0, SEPC, ZERO
	MOV	$SSTATUS_SPP, T0
	CSRRS	T0, SSTATUS, ZERO
	MOV	$SSTATUS_SPIE, T0
	CSRRC	T0, SSTATUS, ZERO
	LOAD_REGS
	MOV	F_X2(TP), X2
	SRET

// func trapReturnPC() uintptr
TEXT ·trapReturnPC(SB),NOSPLIT,$0-8
	MOV	$·trapReturn(SB), T0
	MOV	T0, ret+0(FP)
	RET

// func swtch(from, to *thread)
//
// Saves RA on the kernel stack of from, resumes to's kernel stack and its
// kernel g. Go assumes every other register clobbered by a call.
TEXT ·swtch(SB),NOSPLIT|NOFRAME,$0-16
	MOV	from+0(FP), T0
	MOV	to+8(FP), T1
	ADD	$-16, X2
	MOV	ZERO, 0(X2)
	MOV	RA, 8(X2)
	MOV	X2, T_KSP(T0)
	MOV	T_KSP(T1), X2
	MOV	$·curThread(SB), T2
	MOV	T1, (T2)
	MOV	T_KG(T1), g
	MOV	8(X2), RA
	ADD	$16, X2
	RET

// func fwcall(fn uintptr, args *[maxArgs]uintptr, n uintptr) uintptr
//
// LP64D: arguments 1-8 in A0-A7, the rest on the stack, SP 16-byte
// aligned. S0-S11 and SP survive the call, g (S11) among them.
TEXT ·fwcall(SB),NOSPLIT,$0-32
	MOV	fn+0(FP), T0
	MOV	args+8(FP), T1
	MOV	n+16(FP), T2
	MOV	X2, S1
	MOV	$·firmwareStackTop(SB), T3
	MOV	(T3), T3
	ADD	$-(8*16), T3
	AND	$~15, T3
	MOV	T3, X2
	// Arguments 9 and on go to the stack.
	MOV	$8, T3
copy:
	BGEU	T3, T2, regs
	SLL	$3, T3, T4
	ADD	T1, T4, T5
	MOV	(T5), T6
	ADD	$-64, T4
	ADD	X2, T4
	MOV	T6, (T4)
	ADD	$1, T3
	JMP	copy
regs:
	MOV	0(T1), A0
	MOV	8(T1), A1
	MOV	16(T1), A2
	MOV	24(T1), A3
	MOV	32(T1), A4
	MOV	40(T1), A5
	MOV	48(T1), A6
	MOV	56(T1), A7
	// The firmware's own trap vector takes its interrupts and faults.
	MOV	$·efirtStvec(SB), S2
	MOV	(S2), S2
	BEQ	S2, ZERO, call
	MOV	$·fwStvec(SB), T3
	MOV	(T3), T3
	CSRRW	T3, STVEC, ZERO
call:
	CSRRSI	$SSTATUS_SIE, SSTATUS, ZERO	// interrupts on for the firmware's timer
	JALR	RA, T0
	CSRRCI	$SSTATUS_SIE, SSTATUS, ZERO
	BEQ	S2, ZERO, done
	CSRRW	S2, STVEC, ZERO
done:
	MOV	S1, X2
	MOV	A0, ret+24(FP)
	RET

// func readTime() uint64
TEXT ·readTime(SB),NOSPLIT,$0-8
	RDTIME	T0
	MOV	T0, ret+0(FP)
	RET

// func setSstatus(bits uintptr) uintptr
//
// Sets bits in sstatus and returns its new value.
TEXT ·setSstatus(SB),NOSPLIT,$0-16
	MOV	bits+0(FP), T0
	CSRRS	T0, SSTATUS, ZERO
	CSRRS	ZERO, SSTATUS, T0
	MOV	T0, ret+8(FP)
	RET

// excEntry is the trap vector efirt installs in stvec while Go code runs
// (direct mode: 4-byte aligned). Interrupts are masked and firmware calls
// run under the firmware's own vector, so what arrives here is an
// exception. One in the program is saved in the thread's frame, as
// efirt_trap saves a system call, and the kernel turns it into a signal;
// one on a kernel stack is an efirt bug and goes to the firmware. sscratch
// parks T0 for a moment; the firmware's value is put back.
TEXT ·excEntry(SB),NOSPLIT|NOFRAME,$0
	CSRRW	T0, SSCRATCH, ZERO
	MOV	$·kstacks(SB), TP
	BLTU	X2, TP, program
	// The end as a symbol offset: a large immediate would need TMP.
	MOV	$·kstacks+(KSTACK_SIZE*MAX_THREADS)(SB), TP
	BGEU	X2, TP, program
	JMP	excChain<>(SB)
program:
	MOV	$·curThread(SB), TP
	MOV	(TP), TP
	MOV	T_KTOP(TP), TP
	ADD	$-F_SIZE, TP
	CSRRS	ZERO, SSCRATCH, T0
	SAVE_REGS
	MOV	X2, F_X2(TP)
	CSRRS	ZERO, SEPC, T0
	MOV	T0, F_PC(TP)
	CSRRS	ZERO, SSTATUS, T0
	MOV	T0, F_STATUS(TP)
	CSRRS	ZERO, SCAUSE, T0
	MOV	T0, F_CAUSE(TP)
	CSRRS	ZERO, STVAL, T0
	MOV	T0, F_TVAL(TP)
	MOV	$1, T0
	MOV	T0, F_VEC(TP)
	MOV	$·fwSscratch(SB), T0
	MOV	(T0), T0
	CSRRW	T0, SSCRATCH, ZERO
	MOV	TP, X2
	JMP	kernel<>(SB)

// excChain hands an exception to the firmware untouched: with the
// firmware's vector back in stvec, returning to the faulting instruction
// raises it again there, and the firmware sees the original state (but TP).
TEXT excChain<>(SB),NOSPLIT|NOFRAME,$0
	MOV	$·fwStvec(SB), TP
	MOV	(TP), TP
	CSRRW	TP, STVEC, ZERO
	MOV	$·fwSscratch(SB), TP
	MOV	(TP), TP
	CSRRW	TP, SSCRATCH, T0
	SRET

// sigreturnTramp is where a signal handler returns: Linux has no
// sa_restorer on riscv64 (its vDSO provides the return), so efirt does.
TEXT ·sigreturnTramp(SB),NOSPLIT|NOFRAME,$0
	MOV	$139, A7	// rt_sigreturn
	CALL	efirt_trap(SB)
	JMP	0(PC)

// func excAddrs() (entry, tramp uintptr)
TEXT ·excAddrs(SB),NOSPLIT,$0-16
	MOV	$·excEntry(SB), T0
	MOV	T0, entry+0(FP)
	MOV	$·sigreturnTramp(SB), T0
	MOV	T0, tramp+8(FP)
	RET

// func readTrapCSRs() (stvec, sscratch, satp uintptr)
TEXT ·readTrapCSRs(SB),NOSPLIT,$0-24
	CSRRS	ZERO, STVEC, T0
	MOV	T0, stvec+0(FP)
	CSRRS	ZERO, SSCRATCH, T0
	MOV	T0, sscratch+8(FP)
	CSRRS	ZERO, SATP, T0
	MOV	T0, satp+16(FP)
	RET

// func writeStvec(v uintptr)
TEXT ·writeStvec(SB),NOSPLIT,$0-8
	MOV	v+0(FP), T0
	CSRRW	T0, STVEC, ZERO
	RET

// func flushTLB()
//
// Orders page-table stores before the walker and drops every cached
// translation.
TEXT ·flushTLB(SB),NOSPLIT,$0-0
	SFENCE_VMA
	RET

// func mmioRead8(addr uintptr) uint8
TEXT ·mmioRead8(SB),NOSPLIT,$0-9
	MOV	addr+0(FP), T0
	MOVBU	(T0), T1
	MOVB	T1, ret+8(FP)
	RET

// func mmioWrite8(addr uintptr, v uint8)
TEXT ·mmioWrite8(SB),NOSPLIT,$0-9
	MOV	addr+0(FP), T0
	MOVBU	v+8(FP), T1
	MOVB	T1, (T0)
	RET
