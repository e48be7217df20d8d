package efirt

// RISC-V EDK2's serial terminal breaks every line at the text mode's width
// (80 or 100 columns) with a CRLF of its own, which splits the log's long
// lines wherever they are read. efirt therefore writes the console straight
// to the UART the device tree names as stdout, the one ConOut drives, and
// uses ConOut only when there is none.

const (
	uartTHR     = 0 // transmit holding register
	uartLSR     = 5 // line status register
	uartLSRTHRE = 1 << 5
)

// uartBase is the UART's address while efirt may write it, 0 otherwise.
var uartBase uintptr

// uartMap is how efirt mapped the UART's page, if the firmware had not.
var uartMap ptUndo

// openUART makes the device tree's console UART efirt's console.
func openUART() {
	addr := uintptr(rvCPU.uart)
	if addr == 0 {
		return
	}
	if !mapIdentity(addr&^(pageSize-1), &uartMap) {
		uartMap.undo()
		kprint("efirt: cannot map the UART; the console is ConOut\n")
		return
	}
	uartBase = addr
}

// closeUART hands the console back to ConOut and the UART's page back to
// the firmware's tables as they were.
func closeUART() {
	uartBase = 0
	uartMap.undo()
}

func archConWrite(p []byte) bool {
	if uartBase == 0 {
		return false
	}
	for _, c := range p {
		if c == '\n' {
			uartPut('\r')
		}
		uartPut(c)
	}
	return true
}

func uartPut(c byte) {
	for mmioRead8(uartBase+uartLSR)&uartLSRTHRE == 0 {
	}
	mmioWrite8(uartBase+uartTHR, c)
}

// mmioRead8 and mmioWrite8 access a device register, in efirt_riscv64.s:
// the compiler may neither drop nor merge them.
func mmioRead8(addr uintptr) uint8
func mmioWrite8(addr uintptr, v uint8)
