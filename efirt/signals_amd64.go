package efirt

// x86-64 exceptions: the IDT gates efirt takes over, the signal frame it
// builds, and page 0 taken out of the firmware's page tables.

// Offsets in the x86-64 signal frame: ucontext, its mcontext (gregs), and
// siginfo.
const (
	ucStack    = 16
	ucMcontext = 40
	ucSigmask  = 40 + 256
	ucSize     = 1024 // with room to spare for the unused FP state
	siSize     = 128
)

// gregs indices of struct sigcontext.
const (
	gR8 = iota
	gR9
	gR10
	gR11
	gR12
	gR13
	gR14
	gR15
	gRDI
	gRSI
	gRBP
	gRBX
	gRDX
	gRAX
	gRCX
	gRSP
	gRIP
	gEFL
	gCSGSFS
	gERR
	gTRAPNO
	gOLDMASK
	gCR2
)

// exception delivers a CPU exception in the program as a signal.
func exception(f *frame) {
	sig, code, addr := uintptr(sigSEGV), uintptr(0x80), uintptr(0) // SI_KERNEL
	switch f.vec {
	case 0:
		sig, code = sigFPE, 1 // FPE_INTDIV
	case 3:
		sig, code = sigTRAP, 0x80
	case 6:
		sig, code = sigILL, 2 // ILL_ILLOPN
	case 14:
		code, addr = 1, f.cr2 // SEGV_MAPERR
		if f.err&1 != 0 {
			code = 2 // SEGV_ACCERR
		}
	}
	t := current()
	excCS, excSS = f.cs, f.ss // for the IRETQ after rt_sigreturn
	act := sigacts[sig]
	if act.handler <= 1 || act.restorer == 0 {
		kprint("efirt: CPU exception ")
		kprintNum(uint64(f.vec))
		kprint(" at ")
		kprintHex(uint64(f.rip))
		kprint(" address ")
		kprintHex(uint64(f.cr2))
		kprint(" with no handler\n")
		exitGroup(128 + int(sig))
	}
	uc, info := signalFrame(t, act.flags, f.rsp, sig, code, addr)
	sp := uc - 8 // where the handler's return address goes
	g := uc + ucMcontext
	for i, v := range [...]uintptr{
		gR8: f.r8, gR9: f.r9, gR10: f.r10, gR11: f.r11, gR12: f.r12, gR13: f.r13, gR14: f.r14, gR15: f.r15,
		gRDI: f.di, gRSI: f.si, gRBP: f.bp, gRBX: f.bx, gRDX: f.dx, gRAX: f.ax, gRCX: f.cx,
		gRSP: f.rsp, gRIP: f.rip, gEFL: f.rflags, gCSGSFS: f.cs, gERR: f.err, gTRAPNO: f.vec, gCR2: f.cr2,
	} {
		poke(g+uintptr(i)*8, v)
	}
	poke(sp, act.restorer)
	if t.sigDepth == len(t.sigFrames) {
		fatal("CPU exceptions nested too deep in signal handlers")
	}
	t.sigFrames[t.sigDepth] = uc
	t.sigDepth++

	f.rip, f.rsp = act.handler, sp
	f.di, f.si, f.dx, f.ax = sig, info, uc, 0
	f.rflags &^= 1<<8 | 1<<10 // TF, DF
}

// sigreturn restores the register state saved by exception, as the
// handler may have changed it (the runtime redirects a fault to sigpanic).
// The kernel remembers where it put the frame: the restorer's own stack use
// differs once its system call became a call.
func sigreturn(f *frame) {
	t := current()
	if t.sigDepth == 0 {
		fatal("rt_sigreturn without a signal")
	}
	t.sigDepth--
	g := t.sigFrames[t.sigDepth] + ucMcontext
	reg := func(i int) uintptr { return peek(g + uintptr(i)*8) }
	f.r8, f.r9, f.r10, f.r11 = reg(gR8), reg(gR9), reg(gR10), reg(gR11)
	f.r12, f.r13, f.r14, f.r15 = reg(gR12), reg(gR13), reg(gR14), reg(gR15)
	f.di, f.si, f.bp, f.bx = reg(gRDI), reg(gRSI), reg(gRBP), reg(gRBX)
	f.dx, f.ax, f.cx = reg(gRDX), reg(gRAX), reg(gRCX)
	f.rsp, f.rip = reg(gRSP), reg(gRIP)
	// Only the arithmetic flags come from the context; interrupts stay
	// masked.
	const userFlags = 0xcd5 // CF PF AF ZF SF DF OF
	f.rflags = f.rflags&^userFlags | reg(gEFL)&userFlags
	f.cs, f.ss = excCS, excSS
	f.vec = 0 // leave through trapReturnFull
}

// The firmware's handlers and selectors, kept to chain to and to restore.
var (
	oldHandlers [32]uintptr
	excAX       uintptr
	excBX       uintptr
	excTarget   uintptr
	excCS       uintptr
	excSS       uintptr
	idtBase     uintptr
	page0Saved  struct {
		entry, value uintptr
		tables       [2]uintptr
	}
)

