package efirt

import "unsafe"

// Cooperative threads on one CPU. A thread runs until it blocks in the
// kernel (futex wait, nanosleep, sched_yield, epoll wait, exit); then the
// kernel switches to another runnable thread, or idles until the earliest
// deadline when none is.

const (
	maxThreads  = 48
	kstackSize  = 32 << 10 // KSTACK_SIZE in efirt_<arch>.s
	kstackGuard = 2048     // KSTACK_GUARD in efirt_<arch>.s
	gWords      = 48
	never       = ^uint64(0)
)

const (
	threadFree = iota
	threadRunnable
	threadBlocked
)

// Why a blocked thread waits.
const (
	waitSleep = iota
	waitFutex
	waitEpoll
)

// thread is a kernel thread. The first fields are used by the assembly.
type thread struct {
	ksp  uintptr         // saved kernel SP while switched out
	fs   uintptr         // amd64: FS base (the Go runtime's TLS)
	ktop uintptr         // top of the kernel stack
	kg   uintptr         // address of g below
	g    [gWords]uintptr // the kernel g: stack bounds for Go code in the kernel

	state    uintptr
	tid      uintptr
	wait     uintptr // waitSleep, waitFutex, waitEpoll
	addr     uintptr // futex address
	deadline uint64  // monotonic ns, or never
	timedOut bool

	altSP, altFlags, altSize uintptr // sigaltstack

	sigFrames [4]uintptr // ucontexts of the signals being handled
	sigDepth  int
}

var (
	threads   [maxThreads]thread
	kstacks   [maxThreads][kstackSize]byte
	curThread uintptr // *thread, as an address: kernel globals hold no Go pointers
	nextTID   uintptr = 2
	// threadsCreated counts clone calls, for the self-test report.
	threadsCreated int
)

func current() *thread { return (*thread)(ptr(curThread)) }

func threadIndex(t *thread) int {
	return int((uintptr(unsafe.Pointer(t)) - uintptr(unsafe.Pointer(&threads[0]))) / unsafe.Sizeof(threads[0]))
}

// initKernelG points t's kernel g at kernel stack i.
func (t *thread) initKernelG(i int) {
	lo := uintptr(unsafe.Pointer(&kstacks[i][0]))
	// AArch64 faults on an SP that is not 16-byte aligned.
	t.ktop = (lo + kstackSize) &^ 15
	clear(t.g[:])
	t.g[0], t.g[1] = lo, t.ktop
	t.g[2], t.g[3] = lo+kstackGuard, lo+kstackGuard
	t.kg = uintptr(unsafe.Pointer(&t.g[0]))
}

// clone creates a thread that returns 0 from the same call on stack stk
// with FS base tls (CLONE_SETTLS), as Linux would.
func clone(f *frame, flags, stk, tls uintptr) uintptr {
	var t *thread
	for i := 1; i < maxThreads; i++ {
		if threads[i].state == threadFree {
			t = &threads[i]
			t.initKernelG(i)
			break
		}
	}
	if t == nil {
		kprint("efirt: clone: all threads in use\n")
		return errno(eagain)
	}
	cf := (*frame)(ptr(t.ktop - unsafe.Sizeof(frame{})))
	*cf = *f
	initChild(t, cf, flags, stk, tls)
	// swtch pops its saved frame pointer (and on arm64 the link register)
	// and returns into trapReturn with SP at the frame.
	sp := uintptr(unsafe.Pointer(cf)) - 16
	poke(sp, 0)
	poke(sp+8, trapReturnPC())
	t.ksp = sp
	t.tid = nextTID
	nextTID++
	t.deadline = never
	t.altSP, t.altFlags, t.altSize = 0, ssDisable, 0
	t.sigDepth = 0
	t.state = threadRunnable
	threadsCreated++
	return t.tid
}

func exitThread() {
	t := current()
	t.state = threadFree
	schedule(t)
	fatal("an exited thread resumed")
}

