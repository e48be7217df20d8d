package tests

import "slices"

// noLinux are the arches of arches with no Linux kernel to boot: Debian
// main packages none for loong64 (FACTS.md). Tests that end in Linux
// userspace leave them out; TestChainLoad proves their handoff with the
// EFI shell instead, which goes through the same LoadImage and StartImage.
//
// riscv64 is here for want of a verified kernel, not for want of a working
// one: trixie's linux-image-riscv64 (6.12.107) boots to the userspace marker
// through bootd (TestBootLinux and the other Linux tests pass with it in the
// cache), but this machine's Debian mirror serves a riscv64 Packages index
// that does not match trixie's signed InRelease, so payload.FetchKernel
// cannot fetch it. Drop riscv64 from the map once FetchKernel("riscv64")
// succeeds.
var noLinux = map[string]bool{"loong64": true, "riscv64": true}

// linuxArches returns the arches that boot a Linux kernel in the tests.
func linuxArches() []string {
	return slices.DeleteFunc(slices.Clone(arches), func(a string) bool { return noLinux[a] })
}
