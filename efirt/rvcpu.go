package efirt

// What riscv64 learns about its CPU from the device tree the firmware
// publishes (EFI configuration table, DTB GUID): the timebase frequency
// the time CSR counts at, and the ISA extensions riscv_hwprobe reports.
// S-mode cannot read misa, so the device tree is the only source. This file
// is compiled everywhere so the host can test the parsing.

// rvCPUInfo is what parseFDT found.
type rvCPUInfo struct {
	timebase uint64 // Hz, 0 if absent
	letters  uint64 // single-letter extensions, bit c-'a' (Linux's AT_HWCAP)
	ext      uint64 // riscv_hwprobe IMA_EXT_0 bits
	rtc      uint64 // address of a goldfish RTC (QEMU's virt machine), 0 if none
	uart     uint64 // address of the console's 16550 UART (byte registers), 0 if none
}

// riscv_hwprobe keys and RISCV_HWPROBE_KEY_IMA_EXT_0 bits (Linux uapi).
const (
	rvKeyMvendorid   = 0
	rvKeyMarchid     = 1
	rvKeyMimpid      = 2
	rvKeyBaseBehav   = 3
	rvKeyIMAExt0     = 4
	rvKeyCPUPerf0    = 5
	rvBaseBehavIMA   = 1
	rvExtFD          = 1 << 0
	rvExtC           = 1 << 1
	rvExtV           = 1 << 2
	rvExtZba         = 1 << 3
	rvExtZbb         = 1 << 4
	rvExtZbs         = 1 << 5
	rvExtZicboz      = 1 << 6
	rvExtZbc         = 1 << 7
	rvMisalignedUnkn = 0
)

// rvProbe answers one riscv_hwprobe key; ok is false for keys efirt does
// not know, which the kernel reports as key -1.
func rvProbe(key int64, info *rvCPUInfo) (v uint64, ok bool) {
	switch key {
	case rvKeyMvendorid, rvKeyMarchid, rvKeyMimpid:
		return 0, true // not visible from S-mode
	case rvKeyBaseBehav:
		return rvBaseBehavIMA, true
	case rvKeyIMAExt0:
		return info.ext, true
	case rvKeyCPUPerf0:
		return rvMisalignedUnkn, true
	}
	return 0, false
}

// dtbGUID is EFI_DTB_TABLE_GUID, b1b621d5-f19c-41a5-830b-d9152c69aae0.
var dtbGUID = [16]byte{0xd5, 0x21, 0xb6, 0xb1, 0x9c, 0xf1, 0xa5, 0x41, 0x83, 0x0b, 0xd9, 0x15, 0x2c, 0x69, 0xaa, 0xe0}

// System-table fields for the configuration table (64-bit).
const (
	stNumberOfTableEntries = 104
	stConfigurationTable   = 112
	configEntrySize        = 24 // GUID, then the table's address
)

// configTable returns the address of the configuration table with GUID g,
// or 0.
func configTable(g *[16]byte) uintptr {
	n := peek(systemTable + stNumberOfTableEntries)
	tables := peek(systemTable + stConfigurationTable)
	for i := uintptr(0); i < n && tables != 0; i++ {
		e := tables + i*configEntrySize
		if *(*[16]byte)(ptr(e)) == *g {
			return peek(e + 16)
		}
	}
	return 0
}

// parseFDT reads the flattened device tree at addr.
func parseFDT(addr uintptr) rvCPUInfo {
	hdr := bytesAt(addr, fdtHeaderSize)
	if be32(hdr, 0) != fdtMagic {
		return rvCPUInfo{}
	}
	size := uintptr(be32(hdr, 4))
	if size < fdtHeaderSize || size > 64<<20 {
		return rvCPUInfo{}
	}
	return parseFDTBlob(bytesAt(addr, size))
}

const (
	fdtMagic      = 0xd00dfeed
	fdtHeaderSize = 40
	fdtBeginNode  = 1
	fdtEndNode    = 2
	fdtProp       = 3
	fdtNop        = 4
	fdtEnd        = 9
)

