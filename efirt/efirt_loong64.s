// The loong64 machine layer of efirt: the firmware entry point, the trap that
// rewritten system-call sites reach, thread switching, firmware calls, the
// exception entry and a few control and status registers. Offsets below
// mirror the Go structs in frame_loongarch.go and threads.go;
// layout_test.go keeps them in step.
//
// Go keeps g in R22 on loong64, so a thread's g travels in its registers
// and no TLS base needs switching. R2 (the thread pointer, which Go never
// uses) carries the caller's R1 across a rewritten system call. R30, the
// assembler's temporary, is dead at every JAL, so the trap may use it; the
// exception entry, which interrupts code at any instruction, uses the
// SAVE6 and SAVE7 scratch CSRs instead.
//
// Go's assembler has no CSR instructions; they are spelled as WORDs.

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

// frame fields: R0-R31 at 8*n (R0's slot unused, R3 is the stack
// pointer), then the rest.
#define F_R1	8
#define F_R3	24
#define F_R12	96
#define F_R13	104
#define F_PC	256
#define F_PRMD	264
#define F_VEC	272
#define F_ESTAT	280
#define F_BADV	288
#define F_SIZE	304

// CSR numbers.
#define CSR_CRMD	0x0
#define CSR_PRMD	0x1
#define CSR_EUEN	0x2
#define CSR_ECFG	0x4
#define CSR_ESTAT	0x5
#define CSR_ERA	0x6
#define CSR_BADV	0x7
#define CSR_EENTRY	0xc
#define CSR_SAVE6	0x36
#define CSR_SAVE7	0x37

// csrrd rd, csr; csrwr rd, csr (swaps); csrxchg rd, rj, csr (rd under
// mask rj, old value to rd).
#define CSRRD(csr, rd)	WORD	$(0x04000000 | ((csr)<<10) | (rd))
#define CSRWR(csr, rd)	WORD	$(0x04000020 | ((csr)<<10) | (rd))
#define CSRXCHG(csr, rj, rd)	WORD	$(0x04000000 | ((csr)<<10) | ((rj)<<5) | (rd))
#define ERTN	WORD	$0x06483800

// SAVE_GPRS stores R1-R31 but R12, R13 and R30 into the frame at R12.
#define SAVE_GPRS \
	MOVV	R1, 8(R12); \
	MOVV	R2, 16(R12); \
	MOVV	R3, 24(R12); \
	MOVV	R4, 32(R12); \
	MOVV	R5, 40(R12); \
	MOVV	R6, 48(R12); \
	MOVV	R7, 56(R12); \
	MOVV	R8, 64(R12); \
	MOVV	R9, 72(R12); \
	MOVV	R10, 80(R12); \
	MOVV	R11, 88(R12); \
	MOVV	R14, 112(R12); \
	MOVV	R15, 120(R12); \
	MOVV	R16, 128(R12); \
	MOVV	R17, 136(R12); \
	MOVV	R18, 144(R12); \
	MOVV	R19, 152(R12); \
	MOVV	R20, 160(R12); \
	MOVV	R21, 168(R12); \
	MOVV	g, 176(R12); \
	MOVV	R23, 184(R12); \
	MOVV	R24, 192(R12); \
	MOVV	R25, 200(R12); \
	MOVV	R26, 208(R12); \
	MOVV	R27, 216(R12); \
	MOVV	R28, 224(R12); \
	MOVV	R29, 232(R12); \
	MOVV	R31, 248(R12)

// LOAD_GPRS loads R2 and R4-R31 but R30 from the frame at R3.
#define LOAD_GPRS \
	MOVV	16(R3), R2; \
	MOVV	32(R3), R4; \
	MOVV	40(R3), R5; \
	MOVV	48(R3), R6; \
	MOVV	56(R3), R7; \
	MOVV	64(R3), R8; \
	MOVV	72(R3), R9; \
	MOVV	80(R3), R10; \
	MOVV	88(R3), R11; \
	MOVV	96(R3), R12; \
	MOVV	104(R3), R13; \
	MOVV	112(R3), R14; \
	MOVV	120(R3), R15; \
	MOVV	128(R3), R16; \
	MOVV	136(R3), R17; \
	MOVV	144(R3), R18; \
	MOVV	152(R3), R19; \
	MOVV	160(R3), R20; \
	MOVV	168(R3), R21; \
	MOVV	176(R3), g; \
	MOVV	184(R3), R23; \
	MOVV	192(R3), R24; \
	MOVV	200(R3), R25; \
	MOVV	208(R3), R26; \
	MOVV	216(R3), R27; \
	MOVV	224(R3), R28; \
	MOVV	232(R3), R29; \
	MOVV	248(R3), R31

