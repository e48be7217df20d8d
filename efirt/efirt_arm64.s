// The arm64 machine layer of efirt: the firmware entry point, the trap that
// rewritten system-call sites reach, thread switching, firmware calls and a
// few system registers. Offsets below mirror the Go structs in frames.go
// and threads.go; layout_test.go keeps them in step.
//
// Go keeps g in R28 on arm64, so a thread's g travels in its registers and
// no TLS base needs switching. R18 (the platform register, which Go never
// uses) carries the caller's LR across a rewritten system call; TPIDR_EL0
// (unused by Go without cgo) is scratch while a frame is saved or restored.

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

// frame fields: R0-R30 at 8*n, then the rest.
#define F_R0	0
#define F_R30	240
#define F_SP	248
#define F_PC	256
#define F_PSTATE	264
#define F_VEC	272
#define F_ESR	280
#define F_FAR	288
#define F_SIZE	304

// SAVE_R1_R30 stores R1-R30 into the frame at R0.
#define SAVE_R1_R30 \
	MOVD	R1, 8(R0); \
	STP	(R2, R3), 16(R0); \
	STP	(R4, R5), 32(R0); \
	STP	(R6, R7), 48(R0); \
	STP	(R8, R9), 64(R0); \
	STP	(R10, R11), 80(R0); \
	STP	(R12, R13), 96(R0); \
	STP	(R14, R15), 112(R0); \
	STP	(R16, R17), 128(R0); \
	STP	(R18_PLATFORM, R19), 144(R0); \
	STP	(R20, R21), 160(R0); \
	STP	(R22, R23), 176(R0); \
	STP	(R24, R25), 192(R0); \
	STP	(R26, R27), 208(R0); \
	STP	(g, R29), 224(R0); \
	MOVD	R30, 240(R0)

// LOAD_R0_R29 loads R0-R29 from the frame at RSP.
#define LOAD_R0_R29 \
	LDP	0(RSP), (R0, R1); \
	LDP	16(RSP), (R2, R3); \
	LDP	32(RSP), (R4, R5); \
	LDP	48(RSP), (R6, R7); \
	LDP	64(RSP), (R8, R9); \
	LDP	80(RSP), (R10, R11); \
	LDP	96(RSP), (R12, R13); \
	LDP	112(RSP), (R14, R15); \
	LDP	128(RSP), (R16, R17); \
	LDP	144(RSP), (R18_PLATFORM, R19); \
	LDP	160(RSP), (R20, R21); \
	LDP	176(RSP), (R22, R23); \
	LDP	192(RSP), (R24, R25); \
	LDP	208(RSP), (R26, R27); \
	LDP	224(RSP), (g, R29)

// efirt_entry is the PE entry point: EFI_IMAGE_ENTRY_POINT(ImageHandle in
// R0, SystemTable in R1) under AAPCS64. It masks interrupts, moves to
// thread 0's kernel stack, lets kmain build the Linux process start, and
// jumps into the Go runtime's own Linux entry on the new user stack.
TEXT efirt_entry(SB),NOSPLIT|NOFRAME,$0
	MSR	$7, DAIFSet	// SError, IRQ and FIQ
	MOVD	$·imageHandle(SB), R2
	MOVD	R0, (R2)
	MOVD	$·systemTable(SB), R2
	MOVD	R1, (R2)
	MOVD	RSP, R0
	MOVD	$·firmwareSP(SB), R2
	MOVD	R0, (R2)

	// The mode an exception return goes back to: this EL and stack
	// pointer, all of DAIF masked.
	MRS	CurrentEL, R0
	MRS	SPSel, R1
	ORR	R1, R0
	ORR	$0x3c0, R0
	MOVD	$·spsrMode(SB), R2
	MOVD	R0, (R2)

	// Thread 0 runs the kernel on kstacks[0] under the kernel g embedded
	// in its thread; no Go code may run before the g's bounds are set.
	MOVD	$·threads(SB), R3
	MOVD	$·curThread(SB), R2
	MOVD	R3, (R2)
	MOVD	$·kstacks(SB), R5
	ADD	$KSTACK_SIZE, R5, R4
	AND	$~15, R4
	MOVD	R4, T_KTOP(R3)
	ADD	$T_G, R3, g
	MOVD	g, T_KG(R3)
	MOVD	R5, 0(g)
	MOVD	R4, 8(g)
	ADD	$KSTACK_GUARD, R5
	MOVD	R5, 16(g)
	MOVD	R5, 24(g)
	MOVD	R4, RSP

	SUB	$16, RSP
	BL	·kmain(SB)
	MOVD	8(RSP), R0

	// The Go runtime starts as a Linux process would: argc at 0(RSP).
	MOVD	R0, RSP
	MOVD	ZR, R0
	MOVD	ZR, R1
	MOVD	ZR, R2
	MOVD	ZR, R3
	MOVD	ZR, R4
	MOVD	ZR, R5
	MOVD	ZR, g
	MOVD	ZR, R30
	B	_rt0_arm64_linux(SB)

