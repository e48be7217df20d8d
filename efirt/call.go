package efirt

import (
	"syscall"
	"time"
	"unsafe"
)

// MaxArgs is the most arguments Call passes to a firmware function.
const MaxArgs = maxArgs

// Call calls the firmware function at fn with args under the firmware's
// calling convention and returns its EFI_STATUS (or other return value).
// The call runs on the firmware stack with interrupts enabled only for its
// duration; it is safe from any goroutine. Pointers in args must point to
// memory that stays put: firmware-allocated pages, globals, or Go memory the
// caller keeps alive across the call.
//
// Pointers converted to uintptr in the call itself are moved to the heap
// (go:uintptrescapes), since the goroutine's stack may move before the
// firmware runs.
//
//go:uintptrescapes
func Call(fn uintptr, args ...uintptr) uintptr { return call(sysFirmwareCall, fn, args) }

// CallForeign is Call for firmware functions that run other programs
// (StartImage): for the duration of the call the firmware's exception
// handlers and its mapping of page 0 are back in place, as the started
// image expects, and efirt's are restored if it returns.
//
//go:uintptrescapes
func CallForeign(fn uintptr, args ...uintptr) uintptr { return call(sysForeignCall, fn, args) }

func call(sys, fn uintptr, args []uintptr) uintptr {
	if len(args) > maxArgs {
		panic("efirt: too many firmware call arguments")
	}
	var a [maxArgs]uintptr
	copy(a[:], args)
	r, _, e := syscall.Syscall(sys, fn, uintptr(unsafe.Pointer(&a)), uintptr(len(args)))
	if e != 0 {
		panic("efirt: firmware call failed (" + e.Error() + "): not running under UEFI")
	}
	return r
}

// SystemTable returns the address of the EFI_SYSTEM_TABLE the firmware
// passed at entry.
func SystemTable() uintptr { return systemTable }

// ImageHandle returns the image handle the firmware passed at entry.
func ImageHandle() uintptr { return imageHandle }

// Stats are figures about the personality itself, for reports.
type Stats struct {
	ThreadsCreated int           // clone calls served
	ENOSYS         int           // distinct system calls answered with ENOSYS
	CounterHz      uint64        // calibrated CPU counter frequency
	PagesHeld      uint64        // 4 KiB pages currently allocated for the runtime
	PagesPeak      uint64        // most pages held at once
	Entropy        string        // where randomness comes from: "RDRAND", "RNDR" or "EFI_RNG_PROTOCOL"
	Idle           time.Duration // time the CPU waited in the firmware with every thread blocked
}

// ReadStats returns the current figures.
func ReadStats() Stats {
	entropy := hwRandomName
	if rngProtocol != 0 {
		entropy = "EFI_RNG_PROTOCOL"
	}
	return Stats{threadsCreated, enosysCount, counterHz, uint64(memPages), uint64(memPeak), entropy, time.Duration(idleNS)}
}
