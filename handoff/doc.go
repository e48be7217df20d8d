// Package handoff starts the downloaded kernel: LoadImage from memory,
// LoadOptions, the initrd through LoadFile2, StartImage, after the final
// teardown.
//
// Nothing is built here yet; a later issue fills it in.
package handoff
