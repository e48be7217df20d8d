package efirt

import "unsafe"

// Console output goes to the firmware's ConOut, which OVMF and its kin
// mirror to the serial port. Text is UTF-8 in, UCS-2 out, LF becomes CRLF.
// Everything shown is also captured (exitlog.go); fd 1 is the program's
// logger, which keeps its own copy, so its bytes are marked as such.

var conBuf [256]uint16

func sysWriteFD(fd, buf, n uintptr) uintptr {
	switch {
	case fd == 1 || fd == 2:
		p := bytesAt(buf, n)
		captureCon(p, fd == 1)
		conWrite(p)
		return n
	case isEventFD(fd):
		return eventfdWrite(fd, buf, n)
	}
	return errno(ebadf)
}

func sysReadFD(fd, buf, n uintptr) uintptr {
	if isEventFD(fd) {
		return eventfdRead(fd, buf, n)
	}
	return errno(ebadf)
}

func conWrite(p []byte) {
	if archConWrite(p) {
		return
	}
	out := peek(systemTable + stConOut)
	if out == 0 {
		return
	}
	j := 0
	flush := func() {
		conBuf[j] = 0
		efi(peek(out+textOutputString), out, uintptr(unsafe.Pointer(&conBuf[0])))
		j = 0
	}
	for i := 0; i < len(p); {
		r, size := decodeRune(p[i:])
		i += size
		if j+3 >= len(conBuf) {
			flush()
		}
		if r == '\n' {
			conBuf[j] = '\r'
			j++
		}
		conBuf[j] = uint16(r)
		j++
	}
	if j > 0 {
		flush()
	}
}

// decodeRune decodes one UTF-8 sequence into a BMP character; anything
// else prints as U+FFFD.
func decodeRune(p []byte) (rune, int) {
	c := p[0]
	switch {
	case c < 0x80:
		return rune(c), 1
	case c&0xe0 == 0xc0 && len(p) >= 2 && p[1]&0xc0 == 0x80:
		return rune(c&0x1f)<<6 | rune(p[1]&0x3f), 2
	case c&0xf0 == 0xe0 && len(p) >= 3 && p[1]&0xc0 == 0x80 && p[2]&0xc0 == 0x80:
		return rune(c&0x0f)<<12 | rune(p[1]&0x3f)<<6 | rune(p[2]&0x3f), 3
	case c&0xf8 == 0xf0 && len(p) >= 4:
		return 0xfffd, 4
	}
	return 0xfffd, 1
}

// kwrite prints the kernel's own text.
func kwrite(p []byte) {
	captureCon(p, false)
	conWrite(p)
}

func kprint(s string) { kwrite(unsafe.Slice(unsafe.StringData(s), len(s))) }

func kprintNum(v uint64) {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + v%10)
		v /= 10
		if v == 0 {
			break
		}
	}
	kwrite(b[i:])
}

func kprintHex(v uint64) {
	var b [18]byte
	const digits = "0123456789abcdef"
	i := len(b)
	for {
		i--
		b[i] = digits[v&15]
		v >>= 4
		if v == 0 {
			break
		}
	}
	i--
	b[i] = 'x'
	i--
	b[i] = '0'
	kwrite(b[i:])
}

// fatal reports a kernel error and ends the program with status 255.
func fatal(msg string) {
	kprint("efirt: fatal: ")
	kprint(msg)
	kprint("\n")
	exitGroup(255)
}
