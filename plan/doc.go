// Package plan is the boot plan: which OCI artifacts to boot, how (format,
// command line, signature policy, trust, credentials), in what order, and
// with what timeout. The loader and the host CLI share it.
//
// Sources, later overriding earlier: the plan embedded at build time
// (`ociboot build -plan FILE`, validated then), the file FileName next to
// the loader on its ESP, key=value words from the firmware's load options,
// and the DHCP boot-file name when it is an OCI reference.
package plan
