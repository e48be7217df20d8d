#include "textflag.h"

// EFI status codes the routine returns.
#define EFI_INVALID_PARAMETER $0x8000000000000002
#define EFI_UNSUPPORTED $0x8000000000000003
#define EFI_BUFFER_TOO_SMALL $0x8000000000000005

// func loadFile2()
// MS x64: CX = This, DX = FilePath, R8 = BootPolicy, R9 = *BufferSize,
// 40(SP) = Buffer (past the return address and 32 bytes of shadow space).
// RSI and RDI are callee-saved there, so they are parked in DX and R11.
TEXT ·loadFile2(SB), NOSPLIT|NOFRAME, $0-0
	TESTB	R8, R8
	JNZ	unsupported
	TESTQ	R9, R9
	JZ	invalid
	MOVQ	16(CX), AX // size
	MOVQ	40(SP), R10 // Buffer
	TESTQ	R10, R10
	JZ	toosmall
	CMPQ	(R9), AX
	JB	toosmall
	MOVQ	AX, (R9)
	MOVQ	SI, DX
	MOVQ	DI, R11
	MOVQ	8(CX), SI
	MOVQ	R10, DI
	MOVQ	AX, CX
	CLD
	REP;	MOVSB
	MOVQ	DX, SI
	MOVQ	R11, DI
	XORL	AX, AX
	RET
toosmall:
	MOVQ	AX, (R9)
	MOVQ	EFI_BUFFER_TOO_SMALL, AX
	RET
unsupported:
	MOVQ	EFI_UNSUPPORTED, AX
	RET
invalid:
	MOVQ	EFI_INVALID_PARAMETER, AX
	RET

// func loadFile2Addr() uintptr
TEXT ·loadFile2Addr(SB), NOSPLIT, $0-8
	LEAQ	·loadFile2(SB), AX
	MOVQ	AX, ret+0(FP)
	RET

// func callMS5(fn uintptr, a *[5]uintptr) (ret, si, di uintptr)
// Calls fn under the MS x64 convention with five arguments, RSI and RDI
// loaded with markers, and returns what fn left in AX, RSI and RDI.
TEXT ·callMS5(SB), NOSPLIT, $48-40
	MOVQ	a+8(FP), R11
	MOVQ	0(R11), CX
	MOVQ	8(R11), DX
	MOVQ	16(R11), R8
	MOVQ	24(R11), R9
	MOVQ	32(R11), R10
	MOVQ	R10, 32(SP)
	MOVQ	$0x5151515151515151, SI
	MOVQ	$0xd1d1d1d1d1d1d1d1, DI
	MOVQ	fn+0(FP), AX
	CALL	AX
	MOVQ	AX, ret+16(FP)
	MOVQ	SI, si+24(FP)
	MOVQ	DI, di+32(FP)
	RET