// parseFDTBlob walks the structure block of a device tree blob for
// /cpus/timebase-frequency and the ISA of the first /cpus/cpu@ node. A
// malformed blob yields what was found before the damage.
func parseFDTBlob(b []byte) (info rvCPUInfo) {
	if len(b) < fdtHeaderSize || be32(b, 0) != fdtMagic {
		return
	}
	p, strs := int(be32(b, 8)), int(be32(b, 12))
	end := p + int(be32(b, 36))
	if end > len(b) || strs > len(b) {
		return
	}
	const (
		cpuNotSeen = iota
		inCPU
		cpuDone
	)
	depth, inCpus, cpu := 0, false, cpuNotSeen
	// The node being read: whether it is a goldfish RTC or a 16550 with
	// byte-wide registers, and its first reg address. Properties precede
	// subnodes, so one node at a time.
	var goldfish, uart, wideRegs bool
	var reg uint64
	// The console: /chosen's stdout-path names a node whose unit address
	// is its UART's; else the first 16550 is taken.
	var stdoutAddr, firstUART uint64
	var uarts [8]uint64
	nUARTs := 0
	chosen := false
	for p+4 <= end {
		tok := be32(b, p)
		p += 4
		switch tok {
		case fdtBeginNode:
			name := cstring(b[:end], p)
			p += align4(len(name) + 1)
			depth++
			goldfish, uart, wideRegs, reg = false, false, false, 0
			chosen = depth == 2 && string(name) == "chosen"
			switch {
			case depth == 2 && string(name) == "cpus":
				inCpus = true
			case depth == 3 && inCpus && cpu == cpuNotSeen && hasPrefix(name, "cpu@"):
				cpu = inCPU
			}
		case fdtEndNode:
			if uart && !wideRegs && reg != 0 {
				if firstUART == 0 {
					firstUART = reg
				}
				if nUARTs < len(uarts) {
					uarts[nUARTs] = reg
					nUARTs++
				}
			}
			goldfish, uart, wideRegs, reg, chosen = false, false, false, 0, false
			if depth == 3 && cpu == inCPU {
				cpu = cpuDone
			}
			if depth == 2 {
				inCpus = false
			}
			depth--
		case fdtProp:
			if p+8 > end {
				return
			}
			n, nameOff := int(be32(b, p)), int(be32(b, p+4))
			p += 8
			if n < 0 || p+n > end || strs+nameOff >= len(b) {
				return
			}
			val := b[p : p+n]
			p += align4(n)
			name := cstring(b, strs+nameOff)
			switch {
			case inCpus && (depth == 2 || depth == 3 && cpu == inCPU) && string(name) == "timebase-frequency":
				// The /cpus value wins over a per-CPU one.
				if depth == 2 || info.timebase == 0 {
					info.timebase = beUint(val)
				}
			case depth == 3 && cpu == inCPU && string(name) == "riscv,isa":
				rvParseISA(cstring(val, 0), &info)
			case depth == 3 && cpu == inCPU && string(name) == "riscv,isa-extensions":
				for i := 0; i < len(val); {
					e := cstring(val, i)
					rvAddExtension(e, &info)
					i += len(e) + 1
				}
			case string(name) == "compatible":
				for i := 0; i < len(val); {
					e := cstring(val, i)
					goldfish = goldfish || string(e) == "google,goldfish-rtc"
					uart = uart || string(e) == "ns16550a" || string(e) == "ns16550"
					i += len(e) + 1
				}
			case string(name) == "reg-shift" || string(name) == "reg-io-width":
				// Registers spaced or sized otherwise than bytes: not
				// for efirt's simple writer.
				if n := beUint(val); string(name) == "reg-shift" && n != 0 || string(name) == "reg-io-width" && n != 1 {
					wideRegs = true
				}
			case chosen && string(name) == "stdout-path":
				stdoutAddr = unitAddress(cstring(val, 0))
			case string(name) == "reg":
				// Two address cells, as QEMU's /soc has; one as a fallback.
				if len(val) >= 8 {
					reg = beUint(val[:8])
				} else {
					reg = beUint(val)
				}
			}
			if goldfish && reg != 0 && info.rtc == 0 {
				info.rtc = reg
			}
		case fdtNop:
		default: // fdtEnd or damage
			p = end
		}
	}
	info.uart = firstUART
	for _, u := range uarts[:nUARTs] {
		if stdoutAddr != 0 && u == stdoutAddr {
			info.uart = u
		}
	}
	return
}

// unitAddress returns the hexadecimal unit address of the last component
// of a device-tree path ("/soc/serial@10000000:115200" gives 0x10000000),
// or 0.
func unitAddress(path []byte) uint64 {
	at := -1
	for i, c := range path {
		switch c {
		case '/':
			at = -1
		case '@':
			at = i
		}
	}
	if at < 0 {
		return 0
	}
	var v uint64
	for _, c := range path[at+1:] {
		switch {
		case c >= '0' && c <= '9':
			v = v<<4 | uint64(c-'0')
		case c >= 'a' && c <= 'f':
			v = v<<4 | uint64(c-'a'+10)
		case c >= 'A' && c <= 'F':
			v = v<<4 | uint64(c-'A'+10)
		default:
			return v // ':' options, or a ',' in a multi-part address
		}
	}
	return v
}

