package efirt

// RISC-V exceptions: efirt's trap vector in stvec while Go code runs, the
// Linux signal frame it builds, and page 0 taken out of the firmware's
// Sv39/Sv48/Sv57 page tables, so a nil dereference faults.

// The firmware's stvec and sscratch, and efirt's stvec (0 while efirt's
// vector is not installed); fwcall switches stvec around every firmware
// call, and the exception entry borrows sscratch for a moment.
var fwStvec, fwSscratch, efirtStvec uintptr

// excSync marks a frame saved by the exception entry.
const excSync = 1

func excAddrs() (entry, tramp uintptr)
func readTrapCSRs() (stvec, sscratch, satp uintptr)
func writeStvec(v uintptr)
func flushTLB()

// Offsets in the riscv64 signal frame: ucontext with its sigcontext (pc,
// then X1-X31, then the FP state, left zero), and siginfo.
const (
	ucStack    = 16
	ucMcontext = 176
	mcPC       = 0
	ucSize     = ucMcontext + 256 + 528
	siSize     = 128
	sigBUS     = 7
)

// scause exception codes.
const (
	causeInstMisaligned  = 0
	causeInstAccess      = 1
	causeIllegal         = 2
	causeBreakpoint      = 3
	causeLoadMisaligned  = 4
	causeLoadAccess      = 5
	causeStoreMisaligned = 6
	causeStoreAccess     = 7
	causeInstPage        = 12
	causeLoadPage        = 13
	causeStorePage       = 15
)

// exception delivers a synchronous exception in the program as a signal.
func exception(f *frame) {
	sig, code, addr := uintptr(sigSEGV), uintptr(0x80), uintptr(0) // SI_KERNEL
	switch f.cause {
	case causeInstPage, causeLoadPage, causeStorePage:
		sig, code, addr = sigSEGV, 1, f.tval // SEGV_MAPERR
	case causeInstAccess, causeLoadAccess, causeStoreAccess:
		sig, code, addr = sigSEGV, 2, f.tval // SEGV_ACCERR
	case causeIllegal:
		sig, code, addr = sigILL, 1, f.pc // ILL_ILLOPC
	case causeBreakpoint:
		sig, code, addr = sigTRAP, 1, f.pc // TRAP_BRKPT
	case causeInstMisaligned, causeLoadMisaligned, causeStoreMisaligned:
		sig, code, addr = sigBUS, 1, f.tval // BUS_ADRALN
	}
	t := current()
	act := sigacts[sig]
	if act.handler <= 1 {
		exitNoHandler("scause", uintptr(f.cause), f.pc, "stval", f.tval, sig)
	}
	sp := f.x[2]
	uc, info := signalFrame(t, act.flags, sp, sig, code, addr)
	mc := uc + ucMcontext
	poke(mc+mcPC, f.pc)
	for i := 1; i < len(f.x); i++ {
		poke(mc+uintptr(i)*8, f.x[i])
	}
	if t.sigDepth == len(t.sigFrames) {
		fatal("CPU exceptions nested too deep in signal handlers")
	}
	t.sigFrames[t.sigDepth] = uc
	t.sigDepth++

	// Go's riscv64 sigaction has no restorer (the field it keeps for x86
	// sits after the mask, so sigacts' restorer is the mask here): the
	// handler returns to efirt's own rt_sigreturn.
	_, tramp := excAddrs()
	f.pc = act.handler
	f.x[2] = uc
	f.x[regA0], f.x[regA1], f.x[regA2] = sig, info, uc
	f.x[1] = tramp
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
	f.pc = peek(mc + mcPC)
	for i := 1; i < len(f.x); i++ {
		f.x[i] = peek(mc + uintptr(i)*8)
	}
	f.vec = excSync // leave through trapReturnFull
}

// ptUndo remembers how efirt changed the firmware's page tables, to undo
// it.
type ptUndo struct {
	entries [5]uintptr // PTEs rewritten, in walk order
	values  [5]uintptr // their old contents
	tables  [5]uintptr // tables efirt allocated
	n       int
}

// undo restores the entries from the leaf up and frees efirt's tables.
func (u *ptUndo) undo() {
	for i := u.n - 1; i >= 0; i-- {
		poke(u.entries[i], u.values[i])
		flushTLB()
	}
	for i := 0; i < u.n; i++ {
		if u.tables[i] != 0 {
			fwFreePages(u.tables[i], 1)
		}
	}
	*u = ptUndo{}
}

// page0 is how page 0 was taken out.
var page0 ptUndo

