package efirt

import (
	"math/bits"
	"unsafe"
)

// The monotonic clock is the CPU counter, calibrated once against the
// firmware's Stall; the wall clock is the RTC read once at start plus the
// monotonic time since.

var (
	counter0     uint64
	nsPerTick32  uint64 // nanoseconds per counter tick, 32.32 fixed point
	counterHz    uint64
	wallAtStart  int64 // Unix ns at monotonic 0
	rtcAvailable bool
)

const calibrationUS = 50000

func calibrateClock() {
	if hz := counterFrequency(); hz != 0 {
		// The CPU states its counter's frequency; no need to measure.
		setCounterHz(hz, counter())
		return
	}
	a := counter()
	stall(calibrationUS)
	b := counter()
	ticks := b - a
	if ticks == 0 {
		fatal("the CPU counter does not advance")
	}
	setCounterHz(ticks*(1e6/calibrationUS), a)
}

func setCounterHz(hz, start uint64) {
	counterHz = hz
	hi, lo := bits.Mul64(1e9, 1<<32)
	nsPerTick32, _ = bits.Div64(hi, lo, counterHz)
	counter0 = start
}

func nanotime() uint64 {
	hi, lo := bits.Mul64(counter()-counter0, nsPerTick32)
	return hi<<32 | lo>>32
}

// readRTC sets the wall clock from the firmware's GetTime.
func readRTC() {
	var t [16]byte
	rt := peek(systemTable + stRuntimeServices)
	if efi(peek(rt+rtGetTime), uintptr(unsafe.Pointer(&t[0])), 0) != efiSuccess {
		kprint("efirt: GetTime failed; the wall clock starts at 1970\n")
		return
	}
	sec, nsec := EFITimeToUnix(&t)
	wallAtStart = sec*1e9 + nsec - int64(nanotime())
	rtcAvailable = true
}

// EFITimeToUnix converts an EFI_TIME to Unix seconds and nanoseconds. A
// time with a time zone (minutes from UTC) is converted to UTC; an
// unspecified zone (2047) is taken as UTC, as QEMU and most hypervisors
// keep the RTC.
func EFITimeToUnix(t *[16]byte) (sec, nsec int64) {
	year := int64(t[0]) | int64(t[1])<<8
	month, day := int64(t[2]), int64(t[3])
	hour, min, s := int64(t[4]), int64(t[5]), int64(t[6])
	nsec = int64(uint32(t[8]) | uint32(t[9])<<8 | uint32(t[10])<<16 | uint32(t[11])<<24)
	tz := int64(int16(uint16(t[12]) | uint16(t[13])<<8))
	// Days from the civil date (proleptic Gregorian), March-based years.
	y := year
	if month <= 2 {
		y--
	}
	era := y / 400
	yoe := y - era*400
	mp := (month + 9) % 12
	doy := (153*mp+2)/5 + day - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	days := era*146097 + doe - 719468
	sec = days*86400 + hour*3600 + min*60 + s
	if tz != 2047 {
		sec -= tz * 60
	}
	return sec, nsec
}

func clockGettime(clock, ts uintptr) uintptr {
	const realtime, monotonic, processCPU, threadCPU, monotonicRaw, realtimeCoarse, monotonicCoarse, boottime = 0, 1, 2, 3, 4, 5, 6, 7
	ns := int64(nanotime())
	switch clock {
	case realtime, realtimeCoarse:
		ns += wallAtStart
	case monotonic, monotonicRaw, monotonicCoarse, boottime, processCPU, threadCPU:
	default:
		return errno(einval)
	}
	poke(ts, uintptr(ns/1e9))
	poke(ts+8, uintptr(ns%1e9))
	return 0
}

// Entropy comes from the CPU's random-number instruction (RDRAND, RNDR)
// where it has one, else EFI_RNG_PROTOCOL.
var rngProtocol uintptr

func initRandom() {
	if _, ok := hwRandom(); ok {
		return
	}
	rngProtocol = locateProtocol(&rngProtocolGUID)
	if rngProtocol == 0 {
		fatal("no entropy source: the CPU has no " + hwRandomName + " and the firmware no EFI_RNG_PROTOCOL")
	}
}

func getrandom(buf, n uintptr) uintptr {
	fillRandom(bytesAt(buf, n))
	return n
}

func fillRandom(p []byte) {
	if rngProtocol != 0 {
		const getRNG = 8
		if st := efi(peek(rngProtocol+getRNG), rngProtocol, 0, uintptr(len(p)), uintptr(unsafe.Pointer(unsafe.SliceData(p)))); st != efiSuccess {
			fatal("EFI_RNG_PROTOCOL.GetRNG failed")
		}
		return
	}
	for len(p) > 0 {
		v, ok := hwRandom()
		if !ok {
			fatal(hwRandomName + " failed repeatedly")
		}
		for i := 0; i < 8 && len(p) > 0; i++ {
			p[0] = byte(v >> (8 * i))
			p = p[1:]
		}
	}
}