// efirt_trap replaces every SVC of the runtime and std. The rewritten site
// is "MOVD R30, R18; BL efirt_trap; MOVD R18, R30", so the trap is reached
// with the return address in R30 and the Linux system-call registers
// (number in R8, arguments in R0-R5); like SVC it returns the result in R0
// and preserves every other register. It saves the user registers in a
// frame at the top of the thread's kernel stack and runs dispatch there
// under the thread's kernel g.
TEXT efirt_trap(SB),NOSPLIT|NOFRAME,$0
	MSR	R0, TPIDR_EL0
	MOVD	$·curThread(SB), R0
	MOVD	(R0), R0
	MOVD	T_KTOP(R0), R0
	SUB	$F_SIZE, R0
	SAVE_R1_R30
	MRS	TPIDR_EL0, R1
	MOVD	R1, F_R0(R0)
	MOVD	RSP, R1
	MOVD	R1, F_SP(R0)
	MOVD	R30, F_PC(R0)
	MRS	NZCV, R1
	MOVD	R1, F_PSTATE(R0)
	MOVD	$-1, R1
	MOVD	R1, F_VEC(R0)
	MOVD	R0, RSP
	B	kernel<>(SB)

// kernel runs dispatch on the frame at RSP under the thread's kernel g and
// leaves through the return path the frame asks for.
TEXT kernel<>(SB),NOSPLIT|NOFRAME,$0
	MOVD	$·curThread(SB), R0
	MOVD	(R0), R0
	MOVD	T_KG(R0), g
	MOVD	RSP, R0
	SUB	$16, RSP
	MOVD	R0, 8(RSP)
	BL	·dispatch(SB)
	ADD	$16, RSP
	MOVD	F_VEC(RSP), R0
	CMN	$1, R0
	BNE	full
	B	·trapReturn(SB)
full:
	B	·trapReturnFull(SB)

// trapReturn leaves the kernel after a system call: RSP points at the frame
// of the current thread. R30 comes back as the return address, which the
// rewritten site replaces with the LR it kept in R18.
TEXT ·trapReturn(SB),NOSPLIT|NOFRAME,$0
	MOVD	F_PC(RSP), R0
	MSR	R0, TPIDR_EL0
	LOAD_R0_R29
	MOVD	F_SP(RSP), R30
	MOVD	R30, RSP
	MRS	TPIDR_EL0, R30
	RET	(R30)

// trapReturnFull restores every register, the flags and the PC with an
// exception return: the way back from a CPU exception and rt_sigreturn.
// Only the flags come from the frame; the mode and masks are efirt's.
TEXT ·trapReturnFull(SB),NOSPLIT|NOFRAME,$0
	MOVD	F_PC(RSP), R0
	MSR	R0, ELR_EL1
	MOVD	F_PSTATE(RSP), R0
	AND	$0xf0000000, R0
	MOVD	$·spsrMode(SB), R1
	MOVD	(R1), R1
	ORR	R1, R0
	MSR	R0, SPSR_EL1
	MOVD	F_R30(RSP), R0
	MSR	R0, TPIDR_EL0
	LOAD_R0_R29
	MOVD	F_SP(RSP), R30
	MOVD	R30, RSP
	MRS	TPIDR_EL0, R30
	ERET

// func trapReturnPC() uintptr
TEXT ·trapReturnPC(SB),NOSPLIT,$0-8
	MOVD	$·trapReturn(SB), R0
	MOVD	R0, ret+0(FP)
	RET

// func swtch(from, to *thread)
//
// Saves R29 and R30 on the kernel stack of from, resumes to's kernel stack
// and its kernel g. Go assumes every other register clobbered by a call.
TEXT ·swtch(SB),NOSPLIT|NOFRAME,$0-16
	MOVD	from+0(FP), R0
	MOVD	to+8(FP), R1
	SUB	$16, RSP
	STP	(R29, R30), (RSP)
	MOVD	RSP, R2
	MOVD	R2, T_KSP(R0)
	MOVD	T_KSP(R1), R2
	MOVD	R2, RSP
	MOVD	$·curThread(SB), R3
	MOVD	R1, (R3)
	MOVD	T_KG(R1), g
	LDP	(RSP), (R29, R30)
	ADD	$16, RSP
	RET

