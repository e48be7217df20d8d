package efirt

import "unsafe"

// LoongArch exceptions: efirt's entry in EENTRY while Go code runs and the
// Linux signal frame it builds.

// The firmware's exception entry and efirt's (0 while efirt's is not
// installed); fwcall switches between them around every firmware call.
var fwEENTRY, efirtEENTRY uintptr

// excSync marks a frame saved by the exception entry.
const excSync = 1

func excAddrs() (vectors, tramp uintptr)
func readCSRs() (crmd, ecfg, eentry uintptr)
func writeEENTRY(v uintptr)

// Offsets in the loong64 signal frame: ucontext with its sigcontext, and
// siginfo. The sigcontext's extended context (FP and vector records) is
// left empty: a zero header ends the list, and Go reads none of it.
const (
	ucStack    = 16
	ucMcontext = 176
	mcPC       = 0
	mcRegs     = 8
	ucSize     = ucMcontext + 272 + 512
	siSize     = 128
)

// Exception codes (ESTAT.Ecode).
const (
	ecPIL = 0x1 // load from an invalid page
	ecPIS = 0x2 // store to an invalid page
	ecPIF = 0x3 // fetch from an invalid page
	ecPME = 0x4 // store to a clean page
	ecPPI = 0x7 // privilege
	ecADE = 0x8 // address error
	ecALE = 0x9 // misaligned access
	ecBRK = 0xc
	ecINE = 0xd // instruction does not exist
	ecIPE = 0xe // instruction privilege
	ecFPE = 0x12

	sigBUS = 7
)

// exception delivers an exception in the program as a signal.
func exception(f *frame) {
	sig, code, addr := uintptr(sigSEGV), uintptr(0x80), uintptr(0) // SI_KERNEL
	switch ec := f.estat >> 16 & 0x3f; {
	case ec >= ecPIL && ec <= ecPIF:
		code, addr = 1, f.badv // SEGV_MAPERR
	case ec >= ecPME && ec <= ecPPI:
		code, addr = 2, f.badv // SEGV_ACCERR
	case ec == ecADE:
		code, addr = 1, f.badv
	case ec == ecALE:
		sig, code, addr = sigBUS, 1, f.badv // BUS_ADRALN
	case ec == ecBRK:
		sig, code, addr = sigTRAP, 1, f.pc // TRAP_BRKPT
	case ec == ecINE || ec == ecIPE:
		sig, code, addr = sigILL, 1, f.pc // ILL_ILLOPC
	case ec == ecFPE:
		sig, addr = sigFPE, f.pc
	}
	t := current()
	act := sigacts[sig]
	if act.handler <= 1 {
		exitNoHandler("status", uintptr(f.estat), f.pc, "address", f.badv, sig)
	}
	sp := f.r[3]
	uc, info := signalFrame(t, act.flags, sp, sig, code, addr)
	mc := uc + ucMcontext
	poke(mc+mcPC, f.pc)
	for i := 1; i < len(f.r); i++ {
		poke(mc+mcRegs+uintptr(i)*8, f.r[i])
	}
	if t.sigDepth == len(t.sigFrames) {
		fatal("CPU exceptions nested too deep in signal handlers")
	}
	t.sigFrames[t.sigDepth] = uc
	t.sigDepth++

	_, tramp := excAddrs()
	f.pc, f.r[3] = act.handler, uc
	f.r[4], f.r[5], f.r[6] = sig, info, uc
	// Linux on loong64 has no sa_restorer (the word sigaction keeps
	// there is the mask): the handler always returns to efirt's.
	f.r[1] = tramp
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
	for i := 1; i < len(f.r); i++ {
		f.r[i] = peek(mc + mcRegs + uintptr(i)*8)
	}
	f.pc = peek(mc + mcPC)
	f.vec = excSync // leave through trapReturnFull
}

// installExceptions points EENTRY at efirt's entry. It needs every
// exception at EENTRY itself (ECFG.VS 0), as UEFI sets it up.
func installExceptions() {
	_, ecfg, eentry := readCSRs()
	if vs := ecfg >> 16 & 7; vs != 0 {
		kprint("efirt: exceptions are vectored (ECFG.VS != 0); CPU exceptions stay with the firmware\n")
		return
	}
	if excStub == 0 && !makeExcStub() {
		return
	}
	fwEENTRY = eentry
	unmapPage0()
	writeEENTRY(excStub)
	efirtEENTRY = excStub
}

// excStub is the page EENTRY points at while efirt's entry is installed.
var excStub uintptr

// The stub's instructions: csrwr R12, SAVE6; pcaddu12i R12, 0;
// ld.d R12, R12, 12 (pcaddu12i gave its own address); jirl R0, R12, 0;
// then, at offset 16, the address of excVectors.
var excStubCode = [4]uint32{0x0400d82c, 0x1c00000c, 0x28c0318c, 0x4c000180}

