package tests

import "slices"

// noLinux are the arches of arches with no Linux kernel to boot: Debian
// main packages none for loong64 (FACTS.md). Tests that end in Linux
// userspace leave them out; TestChainLoad proves their handoff with the
// EFI shell instead, which goes through the same LoadImage and StartImage.
// riscv64 boots trixie's linux-image-riscv64 (its index verifies against
// the signed InRelease again since December 2026).
var noLinux = map[string]bool{"loong64": true}

// linuxArches returns the arches that boot a Linux kernel in the tests.
func linuxArches() []string {
	return slices.DeleteFunc(slices.Clone(arches), func(a string) bool { return noLinux[a] })
}
