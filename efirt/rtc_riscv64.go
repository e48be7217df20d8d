package efirt

import (
	"sync/atomic"
	"unsafe"
)

// RISC-V EDK2 for QEMU's virt machine has no RTC driver: its GetTime
// (VirtualRealTimeClockLib) starts from the firmware's build date, so
// certificates would be checked against a stale clock. The machine does
// have a goldfish RTC, which the device tree names; efirt reads it and sets
// the firmware's clock from it, so GetTime, efirt's wall clock and every
// later reader agree.

const (
	goldfishTimeLow  = 0x00 // reading it latches TIME_HIGH
	goldfishTimeHigh = 0x04
	rtSetTime        = 32
	// clockSlack is how far the firmware's clock may be off before efirt
	// corrects it.
	clockSlack = 60
)

func syncFirmwareClock() {
	addr := uintptr(rvCPU.rtc)
	if addr == 0 {
		return
	}
	// The firmware maps only the devices it drives: map the RTC's page
	// for the two reads.
	var u ptUndo
	if !mapIdentity(addr&^(pageSize-1), &u) {
		u.undo()
		kprint("efirt: cannot map the goldfish RTC; the wall clock is the firmware's\n")
		return
	}
	lo := atomic.LoadUint32((*uint32)(ptr(addr + goldfishTimeLow)))
	hi := atomic.LoadUint32((*uint32)(ptr(addr + goldfishTimeHigh)))
	u.undo()
	ns := int64(uint64(hi)<<32 | uint64(lo))
	if ns <= 0 {
		return
	}
	rt := peek(systemTable + stRuntimeServices)
	var fw [16]byte
	if efi(peek(rt+rtGetTime), uintptr(unsafe.Pointer(&fw[0])), 0) == efiSuccess {
		sec, _ := EFITimeToUnix(&fw)
		if d := sec - ns/1e9; d > -clockSlack && d < clockSlack {
			return
		}
	}
	var t [16]byte
	unixToEFITime(ns/1e9, ns%1e9, &t)
	if efi(peek(rt+rtSetTime), uintptr(unsafe.Pointer(&t[0]))) != efiSuccess {
		kprint("efirt: SetTime failed; the wall clock is the firmware's\n")
		return
	}
	kprint("efirt: the firmware clock was off; set it from the goldfish RTC\n")
}