// installExceptions puts efirt's vector in stvec, takes page 0 out of the
// address space and moves the console to the UART.
func installExceptions() {
	entry, _ := excAddrs()
	if entry&3 != 0 {
		fatal("the trap vector is not 4-byte aligned")
	}
	var satp uintptr
	fwStvec, fwSscratch, satp = readTrapCSRs()
	unmapPage0(satp)
	writeStvec(entry)
	efirtStvec = entry
	openUART()
}

// uninstallExceptions gives the firmware back its vector, page 0 and the
// console.
func uninstallExceptions() {
	closeUART()
	if efirtStvec == 0 {
		return
	}
	writeStvec(fwStvec)
	efirtStvec = 0
	page0.undo()
}

// Page-table entry bits (Sv39/48/57).
const (
	pteV      = 1 << 0
	pteRWX    = 7 << 1
	pteR      = 1 << 1
	pteW      = 1 << 2
	pteA      = 1 << 6
	pteD      = 1 << 7
	ptePPN    = (1<<44 - 1) << 10
	pteAttrs  = 1<<10 - 1 // V, R, W, X, U, G, A, D and RSW
	satpModes = 60
	satpPPN   = 1<<44 - 1
)

// unmapPage0 walks satp's tables for address 0, splitting superpages down
// to a 4 KiB page table, and invalidates the first page.
func unmapPage0(satp uintptr) {
	table, levels := satpLevels(satp)
	if levels == 0 {
		kprint("efirt: paging is off; nil dereferences are not caught\n")
		return
	}
	for level := levels - 1; ; level-- {
		e := peek(table)
		if e&pteV == 0 {
			return // nothing mapped at 0
		}
		if e&pteRWX == 0 {
			if level == 0 {
				return // malformed: a pointer at the last level
			}
			table = (e & ptePPN) >> 10 << 12
			continue
		}
		if level == 0 {
			page0.entries[page0.n], page0.values[page0.n] = table, e
			page0.n++
			poke(table, 0)
			flushTLB()
			return
		}
		// A superpage: replace it with a table of the next level's
		// leaves carrying the same attributes.
		nt, ok := fwAllocatePages(allocMaxAddress, memLimit-1, 1)
		if !ok {
			kprint("efirt: no page for a page table; nil dereferences are not caught\n")
			return
		}
		childPages := uintptr(1) << (9 * (level - 1)) // 4 KiB pages one child maps
		for i := uintptr(0); i < 512; i++ {
			poke(nt+i*8, e&ptePPN+(i*childPages)<<10|e&pteAttrs)
		}
		page0.entries[page0.n], page0.values[page0.n], page0.tables[page0.n] = table, e, nt
		page0.n++
		poke(table, (nt>>12)<<10|pteV)
		flushTLB()
		table = nt
	}
}

// satpLevels returns the root table and the number of levels satp
// translates with, or 0 levels with paging off (or a mode efirt does not
// know).
func satpLevels(satp uintptr) (root, levels uintptr) {
	switch satp >> satpModes {
	case 8:
		levels = 3 // Sv39
	case 9:
		levels = 4 // Sv48
	case 10:
		levels = 5 // Sv57
	}
	return (satp & satpPPN) << 12, levels
}

// mapIdentity maps the 4 KiB page at pa to itself, read-write, where the
// firmware's tables map nothing, recording the change in u. It reports
// whether pa is mapped afterwards.
func mapIdentity(pa uintptr, u *ptUndo) bool {
	_, _, satp := readTrapCSRs()
	if satp>>satpModes == 0 {
		return true // paging off: physical addresses
	}
	table, levels := satpLevels(satp)
	if levels == 0 {
		return false
	}
	for level := levels - 1; ; level-- {
		pte := table + (pa>>(12+9*level)&511)*8
		e := peek(pte)
		if e&pteV != 0 && e&pteRWX != 0 {
			return true // a leaf maps it already
		}
		if level == 0 {
			u.entries[u.n], u.values[u.n] = pte, e
			u.n++
			poke(pte, (pa>>12)<<10|pteV|pteR|pteW|pteA|pteD)
			flushTLB()
			return true
		}
		if e&pteV != 0 {
			table = (e & ptePPN) >> 10 << 12
			continue
		}
		nt, ok := fwAllocatePages(allocMaxAddress, memLimit-1, 1)
		if !ok {
			return false
		}
		clear(bytesAt(nt, pageSize))
		u.entries[u.n], u.values[u.n], u.tables[u.n] = pte, e, nt
		u.n++
		poke(pte, (nt>>12)<<10|pteV)
		flushTLB()
		table = nt
	}
}