var excVectors = [...]uintptr{0, 3, 6, 13, 14}

// gateOffset reads and writes the handler address of a 16-byte IDT gate.
func gateOffset(gate uintptr) uintptr {
	return uintptr(*(*uint16)(ptr(gate))) | uintptr(*(*uint16)(ptr(gate + 6)))<<16 | uintptr(peek32(gate+8))<<32
}

func setGateOffset(gate, h uintptr) {
	*(*uint16)(ptr(gate)) = uint16(h)
	*(*uint16)(ptr(gate + 6)) = uint16(h >> 16)
	poke32(gate+8, uint32(h>>32))
}

// installExceptions points the IDT gates of the program's exceptions at
// efirt and takes page 0 out of the address space.
func installExceptions() {
	base, limit := sidt()
	if uintptr(limit) < 15*16+15 {
		kprint("efirt: IDT too small; CPU exceptions stay with the firmware\n")
		return
	}
	idtBase = base
	de, bp, ud, gp, pf := excHandlers()
	setWriteProtect(false)
	for i, h := range [...]uintptr{de, bp, ud, gp, pf} {
		v := excVectors[i]
		oldHandlers[v] = gateOffset(base + v*16)
		setGateOffset(base+v*16, h)
	}
	unmapPage0()
	setWriteProtect(true)
}

// uninstallExceptions gives the firmware back its handlers and page 0.
func uninstallExceptions() {
	if idtBase == 0 {
		return
	}
	setWriteProtect(false)
	for _, v := range excVectors {
		setGateOffset(idtBase+v*16, oldHandlers[v])
	}
	if page0Saved.entry != 0 {
		poke(page0Saved.entry, page0Saved.value)
		writeCR3(readCR3())
	}
	setWriteProtect(true)
	for _, t := range page0Saved.tables {
		if t != 0 {
			fwFreePages(t, 1)
		}
	}
	page0Saved.entry, page0Saved.tables = 0, [2]uintptr{}
	idtBase = 0
}

const (
	ptePresent  = 1
	ptePS       = 1 << 7
	pteLargePAT = 1 << 12
	pteAddr     = 0x000ffffffffff000
)

// unmapPage0 splits the firmware's mapping of the first 2 MiB (or 1 GiB)
// so that the page at address 0 alone is not present.
func unmapPage0() {
	if readCR4()&(1<<12) != 0 {
		kprint("efirt: 5-level paging; nil dereferences are not caught\n")
		return
	}
	pml4 := readCR3() & pteAddr
	pml4e := peek(pml4)
	if pml4e&ptePresent == 0 {
		return // nothing mapped at 0 at all
	}
	pdpt := pml4e & pteAddr
	pdpte := peek(pdpt)
	if pdpte&ptePresent == 0 {
		return
	}
	if pdpte&ptePS != 0 {
		// A 1 GiB page: split it into 2 MiB pages first. PAT stays at
		// bit 12 in 2 MiB entries.
		pd, ok := fwAllocatePages(allocMaxAddress, 1<<32-1, 1)
		if !ok {
			kprint("efirt: no page for a page table; nil dereferences are not caught\n")
			return
		}
		flags := pdpte&^pteAddr | pdpte&pteLargePAT
		for i := uintptr(0); i < 512; i++ {
			poke(pd+i*8, (pdpte&pteAddr&^(1<<30-1))+i<<21|flags)
		}
		page0Saved.entry, page0Saved.value, page0Saved.tables[0] = pdpt, pdpte, pd
		poke(pdpt, pd|pdpte&(ptePresent|2|4))
		pdpte = peek(pdpt)
	}
	pd := pdpte & pteAddr
	pde := peek(pd)
	if pde&ptePresent == 0 {
		writeCR3(readCR3())
		return
	}
	if pde&ptePS == 0 {
		// Already 4 KiB pages: clear the first entry.
		pt := pde & pteAddr
		if page0Saved.entry == 0 {
			page0Saved.entry, page0Saved.value = pt, peek(pt)
		}
		poke(pt, 0)
		writeCR3(readCR3())
		return
	}
	pt, ok := fwAllocatePages(allocMaxAddress, 1<<32-1, 1)
	if !ok {
		kprint("efirt: no page for a page table; nil dereferences are not caught\n")
		writeCR3(readCR3())
		return
	}
	// The 4 KiB entries keep the large page's attributes; PAT moves from
	// bit 12 to bit 7.
	flags := pde &^ pteAddr &^ ptePS
	if pde&pteLargePAT != 0 {
		flags |= 1 << 7
	}
	for i := uintptr(0); i < 512; i++ {
		poke(pt+i*8, (pde&pteAddr&^(1<<21-1))+i*4096|flags)
	}
	poke(pt, 0)
	if page0Saved.entry == 0 {
		page0Saved.entry, page0Saved.value = pd, pde
	}
	page0Saved.tables[1] = pt
	poke(pd, pt|pde&(ptePresent|2|4)) // present, writable, user as before
	writeCR3(readCR3())
}
