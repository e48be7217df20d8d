package efirt

import "unsafe"

// Loaded-image protocol fields (64-bit).
const (
	liDeviceHandle    = 24
	liFilePath        = 32
	liLoadOptionsSize = 48
	liLoadOptions     = 56
	liImageBase       = 64
	liImageSize       = 72
)

const (
	userStackBytes = 1 << 20
	maxArgv        = 64
	argBytes       = 4096
	atNull         = 0
	atPagesz       = 6
	atRandom       = 25
	atHwcap        = 16
	atHwcap2       = 26
)

// hwcap is what archInit found for AT_HWCAP and AT_HWCAP2, on the
// architectures whose Go runtime reads its CPU features from them.
var hwcap struct {
	valid         bool
	hwcap, hwcap2 uintptr
}

var (
	// memRegion is what runtime.MemRegion reports (see the overlay): the
	// loaded image, the one fixed range the runtime lives in. Heap and DMA
	// pages come from AllocatePages and never overlap each other.
	memRegion [2]uint64

	// The process start strings, built before the runtime runs.
	argText [argBytes]byte
	argLen  int
	argOff  [maxArgv]int
	argc    int
)

// kmain prepares the machine and returns the initial user stack pointer:
// argc, argv, envp and auxv laid out as Linux does for a new process.
func kmain() uintptr {
	firmwareStackTop = (uintptr(unsafe.Pointer(&firmwareStack[0])) + firmwareStackBytes) &^ 15
	t := &threads[0]
	t.state, t.tid, t.deadline = threadRunnable, 1, never
	t.altFlags = ssDisable
	archInit()
	installExceptions()

	// The firmware reboots the machine after five minutes unless told not to.
	efi(bootService(bsSetWatchdogTimer), 0, 0, 0, 0)
	calibrateClock()
	readRTC()
	initRandom()

	li := handleProtocol(imageHandle, &loadedImageGUID)
	if li != 0 {
		memRegion[0] = uint64(peek(li + liImageBase))
		memRegion[1] = memRegion[0] + uint64(peek(li+liImageSize))
	}
	collectArgs(li)

	stack, ok := allocatePages(allocMaxAddress, memLimit-1, userStackBytes/pageSize)
	if !ok {
		fatal("cannot allocate the initial stack")
	}
	top := stack + userStackBytes

	// Strings and the 16 AT_RANDOM bytes go at the top of the stack.
	top -= uintptr(argLen)
	copy(bytesAt(top, uintptr(argLen)), argText[:argLen])
	strings := top
	top -= 16
	fillRandom(bytesAt(top, 16))
	random := top

	words := 1 + argc + 1 + 1 + 2*3
	if hwcap.valid {
		words += 2 * 2
	}
	sp := (top - uintptr(words)*8) &^ 15
	w := sp
	put := func(v uintptr) { poke(w, v); w += 8 }
	put(uintptr(argc))
	for i := 0; i < argc; i++ {
		put(strings + uintptr(argOff[i]))
	}
	put(0) // end of argv
	put(0) // empty environment
	put(atPagesz)
	put(pageSize)
	put(atRandom)
	put(random)
	if hwcap.valid {
		// Go chooses its crypto code (AES, SHA-2, PMULL) from these.
		put(atHwcap)
		put(hwcap.hwcap)
		put(atHwcap2)
		put(hwcap.hwcap2)
	}
	put(atNull)
	put(0)
	return sp
}

// addArg appends one NUL-terminated argument.
func addArg(s []byte) {
	if argc == maxArgv || argLen+len(s)+1 > argBytes {
		kprint("efirt: too many arguments; the rest are dropped\n")
		return
	}
	argOff[argc] = argLen
	argLen += copy(argText[argLen:], s)
	argText[argLen] = 0
	argLen++
	argc++
}

// collectArgs builds argv: the image's file name, then the arguments from
// the file next to the image with the extension .ARG (one per line), or
// else the words of the load options a shell or boot entry passed.
func collectArgs(li uintptr) {
	var path [256]uint16
	n := 0
	if li != 0 {
		n = imagePath(peek(li+liFilePath), path[:])
	}
	name := path[:n]
	for i := n - 1; i >= 0; i-- {
		if path[i] == '\\' {
			name = path[i+1 : n]
			break
		}
	}
	var arg0 [128]byte
	k := 0
	for _, c := range name {
		if k < len(arg0) {
			arg0[k] = byte(c)
			k++
		}
	}
	if k == 0 {
		k = copy(arg0[:], "efirt")
	}
	addArg(arg0[:k])
	if li == 0 {
		return
	}
	if n > 0 && argsFromFile(peek(li+liDeviceHandle), path[:], n) {
		return
	}
	argsFromLoadOptions(peek(li+liLoadOptions), uintptr(peek32(li+liLoadOptionsSize)))
}

