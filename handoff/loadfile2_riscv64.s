#include "textflag.h"

// EFI status codes the routine returns.
#define EFI_INVALID_PARAMETER $0x8000000000000002
#define EFI_UNSUPPORTED $0x8000000000000003
#define EFI_BUFFER_TOO_SMALL $0x8000000000000005

// func loadFile2()
// LP64D: A0 = This, A1 = FilePath, A2 = BootPolicy (a BOOLEAN: only the
// low byte counts), A3 = *BufferSize, A4 = Buffer; status in A0. Only the
// caller-saved A and T registers are used; the assembler's temporary (T6)
// is one of them.
TEXT ·loadFile2(SB), NOSPLIT|NOFRAME, $0-0
	AND	$0xff, A2, T0
	BNE	T0, ZERO, unsupported
	BEQ	A3, ZERO, invalid
	MOV	16(A0), T0	// size
	BEQ	A4, ZERO, toosmall
	MOV	(A3), T1
	BLTU	T1, T0, toosmall
	MOV	T0, (A3)
	MOV	8(A0), T1	// data
	MOV	A4, T2
	MOV	$8, T4
copy8:
	BLTU	T0, T4, tail
	MOV	(T1), T3
	MOV	T3, (T2)
	ADD	$8, T1
	ADD	$8, T2
	ADD	$-8, T0
	JMP	copy8
tail:
	BEQ	T0, ZERO, done
	MOVBU	(T1), T3
	MOVB	T3, (T2)
	ADD	$1, T1
	ADD	$1, T2
	ADD	$-1, T0
	JMP	tail
done:
	MOV	ZERO, A0
	RET
toosmall:
	MOV	T0, (A3)
	MOV	EFI_BUFFER_TOO_SMALL, A0
	RET
unsupported:
	MOV	EFI_UNSUPPORTED, A0
	RET
invalid:
	MOV	EFI_INVALID_PARAMETER, A0
	RET

// func loadFile2Addr() uintptr
TEXT ·loadFile2Addr(SB), NOSPLIT, $0-8
	MOV	$·loadFile2(SB), T0
	MOV	T0, ret+0(FP)
	RET

// func callMS5(fn uintptr, a *[5]uintptr) (ret, si, di uintptr)
// The LP64D counterpart of amd64's MS x64 trampoline: calls fn with five
// arguments in A0-A4, markers in the callee-saved S2 and S3, and returns
// what fn left in A0, S2 and S3.
TEXT ·callMS5(SB), NOSPLIT, $16-40
	MOV	a+8(FP), T0
	MOV	0(T0), A0
	MOV	8(T0), A1
	MOV	16(T0), A2
	MOV	24(T0), A3
	MOV	32(T0), A4
	MOV	$0x5151515151515151, S2
	MOV	$0xd1d1d1d1d1d1d1d1, S3
	MOV	fn+0(FP), T0
	JALR	RA, T0
	MOV	A0, ret+16(FP)
	MOV	S2, si+24(FP)
	MOV	S3, di+32(FP)
	RET
