package efirt

import "testing"

func TestHWCAPsFromIDRegisters(t *testing.T) {
	for _, tc := range []struct {
		name        string
		isar0, pfr0 uint64
		hw, hw2     uintptr
	}{
		// Cortex-A72 with the crypto extension: AES+PMULL, SHA1, SHA256,
		// CRC32, no LSE; FP and AdvSIMD implemented.
		{"cortex-a72", 0x0000000000011120, 0x0000000000002222,
			hwcapFP | hwcapASIMD | hwcapAES | hwcapPMULL | hwcapSHA1 | hwcapSHA2 | hwcapCRC32, 0},
		// A v8.5 core: SHA-512, SHA-3, LSE atomics, DIT and RNDR.
		{"v8.5", 0x1000000100212120, 0x0001000000000011,
			hwcapFP | hwcapASIMD | hwcapAES | hwcapPMULL | hwcapSHA1 | hwcapSHA2 | hwcapSHA512 | hwcapCRC32 | hwcapATOMICS | hwcapSHA3 | hwcapDIT, hwcap2RNG},
		// No crypto, AES without PMULL, FP and AdvSIMD not implemented.
		{"aes-only, no fp", 0x0000000000000010, 0x0000000000ff0000, hwcapAES, 0},
	} {
		hw, hw2 := hwcapsFromID(tc.isar0, tc.pfr0)
		if hw != tc.hw || hw2 != tc.hw2 {
			t.Errorf("%s: got %#x %#x, want %#x %#x", tc.name, hw, hw2, tc.hw, tc.hw2)
		}
	}
}