// efirt_entry is the PE entry point: EFI_IMAGE_ENTRY_POINT(ImageHandle in
// R4, SystemTable in R5) under LP64D. It masks interrupts, turns on the
// FPU (and LSX and LASX where the CPU has them: Go's std uses them), moves
// to thread 0's kernel stack, lets kmain build the Linux process start and
// jumps into the Go runtime's own Linux entry on the new user stack.
TEXT efirt_entry(SB),NOSPLIT|NOFRAME,$0
	MOVV	$4, R12
	CSRXCHG(CSR_CRMD, 12, 0)	// CRMD.IE off
	MOVV	$·imageHandle(SB), R12
	MOVV	R4, (R12)
	MOVV	$·systemTable(SB), R12
	MOVV	R5, (R12)
	MOVV	$·firmwareSP(SB), R12
	MOVV	R3, (R12)

	MOVV	$2, R13
	CPUCFG	R13, R14
	MOVV	$1, R15	// EUEN.FPE
	AND	$0x40, R14, R16	// CPUCFG2.LSX
	BEQ	R16, nolsx
	OR	$2, R15	// EUEN.SXE
nolsx:
	AND	$0x80, R14, R16	// CPUCFG2.LASX
	BEQ	R16, nolasx
	OR	$4, R15	// EUEN.ASXE
nolasx:
	CSRXCHG(CSR_EUEN, 15, 15)
	MOVV	$·euen(SB), R12
	MOVV	R15, (R12)

	// Thread 0 runs the kernel on kstacks[0] under the kernel g embedded
	// in its thread; no Go code may run before the g's bounds are set.
	MOVV	$·threads(SB), R13
	MOVV	$·curThread(SB), R12
	MOVV	R13, (R12)
	MOVV	$·kstacks(SB), R15
	MOVV	$KSTACK_SIZE, R14
	ADDV	R15, R14
	MOVV	$-16, R12
	AND	R12, R14
	MOVV	R14, T_KTOP(R13)
	ADDV	$T_G, R13, g
	MOVV	g, T_KG(R13)
	MOVV	R15, 0(g)
	MOVV	R14, 8(g)
	ADDV	$KSTACK_GUARD, R15
	MOVV	R15, 16(g)
	MOVV	R15, 24(g)
	MOVV	R14, R3

	ADDV	$-16, R3
	JAL	·kmain(SB)
	MOVV	8(R3), R4

	// The Go runtime starts as a Linux process would: argc at 0(R3).
	MOVV	R4, R3
	MOVV	R0, R4
	MOVV	R0, R5
	MOVV	R0, R6
	MOVV	R0, R7
	MOVV	R0, g
	MOVV	R0, R1
	JMP	_rt0_loong64_linux(SB)

// efirt_trap replaces every SYSCALL of the runtime and std. The rewritten
// site is "MOVV R1, R2; JAL efirt_trap; MOVV R2, R1", so the trap is
// reached with the return address in R1 and the Linux system-call
// registers (number in R11, arguments in R4-R9); like SYSCALL it returns
// the result in R4 and preserves every other register. It saves the user
// registers in a frame at the top of the thread's kernel stack and runs
// dispatch there under the thread's kernel g.
TEXT efirt_trap(SB),NOSPLIT|NOFRAME,$0
	MOVV	R12, R30
	MOVV	$·curThread(SB), R12
	MOVV	(R12), R12
	MOVV	T_KTOP(R12), R12
	ADDV	$-F_SIZE, R12
	SAVE_GPRS
	MOVV	R30, F_R12(R12)
	MOVV	R13, F_R13(R12)
	MOVV	R1, F_PC(R12)
	MOVV	$-1, R13
	MOVV	R13, F_VEC(R12)
	MOVV	R12, R3
	JMP	kernel<>(SB)

// kernel runs dispatch on the frame at R3 under the thread's kernel g and
// leaves through the return path the frame asks for.
TEXT kernel<>(SB),NOSPLIT|NOFRAME,$0
	MOVV	$·curThread(SB), R4
	MOVV	(R4), R4
	MOVV	T_KG(R4), g
	MOVV	R3, R4
	ADDV	$-16, R3
	MOVV	R4, 8(R3)
	JAL	·dispatch(SB)
	ADDV	$16, R3
	MOVV	F_VEC(R3), R4
	MOVV	$-1, R5
	BNE	R4, R5, full
	JMP	·trapReturn(SB)
full:
	JMP	·trapReturnFull(SB)

