#include "textflag.h"

// EFI status codes the routine returns.
#define EFI_INVALID_PARAMETER $0x8000000000000002
#define EFI_UNSUPPORTED $0x8000000000000003
#define EFI_BUFFER_TOO_SMALL $0x8000000000000005

// func loadFile2()
// LP64D: R4 = This, R5 = FilePath, R6 = BootPolicy (a BOOLEAN: only the
// low byte counts), R7 = *BufferSize, R8 = Buffer; status in R4. Only the
// caller-saved R4-R20 are used; R30, the assembler's temporary, is
// callee-saved here, so every constant below loads without it.
TEXT ·loadFile2(SB), NOSPLIT|NOFRAME, $0-0
	AND	$0xff, R6, R12
	BNE	R12, unsupported
	BEQ	R7, invalid
	MOVV	16(R4), R12	// size
	BEQ	R8, toosmall
	MOVV	(R7), R13
	SGTU	R12, R13, R14	// size > *BufferSize
	BNE	R14, toosmall
	MOVV	R12, (R7)
	MOVV	8(R4), R15	// data
	MOVV	R8, R16
copy8:
	SGTU	$8, R12, R14
	BNE	R14, tail
	MOVV	(R15), R17
	MOVV	R17, (R16)
	ADDV	$8, R15
	ADDV	$8, R16
	ADDV	$-8, R12
	JMP	copy8
tail:
	BEQ	R12, done
	MOVBU	(R15), R17
	MOVB	R17, (R16)
	ADDV	$1, R15
	ADDV	$1, R16
	ADDV	$-1, R12
	JMP	tail
done:
	MOVV	R0, R4
	RET
toosmall:
	MOVV	R12, (R7)
	MOVV	EFI_BUFFER_TOO_SMALL, R4
	RET
unsupported:
	MOVV	EFI_UNSUPPORTED, R4
	RET
invalid:
	MOVV	EFI_INVALID_PARAMETER, R4
	RET

// func loadFile2Addr() uintptr
TEXT ·loadFile2Addr(SB), NOSPLIT, $0-8
	MOVV	$·loadFile2(SB), R4
	MOVV	R4, ret+0(FP)
	RET

// func callMS5(fn uintptr, a *[5]uintptr) (ret, si, di uintptr)
// The LP64D counterpart of amd64's MS x64 trampoline: calls fn with five
// arguments in R4-R8, markers in the callee-saved R23 and R24, and returns
// what fn left in R4, R23 and R24.
TEXT ·callMS5(SB), NOSPLIT, $16-40
	MOVV	a+8(FP), R12
	MOVV	0(R12), R4
	MOVV	8(R12), R5
	MOVV	16(R12), R6
	MOVV	24(R12), R7
	MOVV	32(R12), R8
	MOVV	$0x5151515151515151, R23
	MOVV	$0xd1d1d1d1d1d1d1d1, R24
	MOVV	fn+0(FP), R12
	JAL	(R12)
	MOVV	R4, ret+16(FP)
	MOVV	R23, si+24(FP)
	MOVV	R24, di+32(FP)
	RET
