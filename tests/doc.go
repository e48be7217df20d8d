// Package tests holds ociboot's end-to-end tests: programs built into EFI
// images and booted under QEMU and EDK2 firmware. A test that runs per
// architecture has one subtest per GOARCH, so
// `go test ./tests -run 'TestSelftest/amd64'` runs the amd64 part.
package tests