// trapReturn leaves the kernel after a system call: R3 points at the frame
// of the current thread. R1 comes back as the return address, which the
// rewritten site replaces with the R1 it kept in R2.
TEXT ·trapReturn(SB),NOSPLIT|NOFRAME,$0
	LOAD_GPRS
	MOVV	F_PC(R3), R1
	MOVV	F_R3(R3), R3
	JMP	(R1)

// trapReturnFull restores every register and the PC with an exception
// return: the way back from a CPU exception and rt_sigreturn. Interrupts
// stay masked (PRMD.PIE clear), at PLV0.
TEXT ·trapReturnFull(SB),NOSPLIT|NOFRAME,$0
	MOVV	F_PC(R3), R4
	CSRWR(CSR_ERA, 4)
	MOVV	R0, R4
	CSRWR(CSR_PRMD, 4)
	LOAD_GPRS
	MOVV	240(R3), R30
	MOVV	F_R1(R3), R1
	MOVV	F_R3(R3), R3
	ERTN

// func trapReturnPC() uintptr
TEXT ·trapReturnPC(SB),NOSPLIT,$0-8
	MOVV	$·trapReturn(SB), R4
	MOVV	R4, ret+0(FP)
	RET

// func swtch(from, to *thread)
//
// Saves R1 on the kernel stack of from, resumes to's kernel stack and its
// kernel g. Go assumes every other register clobbered by a call.
TEXT ·swtch(SB),NOSPLIT|NOFRAME,$0-16
	MOVV	from+0(FP), R4
	MOVV	to+8(FP), R5
	ADDV	$-16, R3
	MOVV	R1, 8(R3)
	MOVV	R3, T_KSP(R4)
	MOVV	T_KSP(R5), R3
	MOVV	$·curThread(SB), R6
	MOVV	R5, (R6)
	MOVV	T_KG(R5), g
	MOVV	8(R3), R1
	ADDV	$16, R3
	RET

// func fwcall(fn uintptr, args *[maxArgs]uintptr, n uintptr) uintptr
//
// LP64D: arguments 1-8 in R4-R11, the rest on the stack, SP 16-byte
// aligned. R22-R31 and SP survive the call, g (R22) among them.
TEXT ·fwcall(SB),NOSPLIT|NOFRAME,$0-32
	MOVV	fn+0(FP), R12
	MOVV	args+8(FP), R13
	MOVV	n+16(FP), R14
	MOVV	R3, R23
	MOVV	R1, R24
	MOVV	$·firmwareStackTop(SB), R15
	MOVV	(R15), R15
	ADDV	$-(8*16), R15
	MOVV	$-16, R16
	AND	R16, R15
	MOVV	R15, R3
	// Arguments 9 and on go to the stack.
	MOVV	$8, R15
copy:
	SUBV	R15, R14, R16
	BLEZ	R16, regs
	SLLV	$3, R15, R16
	ADDV	R13, R16
	MOVV	(R16), R17
	ADDV	$-8, R15, R16
	SLLV	$3, R16
	ADDV	R3, R16
	MOVV	R17, (R16)
	ADDV	$1, R15
	JMP	copy
regs:
	MOVV	0(R13), R4
	MOVV	8(R13), R5
	MOVV	16(R13), R6
	MOVV	24(R13), R7
	MOVV	32(R13), R8
	MOVV	40(R13), R9
	MOVV	48(R13), R10
	MOVV	56(R13), R11
	// The firmware's own exception entry takes its interrupts and faults.
	MOVV	$·efirtEENTRY(SB), R25
	MOVV	(R25), R25
	BEQ	R25, call
	MOVV	$·fwEENTRY(SB), R16
	MOVV	(R16), R16
	CSRWR(CSR_EENTRY, 16)
call:
	MOVV	$4, R16
	CSRXCHG(CSR_CRMD, 16, 16)	// CRMD.IE on for the firmware's timer
	JAL	(R12)
	MOVV	$4, R16
	CSRXCHG(CSR_CRMD, 16, 0)	// and off again
	BEQ	R25, done
	CSRWR(CSR_EENTRY, 25)
done:
	MOVV	R23, R3
	MOVV	R24, R1
	MOVV	R4, ret+24(FP)
	RET

// func readTime() uint64
TEXT ·readTime(SB),NOSPLIT,$0-8
	RDTIMED	R0, R4
	MOVV	R4, ret+0(FP)
	RET

// func cpucfg(word uint32) uint32
TEXT ·cpucfg(SB),NOSPLIT,$0-12
	MOVWU	word+0(FP), R5
	CPUCFG	R5, R4
	MOVW	R4, ret+8(FP)
	RET

