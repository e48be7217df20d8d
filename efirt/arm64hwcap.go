package efirt

// AT_HWCAP for arm64 lives in a file every architecture compiles, so the
// host can test the derivation.

// Linux's AT_HWCAP and AT_HWCAP2 bits (arch/arm64/include/uapi/asm/hwcap.h).
const (
	hwcapFP      = 1 << 0
	hwcapASIMD   = 1 << 1
	hwcapAES     = 1 << 3
	hwcapPMULL   = 1 << 4
	hwcapSHA1    = 1 << 5
	hwcapSHA2    = 1 << 6
	hwcapCRC32   = 1 << 7
	hwcapATOMICS = 1 << 8
	hwcapSHA3    = 1 << 17
	hwcapSHA512  = 1 << 21
	hwcapDIT     = 1 << 24
	hwcap2RNG    = 1 << 16
)

// hwcapsFromID derives the AT_HWCAP and AT_HWCAP2 words Linux would report
// from the ID registers, as arch/arm64/kernel/cpufeature.c does for the
// features Go looks at.
func hwcapsFromID(isar0, pfr0 uint64) (hw, hw2 uintptr) {
	field := func(r uint64, shift uint) uint64 { return r >> shift & 0xf }
	if fp := field(pfr0, 16); fp != 0xf {
		hw |= hwcapFP
	}
	if simd := field(pfr0, 20); simd != 0xf {
		hw |= hwcapASIMD
	}
	if field(pfr0, 48) >= 1 {
		hw |= hwcapDIT
	}
	switch aes := field(isar0, 4); {
	case aes >= 2:
		hw |= hwcapAES | hwcapPMULL
	case aes == 1:
		hw |= hwcapAES
	}
	if field(isar0, 8) >= 1 {
		hw |= hwcapSHA1
	}
	switch sha2 := field(isar0, 12); {
	case sha2 >= 2:
		hw |= hwcapSHA2 | hwcapSHA512
	case sha2 == 1:
		hw |= hwcapSHA2
	}
	if field(isar0, 16) >= 1 {
		hw |= hwcapCRC32
	}
	if field(isar0, 20) >= 2 {
		hw |= hwcapATOMICS
	}
	if field(isar0, 32) >= 1 {
		hw |= hwcapSHA3
	}
	if field(isar0, 60) >= 1 {
		hw2 |= hwcap2RNG
	}
	return hw, hw2
}