// func fwcall(fn uintptr, args *[maxArgs]uintptr, n uintptr) uintptr
//
// AAPCS64: arguments 1-8 in R0-R7, the rest on the stack, SP 16-byte
// aligned. R19-R29 and SP survive the call, g (R28) among them.
TEXT ·fwcall(SB),NOSPLIT,$0-32
	MOVD	fn+0(FP), R9
	MOVD	args+8(FP), R10
	MOVD	n+16(FP), R11
	MOVD	RSP, R19
	MOVD	$·firmwareStackTop(SB), R12
	MOVD	(R12), R12
	SUB	$(8*16), R12
	AND	$~15, R12
	MOVD	R12, RSP
	// Arguments 9 and on go to the stack.
	MOVD	$8, R12
copy:
	CMP	R11, R12
	BHS	regs
	MOVD	(R10)(R12<<3), R13
	SUB	$8, R12, R14
	MOVD	R13, (RSP)(R14<<3)
	ADD	$1, R12
	B	copy
regs:
	LDP	0(R10), (R0, R1)
	LDP	16(R10), (R2, R3)
	LDP	32(R10), (R4, R5)
	LDP	48(R10), (R6, R7)
	// The firmware's own vectors take its interrupts and faults.
	MOVD	$·efirtVBAR(SB), R20
	MOVD	(R20), R20
	CBZ	R20, call
	MOVD	$·fwVBAR(SB), R12
	MOVD	(R12), R12
	MSR	R12, VBAR_EL1
	ISB	$15
call:
	MSR	$2, DAIFClr	// IRQs on for the firmware's timer
	BL	(R9)
	MSR	$3, DAIFSet
	CBZ	R20, done
	MSR	R20, VBAR_EL1
	ISB	$15
done:
	MOVD	R19, RSP
	MOVD	R0, ret+24(FP)
	RET

// func readCNTVCT() uint64
TEXT ·readCNTVCT(SB),NOSPLIT,$0-8
	ISB	$15
	MRS	CNTVCT_EL0, R0
	MOVD	R0, ret+0(FP)
	RET

// func readCNTFRQ() uint64
TEXT ·readCNTFRQ(SB),NOSPLIT,$0-8
	MRS	CNTFRQ_EL0, R0
	MOVD	R0, ret+0(FP)
	RET

// func readIDRegs() (isar0, pfr0 uint64)
TEXT ·readIDRegs(SB),NOSPLIT,$0-16
	MRS	ID_AA64ISAR0_EL1, R0
	MRS	ID_AA64PFR0_EL1, R1
	MOVD	R0, isar0+0(FP)
	MOVD	R1, pfr0+8(FP)
	RET

// func rndr() (v uint64, ok bool)
//
// RNDR clears Z on success and sets it when no entropy was to be had.
TEXT ·rndr(SB),NOSPLIT,$0-9
	MOVD	$32, R1
retry:
	MRS	RNDR, R0
	BNE	done
	SUBS	$1, R1
	BNE	retry
	MOVD	ZR, v+0(FP)
	MOVB	ZR, ok+8(FP)
	RET
done:
	MOVD	R0, v+0(FP)
	MOVD	$1, R1
	MOVB	R1, ok+8(FP)
	RET

// The exception vectors efirt installs in VBAR_EL1 while Go code runs: 16
// entries of 128 bytes, 2 KiB aligned. Only a synchronous exception from the
// current EL on SP_ELx (offset 0x200) can be the program's; interrupts are
// masked and firmware calls run under the firmware's own vectors, so every
// other entry goes back to the firmware.
TEXT ·excVectors(SB),NOSPLIT|NOFRAME,$0
	PCALIGN	$2048
	B	excChain<>(SB)	// 0x000 synchronous, SP_EL0
	PCALIGN	$128
	B	excChain<>(SB)	// 0x080 IRQ, SP_EL0
	PCALIGN	$128
	B	excChain<>(SB)	// 0x100 FIQ, SP_EL0
	PCALIGN	$128
	B	excChain<>(SB)	// 0x180 SError, SP_EL0
	PCALIGN	$128
	B	excSync<>(SB)	// 0x200 synchronous, SP_ELx
	PCALIGN	$128
	B	excChain<>(SB)	// 0x280 IRQ, SP_ELx
	PCALIGN	$128
	B	excChain<>(SB)	// 0x300 FIQ, SP_ELx
	PCALIGN	$128
	B	excChain<>(SB)	// 0x380 SError, SP_ELx
	PCALIGN	$128
	B	excChain<>(SB)	// 0x400 lower EL, AArch64
	PCALIGN	$128
	B	excChain<>(SB)
	PCALIGN	$128
	B	excChain<>(SB)
	PCALIGN	$128
	B	excChain<>(SB)
	PCALIGN	$128
	B	excChain<>(SB)	// 0x600 lower EL, AArch32
	PCALIGN	$128
	B	excChain<>(SB)
	PCALIGN	$128
	B	excChain<>(SB)
	PCALIGN	$128
	B	excChain<>(SB)

