package efirt

import "unsafe"

// Set by efirt_entry from the firmware's arguments.
var (
	imageHandle uintptr
	systemTable uintptr
	firmwareSP  uintptr
)

// vecSyscall marks a system-call frame; any other vec makes the kernel
// leave through trapReturnFull, which restores every register.
const vecSyscall = ^uintptr(0)

// Linux errno values the kernel returns (negated in AX).
const (
	eperm   = 1
	enoent  = 2
	ebadf   = 9
	eagain  = 11
	enomem  = 12
	efault  = 14
	einval  = 22
	emfile  = 24
	enotty  = 25
	enosys  = 38
	etimed  = 110
	enodev  = 19
	eexist  = 17
	esrch   = 3
	erange  = 34
	enotsup = 95
)

func errno(e uintptr) uintptr { return -e }

// ptr turns an address into a pointer without vet's unsafeptr complaint:
// kernel memory is never in the Go heap, so the GC does not care.
func ptr(addr uintptr) unsafe.Pointer { return *(*unsafe.Pointer)(unsafe.Pointer(&addr)) }

func peek(addr uintptr) uintptr     { return *(*uintptr)(ptr(addr)) }
func poke(addr, v uintptr)          { *(*uintptr)(ptr(addr)) = v }
func peek32(addr uintptr) uint32    { return *(*uint32)(ptr(addr)) }
func poke32(addr uintptr, v uint32) { *(*uint32)(ptr(addr)) = v }

// bytesAt views n bytes of memory at addr.
func bytesAt(addr, n uintptr) []byte { return unsafe.Slice((*byte)(ptr(addr)), n) }

// reported remembers which unknown system calls were already reported.
var reported [sysMaxKnown/8 + 1]byte

// dispatch serves one system call. It runs on the calling thread's kernel
// stack; a blocking call switches threads inside it.
func dispatch(fp uintptr) {
	f := (*frame)(ptr(fp))
	if f.vec != vecSyscall {
		exception(f)
		return
	}
	a1, a2, a3, a4, a5 := f.args()
	var r uintptr
	switch n := f.sysno(); n {
	case sysWrite:
		r = sysWriteFD(a1, a2, a3)
	case sysRead:
		r = sysReadFD(a1, a2, a3)
	case sysClose:
		r = closeFD(a1)
	case sysMmap:
		r = mmap(a1, a2, a3, a4, a5)
	case sysMunmap:
		r = munmap(a1, a2)
	case sysMprotect:
		r = 0 // all memory is read-write-execute
	case sysMadvise:
		r = madvise(a1, a2, a3)
	case sysBrk:
		r = 0
	case sysMincore:
		r = errno(enosys)
	case sysRtSigaction:
		r = sigaction(a1, a2, a3)
	case sysRtSigprocmask:
		// Signals come only from CPU exceptions; masks change nothing.
		clear(bytesOrNil(a3, a4))
		r = 0
	case sysSigaltstack:
		r = sigaltstack(a1, a2)
	case sysKill, sysTkill, sysTgkill, sysSetitimer:
		r = 0 // no signals: preemption stays cooperative
	case sysGetpid:
		r = 1
	case sysGettid:
		r = current().tid
	case sysSchedYield:
		yield()
		r = 0
	case sysNanosleep:
		r = nanosleep(a1)
	case sysFutex:
		r = futex(a1, a2, a3, a4)
	case sysClone:
		r = clone(f, a1, a2, f.cloneTLS())
	case sysExit:
		exitThread()
	case sysExitGroup:
		exitGroup(int(int32(a1)))
	case sysSchedGetaffin:
		if a2 < 8 {
			r = errno(einval)
		} else {
			clear(bytesAt(a3, a2))
			poke(a3, 1) // one CPU: GOMAXPROCS becomes 1
			r = 8
		}
	case sysRtSigreturn:
		sigreturn(f)
		return
	case sysClockGettime:
		r = clockGettime(a1, a2)
	case sysGetrandom:
		r = getrandom(a1, a2)
	case sysUname:
		r = uname(a1)
	case sysOpenat, sysFaccessat:
		r = errno(enoent) // no files: /proc, /sys and /etc probes see ENOENT
	case sysPrctl:
		r = errno(einval) // only naming anonymous mappings is asked for
	case sysPread64, sysIoctl:
		r = errno(ebadf)
	case sysFcntl:
		r = fcntl(a1, a2)
	case sysPrlimit64:
		r = prlimit(a2, a4)
	case sysEventfd2:
		r = eventfd(a1)
	case sysEpollCreate1:
		r = epollCreate()
	case sysEpollCtl:
		r = epollCtl(a1, a2, a3, a4)
	case sysEpollPwait:
		r = epollWait(a1, a2, a3, int32(a4))
	case sysFirmwareCall:
		r = firmwareCall(a1, a2, a3)
	case sysForeignCall:
		r = foreignCall(a1, a2, a3)
	default:
		var ok bool
		if r, ok = archSyscall(f, n, a1, a2); !ok {
			r = unknownSyscall(n)
		}
	}
	f.setResult(r)
}

func bytesOrNil(addr, n uintptr) []byte {
	if addr == 0 {
		return nil
	}
	return bytesAt(addr, n)
}

func unknownSyscall(n uintptr) uintptr {
	if n < sysMaxKnown && reported[n/8]&(1<<(n%8)) == 0 {
		reported[n/8] |= 1 << (n % 8)
		kprint("efirt: unsupported system call ")
		kprintNum(uint64(n))
		kprint(" returns ENOSYS\n")
		enosysCount++
	}
	return errno(enosys)
}

// enosysCount counts distinct system calls that reached ENOSYS.
var enosysCount int

// uname describes efirt as a Linux new enough for every feature std
// probes by version (they are all ones efirt's programs do not use: the
// network stack is the program's own) and names the machine Go was built
// for. struct utsname is six 65-byte strings.
func uname(buf uintptr) uintptr {
	const field = 65
	b := bytesAt(buf, 6*field)
	clear(b)
	for i, s := range [...]string{"Linux", "efirt", "6.1.0-efirt", "#1 UEFI", unameMachine, "(none)"} {
		copy(b[i*field:], s)
	}
	return 0
}

func fcntl(fd, cmd uintptr) uintptr {
	const fGetfd, fSetfd, fGetfl, fSetfl = 1, 2, 3, 4
	if !validFD(fd) {
		return errno(ebadf)
	}
	switch cmd {
	case fGetfl:
		return 2 // O_RDWR, blocking
	case fGetfd, fSetfd, fSetfl:
		return 0
	}
	return errno(einval)
}

// prlimit reports generous limits; only RLIMIT_NOFILE is ever asked for.
func prlimit(resource, old uintptr) uintptr {
	if old != 0 {
		poke(old, maxFDs)
		poke(old+8, maxFDs)
	}
	return 0
}
