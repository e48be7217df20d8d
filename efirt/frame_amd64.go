package efirt

type frame = amd64Frame

// args returns the first five system-call arguments (DI SI DX R10 R8).
func (f *frame) args() (a1, a2, a3, a4, a5 uintptr) { return f.di, f.si, f.dx, f.r10, f.r8 }

func (f *frame) sysno() uintptr { return f.ax }

func (f *frame) setResult(r uintptr) { f.ax = r }

// cloneTLS is clone's tls argument, the fifth on x86-64.
func (f *frame) cloneTLS() uintptr { return f.r8 }

// bootTLS backs the FS base of thread 0 until the runtime installs its own.
var bootTLS [2]uintptr

// initChild makes cf, a copy of the parent's frame, return 0 on stack stk
// in a thread whose FS base is tls (CLONE_SETTLS) or the parent's.
func initChild(t *thread, cf *frame, flags, stk, tls uintptr) {
	const cloneSettls = 0x80000
	cf.ax = 0
	cf.rsp = stk
	if flags&cloneSettls != 0 {
		t.fs = tls
		cf.tls = peek(tls - 8)
	} else {
		t.fs = current().fs
	}
}

// archSyscall serves the system calls only amd64 has.
func archSyscall(f *frame, n, a1, a2 uintptr) (uintptr, bool) {
	if n == sysArchPrctl {
		return archPrctl(f, a1, a2), true
	}
	return 0, false
}

func archPrctl(f *frame, code, addr uintptr) uintptr {
	if code != archSetFS {
		return errno(einval)
	}
	t := current()
	// Hand the old slot back its user value and park the kernel g in the
	// new one, so trapReturn restores the right g at the right place.
	poke(t.fs-8, f.tls)
	t.fs = addr
	setFSBase(addr)
	f.tls = peek(addr - 8)
	poke(addr-8, t.kg)
	return 0
}

// afterForeignCall reloads the thread's FS base: a started image that is
// itself a Go program on efirt points FS at its own (since freed) TLS.
func afterForeignCall() { setFSBase(current().fs) }