// excChain hands an exception to the firmware untouched: with the
// firmware's vectors back in VBAR_EL1, returning to the faulting
// instruction raises it again there (a pending interrupt is taken again
// as soon as it is unmasked), and the firmware sees the original state.
TEXT excChain<>(SB),NOSPLIT|NOFRAME,$0
	MSR	R0, TPIDR_EL0
	MOVD	$·fwVBAR(SB), R0
	MOVD	(R0), R0
	MSR	R0, VBAR_EL1
	MRS	TPIDR_EL0, R0
	ISB	$15
	ERET

// excSync saves a synchronous exception of the program in the thread's
// frame, as efirt_trap does a system call, and runs the kernel, which turns
// it into a signal. One on a kernel stack is an efirt bug: chained.
// Exceptions on SP_ELx run on the interrupted stack, which may be a
// goroutine's: nothing is stored below its SP.
TEXT excSync<>(SB),NOSPLIT|NOFRAME,$0
	MSR	R0, TPIDR_EL0
	MSR	R1, TPIDRRO_EL0
	MOVD	RSP, R0
	MOVD	$·kstacks(SB), R1
	CMP	R1, R0
	BLO	program
	// The end as a symbol offset: a large ADD immediate would need R27.
	MOVD	$·kstacks+(KSTACK_SIZE*MAX_THREADS)(SB), R1
	CMP	R1, R0
	BHS	program
	MRS	TPIDRRO_EL0, R1
	MRS	TPIDR_EL0, R0
	B	excChain<>(SB)
program:
	MOVD	$·curThread(SB), R0
	MOVD	(R0), R0
	MOVD	T_KTOP(R0), R0
	SUB	$F_SIZE, R0
	SAVE_R1_R30
	MRS	TPIDR_EL0, R1
	MOVD	R1, F_R0(R0)
	MRS	TPIDRRO_EL0, R1
	MOVD	R1, 8(R0)
	MOVD	RSP, R1
	MOVD	R1, F_SP(R0)
	MRS	ELR_EL1, R1
	MOVD	R1, F_PC(R0)
	MRS	SPSR_EL1, R1
	MOVD	R1, F_PSTATE(R0)
	MRS	ESR_EL1, R1
	MOVD	R1, F_ESR(R0)
	MRS	FAR_EL1, R1
	MOVD	R1, F_FAR(R0)
	MOVD	$1, R1
	MOVD	R1, F_VEC(R0)
	MOVD	R0, RSP
	B	kernel<>(SB)

// sigreturnTramp is where a signal handler returns: Go's runtime sets no
// restorer on arm64 (Linux's vDSO provides one), so efirt does.
TEXT ·sigreturnTramp(SB),NOSPLIT|NOFRAME,$0
	MOVD	$139, R8	// rt_sigreturn
	BL	efirt_trap(SB)
	B	0(PC)

// func excAddrs() (vectors, tramp uintptr)
TEXT ·excAddrs(SB),NOSPLIT,$0-16
	MOVD	$·excVectors(SB), R0
	MOVD	R0, vectors+0(FP)
	MOVD	$·sigreturnTramp(SB), R0
	MOVD	R0, tramp+8(FP)
	RET

// func readVBAR() uintptr
TEXT ·readVBAR(SB),NOSPLIT,$0-8
	MRS	VBAR_EL1, R0
	MOVD	R0, ret+0(FP)
	RET

// func writeVBAR(v uintptr)
TEXT ·writeVBAR(SB),NOSPLIT,$0-8
	MOVD	v+0(FP), R0
	MSR	R0, VBAR_EL1
	ISB	$15
	RET

// func readMMU() (tcr, ttbr0 uintptr)
TEXT ·readMMU(SB),NOSPLIT,$0-16
	MRS	TCR_EL1, R0
	MOVD	R0, tcr+0(FP)
	MRS	TTBR0_EL1, R0
	MOVD	R0, ttbr0+8(FP)
	RET

// func flushTLB()
//
// Makes page-table stores visible to the walker, then drops every
// translation of this EL1&0 regime.
TEXT ·flushTLB(SB),NOSPLIT,$0-0
	DSB	$0xb	// ISH
	TLBI	VMALLE1
	DSB	$0xb
	ISB	$15
	RET