// func readCSRs() (crmd, ecfg, eentry uintptr)
TEXT ·readCSRs(SB),NOSPLIT,$0-24
	CSRRD(CSR_CRMD, 4)
	MOVV	R4, crmd+0(FP)
	CSRRD(CSR_ECFG, 4)
	MOVV	R4, ecfg+8(FP)
	CSRRD(CSR_EENTRY, 4)
	MOVV	R4, eentry+16(FP)
	RET

// func writeEENTRY(v uintptr)
TEXT ·writeEENTRY(SB),NOSPLIT,$0-8
	MOVV	v+0(FP), R4
	CSRWR(CSR_EENTRY, 4)
	RET

// excVectors is where EENTRY leads while Go code runs: with ECFG.VS 0
// every exception and interrupt enters at EENTRY, a 4 KiB aligned page
// (which Go's assembler cannot align to) holding a stub that moves R12 to
// SAVE6 and jumps here. Interrupts are masked while Go runs and firmware
// calls run under the firmware's entry, so an interrupt here is passed
// on; so is an exception on a kernel stack, which is an efirt bug.
TEXT ·excVectors(SB),NOSPLIT|NOFRAME,$0
	CSRWR(CSR_SAVE7, 13)
	CSRRD(CSR_ESTAT, 12)
	SRLV	$16, R12
	AND	$0x3f, R12
	BEQ	R12, chain	// Ecode 0: an interrupt
	MOVV	$·kstacks(SB), R12
	SUBV	R12, R3, R12
	MOVV	$(KSTACK_SIZE*MAX_THREADS), R13
	SGTU	R13, R12, R13
	BNE	R13, chain
	MOVV	$·curThread(SB), R12
	MOVV	(R12), R12
	MOVV	T_KTOP(R12), R12
	ADDV	$-F_SIZE, R12
	SAVE_GPRS
	MOVV	R30, 240(R12)
	CSRRD(CSR_SAVE6, 13)
	MOVV	R13, F_R12(R12)
	CSRRD(CSR_SAVE7, 13)
	MOVV	R13, F_R13(R12)
	CSRRD(CSR_ERA, 13)
	MOVV	R13, F_PC(R12)
	CSRRD(CSR_PRMD, 13)
	MOVV	R13, F_PRMD(R12)
	CSRRD(CSR_ESTAT, 13)
	MOVV	R13, F_ESTAT(R12)
	CSRRD(CSR_BADV, 13)
	MOVV	R13, F_BADV(R12)
	MOVV	$1, R13
	MOVV	R13, F_VEC(R12)
	MOVV	R12, R3
	JMP	kernel<>(SB)

// chain hands an exception to the firmware untouched: with the firmware's
// entry back in EENTRY, returning to the faulting instruction raises it
// again there (a pending interrupt is taken again as soon as it is
// unmasked), and the firmware sees the original state.
chain:
	MOVV	$·fwEENTRY(SB), R12
	MOVV	(R12), R12
	CSRWR(CSR_EENTRY, 12)
	CSRRD(CSR_SAVE6, 12)
	CSRRD(CSR_SAVE7, 13)
	ERTN

// sigreturnTramp is where a signal handler returns: Go's runtime sets no
// restorer on loong64 (Linux's vDSO provides one), so efirt does.
TEXT ·sigreturnTramp(SB),NOSPLIT|NOFRAME,$0
	MOVV	$139, R11	// rt_sigreturn
	JAL	efirt_trap(SB)
	JMP	0(PC)

// func excAddrs() (vectors, tramp uintptr)
TEXT ·excAddrs(SB),NOSPLIT,$0-16
	MOVV	$·excVectors(SB), R4
	MOVV	R4, vectors+0(FP)
	MOVV	$·sigreturnTramp(SB), R4
	MOVV	R4, tramp+8(FP)
	RET

// func ibar()
//
// Makes instructions stored as data (the exception stub) visible to
// instruction fetch.
TEXT ·ibar(SB),NOSPLIT,$0-0
	DBAR	$0
	WORD	$0x38728000	// ibar 0
	RET

// func readMMU() (crmd, pgdl, pwcl, pwch uintptr)
TEXT ·readMMU(SB),NOSPLIT,$0-32
	CSRRD(0x0, 4)	// CRMD
	MOVV	R4, crmd+0(FP)
	CSRRD(0x19, 4)	// PGDL
	MOVV	R4, pgdl+8(FP)
	CSRRD(0x1c, 4)	// PWCL
	MOVV	R4, pwcl+16(FP)
	CSRRD(0x1d, 4)	// PWCH
	MOVV	R4, pwch+24(FP)
	RET

// func flushTLB()
//
// Orders the page-table stores, then drops every TLB entry (invtlb 0).
TEXT ·flushTLB(SB),NOSPLIT,$0-0
	DBAR	$0
	WORD	$0x06498000
	RET
