//go:build linux

package bed

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
)

// sysSetns is setns(2)'s number; package syscall does not define it.
var sysSetns = map[string]uintptr{"amd64": 308, "arm64": 268, "riscv64": 268, "loong64": 268, "386": 346}

// inNetns runs fn on an OS thread that has joined the named network
// namespace. Sockets fn creates belong to that namespace for life, whatever
// thread uses them later. The thread returns to its own namespace before
// it goes back to the runtime; if that fails it stays locked, so the
// runtime retires it (or, on the main thread, parks it) and no other
// goroutine ever runs in the namespace.
func inNetns(ns string, fn func() error) error {
	nr, ok := sysSetns[runtime.GOARCH]
	if !ok {
		return fmt.Errorf("bed: setns: unknown system call number on %s", runtime.GOARCH)
	}
	setns := func(f *os.File) error {
		if _, _, errno := syscall.RawSyscall(nr, f.Fd(), syscall.CLONE_NEWNET, 0); errno != 0 {
			return errno
		}
		return nil
	}
	target, err := os.Open("/run/netns/" + ns)
	if err != nil {
		return fmt.Errorf("bed: opening namespace %s: %w", ns, err)
	}
	defer target.Close()
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		home, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			done <- fmt.Errorf("bed: opening this thread's namespace: %w", err)
			return
		}
		defer home.Close()
		if err := setns(target); err != nil {
			runtime.UnlockOSThread()
			done <- fmt.Errorf("bed: entering namespace %s: %w", ns, err)
			return
		}
		err = fn()
		if setns(home) == nil {
			runtime.UnlockOSThread()
		}
		done <- err
	}()
	return <-done
}

// dialIn dials addr from inside the namespace.
func dialIn(ctx context.Context, ns, network, addr string) (net.Conn, error) {
	var c net.Conn
	err := inNetns(ns, func() error {
		var d net.Dialer
		var err error
		c, err = d.DialContext(ctx, network, addr)
		return err
	})
	return c, err
}

// listenIn listens on addr inside the namespace.
func listenIn(ns, network, addr string) (net.Listener, error) {
	var l net.Listener
	err := inNetns(ns, func() error {
		var err error
		l, err = net.Listen(network, addr)
		return err
	})
	return l, err
}

// ipCmd runs ip with args, returning its output.
func ipCmd(args ...string) (string, error) {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// namespaces lists the named network namespaces.
func namespaces() ([]string, error) {
	out, err := ipCmd("netns", "list")
	if err != nil {
		return nil, err
	}
	var names []string
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) > 0 {
			names = append(names, f[0])
		}
	}
	return names, nil
}

// netnsPIDs lists the processes inside the namespace.
func netnsPIDs(ns string) ([]int, error) {
	out, err := ipCmd("netns", "pids", ns)
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, f := range strings.Fields(out) {
		if p, err := strconv.Atoi(f); err == nil {
			pids = append(pids, p)
		}
	}
	return pids, nil
}

// removeNetns kills what still runs inside a namespace this package made,
// then deletes it (which removes its tap device).
func removeNetns(ns string) error {
	pids, _ := netnsPIDs(ns)
	for _, p := range pids {
		if p == os.Getpid() {
			continue // never this process: a thread of it may have visited
		}
		syscall.Kill(p, syscall.SIGKILL)
	}
	_, err := ipCmd("netns", "del", ns)
	return err
}

// namePrefix marks this package's namespaces; the creating process's PID
// follows it, so leftovers of a dead run can be told from live beds of
// parallel test processes.
const namePrefix = "ocibed-"

// removeLeftovers deletes namespaces left by bed processes that are gone.
func removeLeftovers(logf func(string, ...any)) {
	names, err := namespaces()
	if err != nil {
		return
	}
	for _, ns := range names {
		rest, ok := strings.CutPrefix(ns, namePrefix)
		if !ok {
			continue
		}
		pidStr, _, _ := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidStr)
		if err != nil || pid <= 0 {
			continue
		}
		if err := syscall.Kill(pid, 0); err != syscall.ESRCH {
			continue // its owner still runs
		}
		if err := removeNetns(ns); err != nil {
			logf("bed: removing the leftover namespace %s: %v", ns, err)
		} else {
			logf("bed: removed the leftover namespace %s of the dead process %d", ns, pid)
		}
	}
}

// PacketSocket opens a raw AF_PACKET socket bound to the bed's tap device
// inside its namespace, for tests that exchange Ethernet frames with the
// guest directly. The caller closes the returned file.
func (b *Bed) PacketSocket() (*os.File, error) {
	if b.Netns == "" {
		return nil, fmt.Errorf("bed: raw frames need the namespace bed, not user networking")
	}
	var f *os.File
	err := inNetns(b.Netns, func() error {
		proto := int(htons(syscall.ETH_P_ALL))
		fd, err := syscall.Socket(syscall.AF_PACKET, syscall.SOCK_RAW, proto)
		if err != nil {
			return fmt.Errorf("bed: packet socket: %w", err)
		}
		ifi, err := net.InterfaceByName(TapName)
		if err != nil {
			syscall.Close(fd)
			return err
		}
		if err := syscall.Bind(fd, &syscall.SockaddrLinklayer{Protocol: htons(syscall.ETH_P_ALL), Ifindex: ifi.Index}); err != nil {
			syscall.Close(fd)
			return fmt.Errorf("bed: binding the packet socket to %s: %w", TapName, err)
		}
		f = os.NewFile(uintptr(fd), "packet:"+TapName)
		return nil
	})
	return f, err
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }
