package efirt

// AT_HWCAP for loong64 and the stable counter's frequency live in a file
// every architecture compiles, so the host can test the derivations.

// Linux's AT_HWCAP bits (arch/loongarch/include/uapi/asm/hwcap.h).
const (
	hwcapLoongCPUCFG = 1 << 0
	hwcapLoongLAM    = 1 << 1
	hwcapLoongUAL    = 1 << 2
	hwcapLoongFPU    = 1 << 3
	hwcapLoongLSX    = 1 << 4
	hwcapLoongLASX   = 1 << 5
	hwcapLoongCRC32  = 1 << 6
	hwcapLoongCRYPTO = 1 << 8
)

// CPUCFG word 1 and 2 bits, and the EUEN enables.
const (
	cfg1UAL    = 1 << 20
	cfg1CRC32  = 1 << 25
	cfg2FP     = 1 << 0
	cfg2LSX    = 1 << 6
	cfg2LASX   = 1 << 7
	cfg2CRYPTO = 1 << 9
	cfg2LAM    = 1 << 22
	euenFPE    = 1 << 0
	euenSXE    = 1 << 1
	euenASXE   = 1 << 2
)

// loong64Hwcap derives AT_HWCAP as Linux would from CPUCFG words 1 and 2.
// A vector unit counts only when efirt enabled it in EUEN: Go uses LSX and
// LASX when HWCAP says so, and they fault while disabled.
func loong64Hwcap(cfg1, cfg2 uint32, euen uintptr) uintptr {
	hw := uintptr(hwcapLoongCPUCFG)
	if cfg1&cfg1UAL != 0 {
		hw |= hwcapLoongUAL
	}
	if cfg1&cfg1CRC32 != 0 {
		hw |= hwcapLoongCRC32
	}
	if cfg2&cfg2LAM != 0 {
		hw |= hwcapLoongLAM
	}
	if cfg2&cfg2FP != 0 && euen&euenFPE != 0 {
		hw |= hwcapLoongFPU
	}
	if cfg2&cfg2LSX != 0 && euen&euenSXE != 0 {
		hw |= hwcapLoongLSX
	}
	if cfg2&cfg2LASX != 0 && euen&euenASXE != 0 {
		hw |= hwcapLoongLASX
	}
	if cfg2&cfg2CRYPTO != 0 {
		hw |= hwcapLoongCRYPTO
	}
	return hw
}

// stableCounterHz is the stable counter's frequency: CPUCFG word 4 is the
// base clock in Hz, word 5 its multiplier (bits 15-0) and divider (bits
// 31-16). 0 means unknown, and the clock is calibrated instead.
func stableCounterHz(cfg4, cfg5 uint32) uint64 {
	mul, div := uint64(cfg5&0xffff), uint64(cfg5>>16)
	if cfg4 == 0 || mul == 0 || div == 0 {
		return 0
	}
	return uint64(cfg4) * mul / div
}
