// Package handoff starts what the loader fetched: a Linux kernel with its
// command line and initrd, a UKI, or any EFI program.
//
// Load gives the image to the firmware's LoadImage from memory (with a
// memory-mapped device path, as systemd-boot and GRUB do), inflating a
// gzip'd arm64/riscv64 Image first, and sets its LoadOptions to the command
// line in UCS-2. SetInitrd serves the initrd the way Linux's EFI stub asks
// for it: a handle carrying the LINUX_EFI_INITRD_MEDIA_GUID vendor-media
// device path and an EFI_LOAD_FILE2_PROTOCOL whose LoadFile is a small
// per-arch assembly routine over the staged bytes (no Go runs on the
// firmware's stack). Start runs the image with the firmware's CPU state
// restored; it returns only if the image exits or fails, so the caller can
// report that and go on with its plan.
package handoff
