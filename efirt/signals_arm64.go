package efirt

// AArch64 exceptions: efirt's vector table in VBAR_EL1 while Go code runs,
// the Linux signal frame it builds, and page 0 taken out of the firmware's
// stage-1 translation tables (QEMU's virt machine has flash at address 0,
// so without that a nil dereference would read firmware).

// spsrMode is the SPSR mode and mask bits an exception return goes back
// with: the EL and stack pointer efirt_entry found, DAIF masked.
var spsrMode uintptr

// The firmware's vectors and efirt's (0 while efirt's are not installed);
// fwcall switches between them around every firmware call.
var fwVBAR, efirtVBAR uintptr

// excSync marks a frame saved by the synchronous-exception entry.
const excSync = 1

func excAddrs() (vectors, tramp uintptr)
func readVBAR() uintptr
func writeVBAR(v uintptr)
func readMMU() (tcr, ttbr0 uintptr)
func flushTLB()

// Offsets in the arm64 signal frame: ucontext with its sigcontext, and
// siginfo. The sigcontext's __reserved area (FP/SIMD records) is left
// empty: a zero header ends the record list, and Go reads none of it.
const (
	ucStack    = 16
	ucMcontext = 176
	mcFault    = 0
	mcRegs     = 8
	mcSP       = 256
	mcPC       = 264
	mcPstate   = 272
	ucSize     = ucMcontext + 288 + 512
	siSize     = 128
)

// Exception classes (ESR_EL1.EC).
const (
	ecUnknown   = 0x00
	ecInstAbort = 0x21
	ecPCAlign   = 0x22
	ecDataAbort = 0x25
	ecSPAlign   = 0x26
	ecBRK       = 0x3c
	sigBUS      = 7
)

// exception delivers a synchronous exception in the program as a signal.
func exception(f *frame) {
	sig, code, addr := uintptr(sigSEGV), uintptr(0x80), uintptr(0) // SI_KERNEL
	switch ec := f.esr >> 26 & 0x3f; ec {
	case ecDataAbort, ecInstAbort:
		addr = f.far
		code = 1 // SEGV_MAPERR
		if fsc := f.esr & 0x3f; fsc&0x3c == 0x0c || fsc&0x3c == 0x08 {
			code = 2 // SEGV_ACCERR: permission or access flag
		}
	case ecUnknown:
		sig, code, addr = sigILL, 1, f.pc // ILL_ILLOPC
	case ecBRK:
		sig, code, addr = sigTRAP, 1, f.pc // TRAP_BRKPT
	case ecPCAlign, ecSPAlign:
		sig, code, addr = sigBUS, 1, f.far // BUS_ADRALN
	}
	t := current()
	act := sigacts[sig]
	if act.handler <= 1 {
		exitNoHandler("syndrome", uintptr(f.esr), f.pc, "address", f.far, sig)
	}
	uc, info := signalFrame(t, act.flags, f.sp, sig, code, addr)
	mc := uc + ucMcontext
	poke(mc+mcFault, f.far)
	for i, v := range f.r {
		poke(mc+mcRegs+uintptr(i)*8, v)
	}
	poke(mc+mcSP, f.sp)
	poke(mc+mcPC, f.pc)
	poke(mc+mcPstate, f.pstate)
	if t.sigDepth == len(t.sigFrames) {
		fatal("CPU exceptions nested too deep in signal handlers")
	}
	t.sigFrames[t.sigDepth] = uc
	t.sigDepth++

	_, tramp := excAddrs()
	f.pc, f.sp = act.handler, uc
	f.r[0], f.r[1], f.r[2] = sig, info, uc
	f.r[30] = tramp
	if act.restorer != 0 {
		f.r[30] = act.restorer
	}
	f.r[29] = 0
}

// sigreturn restores the register state saved by exception, as the
// handler may have changed it (the runtime redirects a fault to sigpanic).
func sigreturn(f *frame) {
	t := current()
	if t.sigDepth == 0 {
		fatal("rt_sigreturn without a signal")
	}
	t.sigDepth--
	mc := t.sigFrames[t.sigDepth] + ucMcontext
	for i := range f.r {
		f.r[i] = peek(mc + mcRegs + uintptr(i)*8)
	}
	f.sp = peek(mc + mcSP)
	f.pc = peek(mc + mcPC)
	// Only the condition flags come from the context; trapReturnFull
	// supplies the mode and masks.
	f.pstate = peek(mc+mcPstate) & 0xf0000000
	f.vec = excSync // leave through trapReturnFull
}

