// Command bootd is the ociboot EFI loader. For now it only proves the
// foundation: it starts on efirt, prints its banner and what firmware it
// runs on, and returns to the firmware, because the network pipeline that
// fetches and boots a kernel does not exist yet.
package main

import (
	"fmt"
	"os"
	"runtime"

	"github.com/ociboot/ociboot/uefi"
)

// version is set at build time with -ldflags=-X main.version=...
var version = "dev"

func main() {
	fmt.Printf("ociboot bootd %s (%s, %s)\n", version, runtime.GOARCH, runtime.Version())
	st := uefi.ST()
	fmt.Printf("bootd: firmware %s revision %#x, UEFI %d.%d\n", uefi.UCS2At(st.FirmwareVendor, 128),
		st.FirmwareRevision, st.Hdr.Revision>>16, st.Hdr.Revision&0xffff/10)
	fmt.Println("bootd: no network boot yet: the NIC, network stack, OCI fetcher and handoff are not built; returning to the firmware")
	os.Exit(1)
}
