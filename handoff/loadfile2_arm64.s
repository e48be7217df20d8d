#include "textflag.h"

// EFI status codes the routine returns.
#define EFI_INVALID_PARAMETER $0x8000000000000002
#define EFI_UNSUPPORTED $0x8000000000000003
#define EFI_BUFFER_TOO_SMALL $0x8000000000000005

// func loadFile2()
// AAPCS64: R0 = This, R1 = FilePath, R2 = BootPolicy (a BOOLEAN: only the
// low byte counts), R3 = *BufferSize, R4 = Buffer; status in R0. Only the
// caller-saved R0-R15 are used; R27, the assembler's temporary, is
// callee-saved here, so every constant below loads without it.
TEXT ·loadFile2(SB), NOSPLIT|NOFRAME, $0-0
	AND	$0xff, R2, R9
	CBNZ	R9, unsupported
	CBZ	R3, invalid
	MOVD	16(R0), R9	// size
	CBZ	R4, toosmall
	MOVD	(R3), R10
	CMP	R9, R10
	BLO	toosmall
	MOVD	R9, (R3)
	MOVD	8(R0), R11	// data
	MOVD	R4, R12
copy16:
	CMP	$16, R9
	BLO	tail
	LDP.P	16(R11), (R13, R14)
	STP.P	(R13, R14), 16(R12)
	SUB	$16, R9
	B	copy16
tail:
	CBZ	R9, done
	MOVBU.P	1(R11), R13
	MOVB.P	R13, 1(R12)
	SUB	$1, R9
	B	tail
done:
	MOVD	ZR, R0
	RET
toosmall:
	MOVD	R9, (R3)
	MOVD	EFI_BUFFER_TOO_SMALL, R0
	RET
unsupported:
	MOVD	EFI_UNSUPPORTED, R0
	RET
invalid:
	MOVD	EFI_INVALID_PARAMETER, R0
	RET

// func loadFile2Addr() uintptr
TEXT ·loadFile2Addr(SB), NOSPLIT, $0-8
	MOVD	$·loadFile2(SB), R0
	MOVD	R0, ret+0(FP)
	RET

// func callMS5(fn uintptr, a *[5]uintptr) (ret, si, di uintptr)
// The AAPCS64 counterpart of amd64's MS x64 trampoline: calls fn with five
// arguments in R0-R4, markers in the callee-saved R19 and R20, and returns
// what fn left in R0, R19 and R20.
TEXT ·callMS5(SB), NOSPLIT, $16-40
	MOVD	a+8(FP), R9
	LDP	0(R9), (R0, R1)
	LDP	16(R9), (R2, R3)
	MOVD	32(R9), R4
	MOVD	$0x5151515151515151, R19
	MOVD	$0xd1d1d1d1d1d1d1d1, R20
	MOVD	fn+0(FP), R9
	BL	(R9)
	MOVD	R0, ret+16(FP)
	MOVD	R19, si+24(FP)
	MOVD	R20, di+32(FP)
	RET
