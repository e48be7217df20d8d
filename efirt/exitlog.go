package efirt

import "unsafe"

// Console capture and the exit text.
//
// The program's logger (observe) keeps its own log on the scratch disk, but
// what the kernel prints and what the runtime writes to fd 2 on a crash
// never pass through it. The kernel therefore keeps the last capSize bytes
// of everything the console showed, marking which bytes came through fd 1
// (the logger's ConOut sink). While the program runs, the logger copies the
// other bytes into its log (ReadConsole) and says how far its disk holds
// the console (ConsoleSaved). At exit_group the kernel writes what the
// console showed after that point to the crash area the program registered
// (SetExitDisk), through the firmware's Block IO, from a static buffer: a
// panic's text reaches the disk though no Go code runs any more.
//
// Goroutines read and set this state directly: threads switch only inside
// system calls and interrupts never run Go, so the kernel never sees a
// half-done update. The crash area's layout is defined in observe/ring.go.

const capSize = 16 << 10 // a power of two

var capture struct {
	buf     [capSize]byte
	fromLog [capSize / 8]byte // bit set: the byte came through fd 1
	total   uint64            // bytes captured since start
	saved   uint64            // the program's disk holds the console up to here
}

// captureCon records console output; fromLog says it came through fd 1.
func captureCon(p []byte, fromLog bool) {
	for _, c := range p {
		i := capture.total % capSize
		capture.buf[i] = c
		bit := byte(1) << (i % 8)
		if fromLog {
			capture.fromLog[i/8] |= bit
		} else {
			capture.fromLog[i/8] &^= bit
		}
		capture.total++
	}
}

// ConsolePos is the number of bytes the console has shown since start.
func ConsolePos() uint64 { return capture.total }

// ReadConsole copies into p the console bytes from position from on that
// did not come through fd 1 (the kernel's notes, fd 2), up to the current
// position. It returns how many it copied, the position to continue from,
// and how many bytes from had asked for were already overwritten.
func ReadConsole(from uint64, p []byte) (n int, next, lost uint64) {
	total := capture.total
	if from > total {
		from = total
	}
	if total-from > capSize {
		lost = total - capSize - from
		from = total - capSize
	}
	for ; from < total && n < len(p); from++ {
		i := from % capSize
		if capture.fromLog[i/8]&(1<<(i%8)) == 0 {
			p[n] = capture.buf[i]
			n++
		}
	}
	return n, from, lost
}

// ConsoleSaved tells the kernel that the program's own disk log holds the
// console up to position pos: the exit text starts there.
func ConsoleSaved(pos uint64) {
	if pos > capture.saved && pos <= capture.total {
		capture.saved = pos
	}
}

// ExitDisk is where the kernel writes the exit text: a range of blocks of a
// device the program has verified as its scratch disk, and the run the text
// belongs to.
type ExitDisk struct {
	BlockIo    uintptr // the device's EFI_BLOCK_IO_PROTOCOL interface
	MediaID    uint32
	BlockSize  uint32
	LBA        uint64 // first block of the crash area
	Blocks     uint64
	Generation uint64 // the scratch disk's generation
	Run        uint32 // the program's run on the disk
}

const (
	exitHeader   = 32 // layout in observe/ring.go
	exitMaxBlock = 4096
	exitCut      = 1
)

var (
	exitDisk ExitDisk // BlockIo 0: none
	// exitBuf holds the text for WriteBlocks, page-aligned inside for any
	// IoAlign up to a page.
	exitBuf [exitHeader + capSize + 2*exitMaxBlock]byte
)

// SetExitDisk registers the crash area the kernel writes at exit; a zero
// ExitDisk unregisters it. The kernel writes nowhere else, and only if the
// device still reports the same media then.
func SetExitDisk(d ExitDisk) error {
	if d.BlockIo == 0 {
		exitDisk = ExitDisk{}
		return nil
	}
	if d.BlockSize < 512 || d.BlockSize > exitMaxBlock || d.BlockSize&(d.BlockSize-1) != 0 {
		return errExitBlockSize
	}
	if d.Blocks == 0 || d.Blocks*uint64(d.BlockSize) < exitHeader+512 {
		return errExitArea
	}
	exitDisk = d
	return nil
}

// exitDiskError is SetExitDisk's error; its values are static data, so
// efirt needs neither an allocation nor a run-time initialiser for them.
type exitDiskError struct{ msg string }

func (e *exitDiskError) Error() string { return e.msg }

var (
	errExitBlockSize = &exitDiskError{"efirt: exit disk: block size must be a power of two from 512 to 4096"}
	errExitArea      = &exitDiskError{"efirt: exit disk: crash area too small"}
)

// writeExitText writes what the console showed since the last save to the
// registered crash area, once. It runs in exit_group: kernel code.
func writeExitText() {
	d := exitDisk
	exitDisk = ExitDisk{}
	if d.BlockIo == 0 {
		return
	}
	media := peek(d.BlockIo + 8)
	if media == 0 || peek32(media) != d.MediaID || *(*byte)(ptr(media + 5)) == 0 ||
		*(*byte)(ptr(media + 7)) != 0 || peek32(media+12) != d.BlockSize ||
		peek32(media+16) > pageSize || d.LBA+d.Blocks > uint64(peek(media+24))+1 {
		kprint("efirt: the scratch disk changed; exit text not saved\n")
		return
	}
	start := uintptr(unsafe.Pointer(&exitBuf[0]))
	base := (start + pageSize - 1) &^ (pageSize - 1)
	b := bytesAt(base, uintptr(len(exitBuf))-(base-start))
	maxText := min(capSize, d.Blocks*uint64(d.BlockSize)-exitHeader)
	n := encodeExit(b, maxText, d.Generation, d.Run)
	// Whole blocks, within the area: maxText keeps the padded size below
	// both the area's size and the buffer's.
	padded := (n + int(d.BlockSize) - 1) &^ (int(d.BlockSize) - 1)
	clear(b[n:padded])
	if st := efi(peek(d.BlockIo+32), d.BlockIo, uintptr(d.MediaID), uintptr(d.LBA), uintptr(padded), base); st != efiSuccess {
		kprint("efirt: writing the exit text failed: ")
		kprintHex(uint64(st))
		kprint("\n")
		return
	}
	efi(peek(d.BlockIo+40), d.BlockIo)
}

// encodeExit puts the crash area's header and the console since the last
// save (its last maxText bytes) into b and returns the bytes used.
func encodeExit(b []byte, maxText, gen uint64, run uint32) int {
	from, cut := capture.saved, uint32(0)
	if total := capture.total; total-from > maxText {
		from, cut = total-maxText, exitCut
	}
	n := int(capture.total - from)
	for k := 0; k < n; k++ {
		b[exitHeader+k] = capture.buf[(from+uint64(k))%capSize]
	}
	copy(b[:8], "OCIBEXIT")
	putLE(b[8:16], gen)
	putLE(b[16:20], uint64(run))
	putLE(b[20:24], uint64(n))
	putLE(b[24:28], uint64(cut))
	h := fnv1a(fnv1a(2166136261, b[8:28]), b[exitHeader:exitHeader+n])
	putLE(b[28:32], uint64(h))
	return exitHeader + n
}

// putLE stores v little-endian in all of b.
func putLE(b []byte, v uint64) {
	for i := range b {
		b[i] = byte(v >> (8 * i))
	}
}

// fnv1a continues a 32-bit FNV-1a hash: a checksum without tables.
func fnv1a(h uint32, p []byte) uint32 {
	for _, c := range p {
		h ^= uint32(c)
		h *= 16777619
	}
	return h
}
