// Package build turns an ordinary Go main package into a UEFI application
// that runs on efirt: it generates the overlay that rewrites the runtime's
// system-call sites and memory constants from the local GOROOT, links the
// program twice at two addresses, derives base relocations from the
// difference, and writes a PE32+ image.
package build
