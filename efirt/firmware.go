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

// GUIDs in their in-memory layout.
var (
	loadedImageGUID      = guid(0x5b1b31a1, 0x9562, 0x11d2, [8]byte{0x8e, 0x3f, 0x00, 0xa0, 0xc9, 0x69, 0x72, 0x3b})
	simpleFileSystemGUID = guid(0x964e5b22, 0x6459, 0x11d2, [8]byte{0x8e, 0x39, 0x00, 0xa0, 0xc9, 0x69, 0x72, 0x3b})
	rngProtocolGUID      = guid(0x3152bca5, 0xeade, 0x433d, [8]byte{0x86, 0x2e, 0xc0, 0x1c, 0xdc, 0x29, 0x1f, 0x44})
)

func guid(a uint32, b, c uint16, d [8]byte) [16]byte {
	return [16]byte{byte(a), byte(a >> 8), byte(a >> 16), byte(a >> 24), byte(b), byte(b >> 8), byte(c), byte(c >> 8),
		d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]}
}

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
