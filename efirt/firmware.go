package efirt

import "unsafe"

// The few UEFI table offsets the kernel itself needs (UEFI 2.10, 64-bit).
// Package uefi describes the tables in full for ordinary goroutines.
const (
	stConOut          = 64
	stRuntimeServices = 88
	stBootServices    = 96

	bsAllocatePages    = 40
	bsFreePages        = 48
	bsHandleProtocol   = 152
	bsExit             = 216
	bsStall            = 248
	bsSetWatchdogTimer = 256
	bsLocateProtocol   = 320

	rtGetTime = 24

	textOutputString = 8

	allocAnyPages   = 0
	allocMaxAddress = 1
	allocAddress    = 2
	efiLoaderData   = 2

	efiSuccess = 0
	efiError   = 1 << 63
	efiAborted = efiError | 21

	maxArgs = 16
)

// GUIDs in their in-memory layout (first three fields little-endian). They
// must be composite literals: kmain runs before any package initialiser.
var (
	loadedImageGUID      = [16]byte{0xa1, 0x31, 0x1b, 0x5b, 0x62, 0x95, 0xd2, 0x11, 0x8e, 0x3f, 0x00, 0xa0, 0xc9, 0x69, 0x72, 0x3b}
	simpleFileSystemGUID = [16]byte{0x22, 0x5b, 0x4e, 0x96, 0x59, 0x64, 0xd2, 0x11, 0x8e, 0x39, 0x00, 0xa0, 0xc9, 0x69, 0x72, 0x3b}
	rngProtocolGUID      = [16]byte{0xa5, 0xbc, 0x52, 0x31, 0xde, 0xea, 0x3d, 0x43, 0x86, 0x2e, 0xc0, 0x1c, 0xdc, 0x29, 0x1f, 0x44}
)

func bootService(off uintptr) uintptr { return peek(peek(systemTable+stBootServices) + off) }

// efi calls a firmware function from kernel code.
func efi(fn uintptr, args ...uintptr) uintptr {
	var a [maxArgs]uintptr
	n := copy(a[:], args)
	return fwcall(fn, &a, uintptr(n))
}

// firmwareCall serves Call from a goroutine: args points at a
// [maxArgs]uintptr in the caller's memory.
func firmwareCall(fn, args, n uintptr) uintptr {
	if n > maxArgs {
		return errno(einval)
	}
	return fwcall(fn, (*[maxArgs]uintptr)(ptr(args)), n)
}

// foreignCall is firmwareCall with the firmware's own CPU state around the
// call: its exception handlers and page 0 mapping, which a started image
// (a kernel, another loader) expects to find as the firmware left them.
func foreignCall(fn, args, n uintptr) uintptr {
	if n > maxArgs {
		return errno(einval)
	}
	uninstallExceptions()
	r := fwcall(fn, (*[maxArgs]uintptr)(ptr(args)), n)
	afterForeignCall()
	installExceptions()
	return r
}

func fwAllocatePages(kind, addr, pages uintptr) (uintptr, bool) {
	a := addr
	st := efi(bootService(bsAllocatePages), kind, efiLoaderData, pages, uintptr(unsafe.Pointer(&a)))
	return a, st == efiSuccess
}

func fwFreePages(addr, pages uintptr) {
	if st := efi(bootService(bsFreePages), addr, pages); st != efiSuccess {
		kprint("efirt: FreePages failed: ")
		kprintHex(uint64(st))
		kprint("\n")
	}
}

func stall(us uintptr) { efi(bootService(bsStall), us) }

// handleProtocol returns the interface of protocol g on handle h, or 0.
func handleProtocol(h uintptr, g *[16]byte) uintptr {
	var iface uintptr
	if efi(bootService(bsHandleProtocol), h, uintptr(unsafe.Pointer(g)), uintptr(unsafe.Pointer(&iface))) != efiSuccess {
		return 0
	}
	return iface
}

func locateProtocol(g *[16]byte) uintptr {
	var iface uintptr
	if efi(bootService(bsLocateProtocol), uintptr(unsafe.Pointer(g)), 0, uintptr(unsafe.Pointer(&iface))) != efiSuccess {
		return 0
	}
	return iface
}

// firmwareStack is where every firmware call runs: the firmware's own code,
// its interrupt handlers and its callbacks never see a Go stack.
var (
	firmwareStack    [firmwareStackBytes]byte
	firmwareStackTop uintptr
)