// rvParseISA reads an ISA string such as "rv64imafdc_zicsr_zba_zbb":
// single letters after the base, then multi-letter extensions separated by
// underscores.
func rvParseISA(s []byte, info *rvCPUInfo) {
	if len(s) < 4 || lower(s[0]) != 'r' || lower(s[1]) != 'v' {
		return
	}
	i := 2
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	for ; i < len(s); i++ {
		c := lower(s[i])
		if c == '_' || c == 'z' || c == 's' || c == 'x' {
			break
		}
		if c >= 'a' && c <= 'z' {
			rvAddExtension(s[i:i+1], info)
		}
	}
	for i < len(s) {
		if s[i] == '_' {
			i++
			continue
		}
		j := i
		for j < len(s) && s[j] != '_' {
			j++
		}
		rvAddExtension(s[i:j], info)
		i = j
	}
}

// rvAddExtension records one extension name.
func rvAddExtension(e []byte, info *rvCPUInfo) {
	if len(e) == 1 {
		c := lower(e[0])
		if c < 'a' || c > 'z' {
			return
		}
		if c == 'g' { // imafd, with Zicsr and Zifencei
			for _, l := range "imafd" {
				info.letters |= 1 << (l - 'a')
			}
		} else {
			info.letters |= 1 << (c - 'a')
		}
		if info.letters&(1<<('f'-'a')|1<<('d'-'a')) == 1<<('f'-'a')|1<<('d'-'a') {
			info.ext |= rvExtFD
		}
		if info.letters&(1<<('c'-'a')) != 0 {
			info.ext |= rvExtC
		}
		if info.letters&(1<<('v'-'a')) != 0 {
			info.ext |= rvExtV
		}
		return
	}
	var name [16]byte
	if len(e) > len(name) {
		return
	}
	for i, c := range e {
		name[i] = lower(c)
	}
	switch string(name[:len(e)]) {
	case "zba":
		info.ext |= rvExtZba
	case "zbb":
		info.ext |= rvExtZbb
	case "zbs":
		info.ext |= rvExtZbs
	case "zbc":
		info.ext |= rvExtZbc
	case "zicboz":
		info.ext |= rvExtZicboz
	}
}

func lower(c byte) byte {
	if c >= 'A' && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

func hasPrefix(b []byte, p string) bool { return len(b) >= len(p) && string(b[:len(p)]) == p }

// cstring returns the NUL-terminated string at b[off:] without the NUL (or
// to the end of b).
func cstring(b []byte, off int) []byte {
	if off < 0 || off >= len(b) {
		return nil
	}
	for i := off; i < len(b); i++ {
		if b[i] == 0 {
			return b[off:i]
		}
	}
	return b[off:]
}

func align4(n int) int { return (n + 3) &^ 3 }

func be32(b []byte, off int) uint32 {
	if off < 0 || off+4 > len(b) {
		return 0
	}
	return uint32(b[off])<<24 | uint32(b[off+1])<<16 | uint32(b[off+2])<<8 | uint32(b[off+3])
}

// beUint reads a one- or two-cell big-endian property value.
func beUint(v []byte) uint64 {
	switch len(v) {
	case 4:
		return uint64(be32(v, 0))
	case 8:
		return uint64(be32(v, 0))<<32 | uint64(be32(v, 4))
	}
	return 0
}

// unixToEFITime fills an EFI_TIME (UTC, no daylight flags) from Unix
// seconds and nanoseconds: the inverse of EFITimeToUnix.
func unixToEFITime(sec, nsec int64, t *[16]byte) {
	days, rem := sec/86400, sec%86400
	if rem < 0 {
		days, rem = days-1, rem+86400
	}
	// Civil date from days since 1970-01-01 (proleptic Gregorian,
	// March-based years), the inverse of the computation in
	// EFITimeToUnix.
	z := days + 719468
	era := z / 146097
	if z < 0 && z%146097 != 0 {
		era--
	}
	doe := z - era*146097
	yoe := (doe - doe/1460 + doe/36524 - doe/146096) / 365
	y := yoe + era*400
	doy := doe - (365*yoe + yoe/4 - yoe/100)
	mp := (5*doy + 2) / 153
	d := doy - (153*mp+2)/5 + 1
	m := mp + 3
	if m > 12 {
		m -= 12
	}
	if m <= 2 {
		y++
	}
	*t = [16]byte{}
	t[0], t[1] = byte(y), byte(y>>8)
	t[2], t[3] = byte(m), byte(d)
	t[4], t[5], t[6] = byte(rem/3600), byte(rem/60%60), byte(rem%60)
	t[8], t[9], t[10], t[11] = byte(nsec), byte(nsec>>8), byte(nsec>>16), byte(nsec>>24)
	t[12], t[13] = 0xff, 0x07 // EFI_UNSPECIFIED_TIMEZONE (2047)
}
