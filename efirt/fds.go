package efirt

// File descriptors: 0-2 are the console; the rest are eventfds and epoll
// instances, which is all the runtime's netpoller needs.

const (
	maxFDs      = 64
	maxInterest = 16
	fdNone      = 0
	fdEvent     = 1
	fdEpoll     = 2
	epollIn     = 0x1
	epollCtlAdd = 1
	epollCtlDel = 2
	epollCtlMod = 3
)

type interest struct {
	fd, events uintptr
	data       uint64
}

type fdesc struct {
	kind     uintptr
	count    uint64 // eventfd counter
	interest [maxInterest]interest
	nint     int
}

var fds [maxFDs]fdesc

func validFD(fd uintptr) bool { return fd <= 2 || (fd < maxFDs && fds[fd].kind != fdNone) }

func isEventFD(fd uintptr) bool { return fd < maxFDs && fds[fd].kind == fdEvent }

func newFD(kind uintptr) uintptr {
	for fd := uintptr(3); fd < maxFDs; fd++ {
		if fds[fd].kind == fdNone {
			fds[fd] = fdesc{kind: kind}
			return fd
		}
	}
	return errno(emfile)
}

func closeFD(fd uintptr) uintptr {
	if fd <= 2 {
		return 0
	}
	if !validFD(fd) {
		return errno(ebadf)
	}
	fds[fd].kind = fdNone
	return 0
}

func eventfd(initval uintptr) uintptr {
	fd := newFD(fdEvent)
	if int(fd) >= 0 {
		fds[fd].count = uint64(initval)
	}
	return fd
}

func eventfdWrite(fd, buf, n uintptr) uintptr {
	if n < 8 {
		return errno(einval)
	}
	fds[fd].count += uint64(peek(buf))
	wakeEpollWaiters()
	return 8
}

func eventfdRead(fd, buf, n uintptr) uintptr {
	if n < 8 {
		return errno(einval)
	}
	if fds[fd].count == 0 {
		return errno(eagain) // the runtime always opens it non-blocking
	}
	poke(buf, uintptr(fds[fd].count))
	fds[fd].count = 0
	return 8
}

func epollCreate() uintptr { return newFD(fdEpoll) }

func epollCtl(epfd, op, fd, ev uintptr) uintptr {
	if epfd >= maxFDs || fds[epfd].kind != fdEpoll {
		return errno(ebadf)
	}
	if !validFD(fd) {
		return errno(ebadf)
	}
	e := &fds[epfd]
	for i := 0; i < e.nint; i++ {
		if e.interest[i].fd != fd {
			continue
		}
		switch op {
		case epollCtlAdd:
			return errno(eexist)
		case epollCtlDel:
			e.interest[i] = e.interest[e.nint-1]
			e.nint--
			return 0
		case epollCtlMod:
			e.interest[i].events, e.interest[i].data = uintptr(peek32(ev)), epollData(ev)
			return 0
		}
		return errno(einval)
	}
	if op != epollCtlAdd {
		return errno(enoent)
	}
	if e.nint == maxInterest {
		return errno(enomem)
	}
	e.interest[e.nint] = interest{fd, uintptr(peek32(ev)), epollData(ev)}
	e.nint++
	return 0
}

// epollWait reports ready eventfds; with none ready it blocks until an
// eventfd is written or the timeout (ms, -1 = forever) passes.
func epollWait(epfd, events, maxEvents uintptr, timeout int32) uintptr {
	if epfd >= maxFDs || fds[epfd].kind != fdEpoll || maxEvents == 0 {
		return errno(einval)
	}
	deadline := never
	if timeout >= 0 {
		deadline = nanotime() + uint64(timeout)*1e6
	}
	for {
		n := epollReady(&fds[epfd], events, maxEvents)
		if n > 0 || timeout == 0 {
			return n
		}
		if block(waitEpoll, epfd, deadline) {
			return epollReady(&fds[epfd], events, maxEvents)
		}
	}
}

func epollReady(e *fdesc, events, maxEvents uintptr) uintptr {
	n := uintptr(0)
	for i := 0; i < e.nint && n < maxEvents; i++ {
		in := e.interest[i]
		if in.events&epollIn == 0 || !isEventFD(in.fd) || fds[in.fd].count == 0 {
			continue
		}
		ev := events + n*epollEventSize
		poke32(ev, epollIn)
		putEpollData(ev, in.data)
		n++
	}
	return n
}

// putEpollData stores the 64-bit data word right after the 32-bit events
// (packed, 12-byte events on amd64; on arm64 the word is aligned, at 8).
func putEpollData(ev uintptr, data uint64) {
	b := bytesAt(ev+epollEventSize-8, 8)
	for i := range b {
		b[i] = byte(data >> (8 * i))
	}
}

func epollData(ev uintptr) uint64 {
	var d uint64
	for i, b := range bytesAt(ev+epollEventSize-8, 8) {
		d |= uint64(b) << (8 * i)
	}
	return d
}