// yield lets every other runnable thread run once before t continues.
func yield() {
	t := current()
	expire(nanotime())
	if next := pickAfter(t); next != nil && next != t {
		swtch(t, next)
	}
}

// block parks the current thread until it is woken or its deadline passes;
// it reports whether the deadline passed.
func block(wait, addr uintptr, deadline uint64) (timedOut bool) {
	t := current()
	t.state = threadBlocked
	t.wait, t.addr, t.deadline, t.timedOut = wait, addr, deadline, false
	schedule(t)
	return t.timedOut
}

func wake(t *thread) {
	t.state = threadRunnable
	t.deadline = never
}

// schedule runs other threads until one of them (or a deadline) makes a
// thread runnable, and switches to it. t is the current thread, no longer
// runnable.
func schedule(t *thread) {
	for {
		now := nanotime()
		expire(now)
		if next := pickAfter(t); next != nil {
			if next != t {
				swtch(t, next)
			}
			return
		}
		earliest := never
		for i := range threads {
			if u := &threads[i]; u.state == threadBlocked && u.deadline < earliest {
				earliest = u.deadline
			}
		}
		if earliest == never {
			fatal("deadlock: every thread waits with no deadline")
		}
		idle(earliest - now)
	}
}

// pickAfter returns the first runnable thread after t in round-robin order,
// t itself last.
func pickAfter(t *thread) *thread {
	i := threadIndex(t)
	for n := 1; n <= maxThreads; n++ {
		u := &threads[(i+n)%maxThreads]
		if u.state == threadRunnable {
			return u
		}
	}
	return nil
}

// expire wakes every blocked thread whose deadline has passed.
func expire(now uint64) {
	for i := range threads {
		if u := &threads[i]; u.state == threadBlocked && u.deadline <= now {
			wake(u)
			u.timedOut = true
		}
	}
}

// idleNS is the time spent in idle, for Stats: how much of the CPU the
// program left unused.
var idleNS uint64

// idle waits for up to ns nanoseconds in the firmware. Nothing but a
// deadline can wake a thread while every thread waits, so a plain Stall is
// enough; it is capped so the firmware's own events keep running.
func idle(ns uint64) {
	start := nanotime()
	us := ns / 1000
	if us > 10000 {
		us = 10000
	}
	if us == 0 {
		us = 1
	}
	stall(uintptr(us))
	idleNS += nanotime() - start
}

func nanosleep(req uintptr) uintptr {
	d := timespecNS(req)
	block(waitSleep, 0, nanotime()+d)
	return 0
}

func futex(addr, op, val, timeout uintptr) uintptr {
	const futexWait, futexWake, cmdMask = 0, 1, 0x7f
	switch op & cmdMask {
	case futexWait:
		if peek32(addr) != uint32(val) {
			return errno(eagain)
		}
		deadline := never
		if timeout != 0 {
			deadline = nanotime() + timespecNS(timeout)
		}
		if block(waitFutex, addr, deadline) {
			return errno(etimed)
		}
		return 0
	case futexWake:
		n := uintptr(0)
		for i := range threads {
			u := &threads[i]
			if n < val && u.state == threadBlocked && u.wait == waitFutex && u.addr == addr {
				wake(u)
				n++
			}
		}
		return n
	}
	return errno(enosys)
}

// wakeEpollWaiters makes every thread blocked in epoll_pwait recheck.
func wakeEpollWaiters() {
	for i := range threads {
		if u := &threads[i]; u.state == threadBlocked && u.wait == waitEpoll {
			wake(u)
		}
	}
}

func timespecNS(ts uintptr) uint64 {
	sec, nsec := int64(peek(ts)), int64(peek(ts+8))
	if sec < 0 || nsec < 0 {
		return 0
	}
	if sec > 1<<33 {
		return 1 << 63
	}
	return uint64(sec)*1e9 + uint64(nsec)
}