// page0Undo remembers how the translation of page 0 was changed, to undo
// it.
type page0Undo struct {
	entries [3]uintptr // descriptors rewritten, in walk order
	values  [3]uintptr // their old contents
	tables  [3]uintptr // tables efirt allocated
	n       int
}

var page0 page0Undo

// installExceptions puts efirt's vectors in VBAR_EL1 and takes page 0 out
// of the address space. It needs EL1 with SP_EL1, where UEFI runs on
// AArch64; elsewhere exceptions stay with the firmware.
func installExceptions() {
	if spsrMode&0xf != 0b0101 {
		kprint("efirt: not at EL1h; CPU exceptions stay with the firmware\n")
		return
	}
	vectors, _ := excAddrs()
	if vectors&0x7ff != 0 {
		fatal("the exception vectors are not 2 KiB aligned")
	}
	fwVBAR = readVBAR()
	unmapPage0()
	writeVBAR(vectors)
	efirtVBAR = vectors
}

// uninstallExceptions gives the firmware back its vectors and page 0.
func uninstallExceptions() {
	if efirtVBAR == 0 {
		return
	}
	writeVBAR(fwVBAR)
	efirtVBAR = 0
	// Undo from the leaf up, each step break-before-make.
	for i := page0.n - 1; i >= 0; i-- {
		poke(page0.entries[i], 0)
		flushTLB()
		poke(page0.entries[i], page0.values[i])
		flushTLB()
	}
	for i := 0; i < page0.n; i++ {
		if page0.tables[i] != 0 {
			fwFreePages(page0.tables[i], 1)
		}
	}
	page0 = page0Undo{}
}

// Stage-1 descriptor fields with the 4 KiB granule.
const (
	descValid    = 1
	descTable    = 3 // table at levels 0-2, page at level 3
	descBlock    = 1
	descAddr     = 0x0000fffffffff000
	descAttrs    = 0xfff0000000000ffc // upper and lower attributes
	descContig   = 1 << 52
	descNT       = 1 << 16
	ttbrBaddr    = 0x0000fffffffffffe
	tcrTG0Mask   = 3 << 14
	tcrTG0Size4K = 0
)

// unmapPage0 walks TTBR0_EL1's tables for address 0, splitting blocks
// down to a 4 KiB page table, and invalidates the first page.
func unmapPage0() {
	tcr, ttbr0 := readMMU()
	if tcr&tcrTG0Mask != tcrTG0Size4K {
		kprint("efirt: translation granule is not 4 KiB; nil dereferences are not caught\n")
		return
	}
	vaBits := 64 - tcr&0x3f
	level := uintptr(0)
	for level < 3 && vaBits <= 39-9*level {
		level++
	}
	table := ttbr0 & ttbrBaddr
	for ; level <= 3; level++ {
		e := peek(table)
		if level == 3 {
			if e&descValid != 0 {
				page0.entries[page0.n], page0.values[page0.n] = table, e
				page0.n++
				poke(table, 0)
				flushTLB()
			}
			return
		}
		switch e & 3 {
		case descTable:
			table = e & descAddr
			continue
		case descBlock:
		default:
			return // nothing mapped at 0
		}
		// A block: replace it with a table of the next level's blocks
		// (or pages) carrying the same attributes.
		nt, ok := fwAllocatePages(allocMaxAddress, memLimit-1, 1)
		if !ok {
			kprint("efirt: no page for a translation table; nil dereferences are not caught\n")
			return
		}
		childShift := 12 + 9*(2-level) // bits one child maps
		kind := uintptr(descBlock)
		if level+1 == 3 {
			kind = descTable
		}
		outMask := uintptr(descAddr) &^ (1<<(childShift+9) - 1)
		attrs := e & descAttrs &^ (descContig | descNT)
		for i := uintptr(0); i < 512; i++ {
			poke(nt+i*8, (e&outMask)+i<<childShift|attrs|kind)
		}
		page0.entries[page0.n], page0.values[page0.n], page0.tables[page0.n] = table, e, nt
		page0.n++
		// Break before make: the old block must be gone from the TLB
		// before the table takes its place.
		poke(table, 0)
		flushTLB()
		poke(table, nt|descTable)
		flushTLB()
		table = nt
	}
}