// makeExcStub writes the stub into a page of loader code (executable
// wherever the firmware enforces permissions). The page is never freed:
// CallForeign reinstalls the entry, and at exit the firmware's own entry
// is back in EENTRY, so one page stays allocated after the image ends.
func makeExcStub() bool {
	const efiLoaderCode = 1
	page := uintptr(0)
	if efi(bootService(bsAllocatePages), allocAnyPages, efiLoaderCode, 1, uintptr(unsafe.Pointer(&page))) != efiSuccess {
		kprint("efirt: no page for the exception entry; CPU exceptions stay with the firmware\n")
		return false
	}
	vectors, _ := excAddrs()
	for i, w := range excStubCode {
		poke32(page+uintptr(i)*4, w)
	}
	poke(page+16, vectors)
	ibar()
	excStub = page
	return true
}

func ibar()

// uninstallExceptions gives the firmware back its exception entry.
func uninstallExceptions() {
	if efirtEENTRY == 0 {
		return
	}
	writeEENTRY(fwEENTRY)
	efirtEENTRY = 0
	for i := page0.n - 1; i >= 0; i-- {
		poke(page0.entries[i], page0.values[i])
	}
	flushTLB()
	for i := 0; i < page0.n; i++ {
		if page0.tables[i] != 0 {
			fwFreePages(page0.tables[i], 1)
		}
	}
	page0 = page0Undo{}
}

// page0Undo remembers how the translation of page 0 was changed, to undo
// it.
type page0Undo struct {
	entries [4]uintptr // entries rewritten, in walk order
	values  [4]uintptr // their old contents
	tables  [4]uintptr // tables efirt allocated
	n       int
}

var page0 page0Undo

func readMMU() (crmd, pgdl, pwcl, pwch uintptr)
func flushTLB()

// Page-table entry bits (LoongArch, 64-bit entries).
const (
	pteValid  = 1 << 0
	pteHuge   = 1 << 6  // in a directory entry: it maps a huge page
	pteGlobal = 1 << 6  // in a page entry
	pteHGlob  = 1 << 12 // global bit of a huge entry
	pteAddr   = 0x0000fffffffff000
	crmdPG    = 1 << 4
)

// unmapPage0 takes page 0 out of the firmware's page tables (UEFI maps
// memory one to one, and page 0 is RAM on QEMU's virt machine, so without
// this a nil dereference would read it). It walks the tables PGDL and
// PWCL/PWCH describe from the top directory down, splitting huge pages to
// 4 KiB pages, and invalidates the first page. The TLB is refilled by the
// firmware's handler from these tables.
func unmapPage0() {
	crmd, pgdl, pwcl, pwch := readMMU()
	if crmd&crmdPG == 0 {
		kprint("efirt: paging is off; nil dereferences are not caught\n")
		return
	}
	// Index base and width of each level, the page table first.
	var base, width [5]uintptr
	base[0], width[0] = pwcl&0x1f, pwcl>>5&0x1f
	base[1], width[1] = pwcl>>10&0x1f, pwcl>>15&0x1f
	base[2], width[2] = pwcl>>20&0x1f, pwcl>>25&0x1f
	base[3], width[3] = pwch&0x3f, pwch>>6&0x3f
	base[4], width[4] = pwch>>12&0x3f, pwch>>18&0x3f
	if pwcl>>30&3 != 0 || base[0] != 12 || width[0] != 9 {
		kprint("efirt: page tables are not 4 KiB pages of 64-bit entries; nil dereferences are not caught\n")
		return
	}
	top := 4
	for top > 0 && width[top] == 0 {
		top--
	}
	table := pgdl & pteAddr
	for level := top; level >= 0; level-- {
		e := peek(table)
		if level == 0 {
			if e&pteValid != 0 {
				page0.entries[page0.n], page0.values[page0.n] = table, e
				page0.n++
				poke(table, 0)
				flushTLB()
			}
			return
		}
		if e&pteHuge == 0 {
			if e&pteAddr == 0 {
				return // nothing mapped at 0
			}
			table = e & pteAddr
			continue
		}
		// A huge page: replace it with a table of the next level's huge
		// pages (or 4 KiB pages) carrying the same attributes.
		nt, ok := fwAllocatePages(allocMaxAddress, memLimit-1, 1)
		if !ok {
			kprint("efirt: no page for a page table; nil dereferences are not caught\n")
			return
		}
		childShift := base[level-1]
		out := e & pteAddr &^ (1<<base[level] - 1)
		attrs := e &^ pteAddr
		for i := uintptr(0); i < 1<<width[level-1]; i++ {
			child := out + i<<childShift | attrs
			if level-1 == 0 {
				// A 4 KiB page: no huge bit, the global bit moves down.
				child &^= pteHuge | pteHGlob
				if e&pteHGlob != 0 {
					child |= pteGlobal
				}
			}
			poke(nt+i*8, child)
		}
		page0.entries[page0.n], page0.values[page0.n], page0.tables[page0.n] = table, e, nt
		page0.n++
		poke(table, nt)
		flushTLB()
		table = nt
	}
}