// imagePath concatenates the file-path nodes of a device path into buf and
// returns its length in characters.
func imagePath(dp uintptr, buf []uint16) int {
	n := 0
	for dp != 0 {
		typ, sub := *(*byte)(ptr(dp)), *(*byte)(ptr(dp + 1))
		length := uintptr(*(*uint16)(ptr(dp + 2)))
		if typ == 0x7f || length < 4 {
			break
		}
		if typ == 4 && sub == 4 { // media, file path
			for i := uintptr(4); i+1 < length; i += 2 {
				c := *(*uint16)(ptr(dp + i))
				if c == 0 {
					break
				}
				if n < len(buf)-1 {
					buf[n] = c
					n++
				}
			}
		}
		dp += length
	}
	return n
}

// argsFromFile reads the .ARG file beside the image through the simple
// file system of the device it was loaded from.
func argsFromFile(device uintptr, path []uint16, n int) bool {
	dot := n
	for i := n - 1; i >= 0 && path[i] != '\\'; i-- {
		if path[i] == '.' {
			dot = i
			break
		}
	}
	if dot+5 > len(path) {
		return false
	}
	copy(path[dot:], []uint16{'.', 'A', 'R', 'G', 0})

	const (
		sfsOpenVolume = 8
		fileOpen      = 8
		fileClose     = 16
		fileRead      = 32
		modeRead      = 1
	)
	fs := handleProtocol(device, &simpleFileSystemGUID)
	if fs == 0 {
		return false
	}
	var root, file uintptr
	if efi(peek(fs+sfsOpenVolume), fs, uintptr(unsafe.Pointer(&root))) != efiSuccess {
		return false
	}
	ok := efi(peek(root+fileOpen), root, uintptr(unsafe.Pointer(&file)), uintptr(unsafe.Pointer(&path[0])), modeRead, 0) == efiSuccess
	efi(peek(root+fileClose), root)
	if !ok {
		return false
	}
	var buf [argBytes]byte
	size := uintptr(len(buf))
	ok = efi(peek(file+fileRead), file, uintptr(unsafe.Pointer(&size)), uintptr(unsafe.Pointer(&buf[0]))) == efiSuccess
	efi(peek(file+fileClose), file)
	if !ok {
		kprint("efirt: cannot read the .ARG file\n")
		return false
	}
	start := 0
	for i := 0; i <= int(size); i++ {
		if i == int(size) || buf[i] == '\n' {
			line := buf[start:i]
			if len(line) > 0 && line[len(line)-1] == '\r' {
				line = line[:len(line)-1]
			}
			if i < int(size) || len(line) > 0 {
				addArg(line)
			}
			start = i + 1
		}
	}
	return true
}

// argsFromLoadOptions splits UCS-2 load options into words. A shell passes
// the whole command line, whose first word names the image: it is skipped.
func argsFromLoadOptions(opts, size uintptr) {
	if opts == 0 || size < 2 {
		return
	}
	chars := size / 2
	var word [256]byte
	k := 0
	first := true
	for i := uintptr(0); i <= chars; i++ {
		c := uint16(0)
		if i < chars {
			c = *(*uint16)(ptr(opts + 2*i))
		}
		if c != 0 && c != ' ' && c != '\t' {
			if c < 0x20 || c > 0x7e {
				return // binary optional data, not a command line
			}
			if k < len(word) {
				word[k] = byte(c)
				k++
			}
			continue
		}
		if k > 0 {
			if !(first && hasSuffixFold(word[:k], ".efi")) {
				addArg(word[:k])
			}
			first = false
			k = 0
		}
		if c == 0 {
			return
		}
	}
}

func hasSuffixFold(b []byte, suffix string) bool {
	if len(b) < len(suffix) {
		return false
	}
	b = b[len(b)-len(suffix):]
	for i := range b {
		if b[i]|0x20 != suffix[i] {
			return false
		}
	}
	return true
}

// exitGroup ends the program: it prints the status for whoever watches the
// console, saves the console's unsaved tail to the scratch disk the program
// registered, returns every page to the firmware and exits the image.
func exitGroup(status int) {
	kprint("efirt: exit_group(")
	if status < 0 {
		kprint("-")
		kprintNum(uint64(-status))
	} else {
		kprintNum(uint64(status))
	}
	kprint(")\n")
	writeExitText()
	uninstallExceptions()
	freeAll()
	st := uintptr(efiSuccess)
	if status != 0 {
		st = efiAborted
	}
	efi(bootService(bsExit), imageHandle, st, 0, 0)
	for {
		stall(1000000) // Exit does not return
	}
}

// runtimeMemRegion implements runtime.MemRegion, which the overlay adds for
// tamago's dma package.
//
//go:linkname runtimeMemRegion runtime.efirtMemRegion
func runtimeMemRegion() (start, end uint64) { return memRegion[0], memRegion[1] }
