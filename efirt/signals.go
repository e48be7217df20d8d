package efirt

// CPU exceptions in the program become Linux signals, so the runtime's own
// handlers turn a nil dereference into a panic as they do on Linux: the
// kernel builds a signal frame on the thread's alternate stack, enters the
// handler the runtime registered, and rt_sigreturn comes back. Page 0 is
// made not-present so nil dereferences fault at all; firmware maps it.

const (
	sigILL  = 4
	sigTRAP = 5
	sigFPE  = 8
	sigSEGV = 11
	nsig    = 65

	ssDisable = 2
	saOnstack = 0x08000000
)

// sigact is a registered struct sigaction (kernel layout).
type sigact struct{ handler, flags, restorer, mask uintptr }

var sigacts [nsig]sigact

func sigaction(sig, act, old uintptr) uintptr {
	if sig == 0 || sig >= nsig {
		return errno(einval)
	}
	if old != 0 {
		a := sigacts[sig]
		poke(old, a.handler)
		poke(old+8, a.flags)
		poke(old+16, a.restorer)
		poke(old+24, a.mask)
	}
	if act != 0 {
		sigacts[sig] = sigact{peek(act), peek(act + 8), peek(act + 16), peek(act + 24)}
	}
	return 0
}

// sigaltstack keeps each thread's alternate signal stack (stack_t: sp,
// flags, size).
func sigaltstack(ss, old uintptr) uintptr {
	t := current()
	if old != 0 {
		poke(old, t.altSP)
		poke32(old+8, uint32(t.altFlags))
		poke32(old+12, 0)
		poke(old+16, t.altSize)
	}
	if ss != 0 {
		t.altSP, t.altFlags, t.altSize = peek(ss), uintptr(peek32(ss+8)), peek(ss+16)
	}
	return 0
}

// signalFrame places a Linux signal frame for a handler with flags on
// thread t, interrupted with stack pointer sp: the ucontext, with the
// siginfo above it, 16-byte aligned, on the alternate stack when the
// handler asks for it and t is not already on it, else 128 bytes below sp
// (amd64's red zone; the other arches' Go prologues store below SP before
// moving it). It fills siginfo and uc_stack; the caller fills the machine
// context, which differs per arch.
func signalFrame(t *thread, flags, sp, sig, code, addr uintptr) (uc, info uintptr) {
	top := sp - 128
	if flags&saOnstack != 0 && t.altFlags&ssDisable == 0 && t.altSize != 0 &&
		!(sp > t.altSP && sp <= t.altSP+t.altSize) {
		top = t.altSP + t.altSize
	}
	uc = (top - siSize - ucSize) &^ 15
	info = uc + ucSize
	clear(bytesAt(uc, ucSize+siSize))

	poke32(info, uint32(sig))
	poke32(info+8, uint32(code))
	poke(info+16, addr)

	poke(uc+ucStack, t.altSP)
	poke32(uc+ucStack+8, uint32(t.altFlags))
	poke(uc+ucStack+16, t.altSize)
	return uc, info
}

// exitNoHandler reports a CPU exception the program installed no handler
// for — its cause register, the faulting PC and address as each arch names
// them — and exits as Linux would, with 128 + the signal.
func exitNoHandler(causeName string, cause, pc uintptr, addrName string, addr, sig uintptr) {
	kprint("efirt: CPU exception, ")
	kprint(causeName)
	kprint(" ")
	kprintHex(uint64(cause))
	kprint(" at ")
	kprintHex(uint64(pc))
	kprint(" ")
	kprint(addrName)
	kprint(" ")
	kprintHex(uint64(addr))
	kprint(" with no handler\n")
	exitGroup(128 + int(sig))
}
