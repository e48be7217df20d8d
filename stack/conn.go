package stack

import (
	"io"
	"net"
	"os"
	"syscall"
	"time"
)

// TCPConn is a TCP connection as a net.Conn. Its deadlines work as the net
// package's do (crypto/tls and net/http rely on them).
type TCPConn struct{ c *tcpConn }

var _ net.Conn = (*TCPConn)(nil)

func (t *TCPConn) opErr(op string, err error) error {
	return &net.OpError{Op: op, Net: "tcp", Source: t.LocalAddr(), Addr: t.RemoteAddr(), Err: err}
}

func expired(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// Read reads received data; io.EOF once the peer closed and all is read.
func (t *TCPConn) Read(p []byte) (int, error) {
	c := t.c
	c.readMu.Lock()
	defer c.readMu.Unlock()
	for {
		if c.closed.Load() {
			return 0, t.opErr("read", net.ErrClosed)
		}
		dl := c.rd.wait()
		if expired(dl) {
			return 0, t.opErr("read", os.ErrDeadlineExceeded)
		}
		if len(p) == 0 {
			return 0, nil
		}
		if err := c.error(); err != nil {
			return 0, t.opErr("read", err) // a reset discards what was unread
		}
		if n := c.rcv.read(p); n > 0 {
			// A window we advertised small has opened: have the actor say so.
			if c.wndSmall.Load() && c.rcv.free() >= c.rcv.size()/2 && c.wndSmall.CompareAndSwap(true, false) {
				c.wndUpdate.Store(true)
				signal(c.kick)
			}
			return n, nil
		}
		if c.rcvEOF.Load() {
			return 0, io.EOF
		}
		select {
		case <-c.dead:
			if c.rcv.used() > 0 || c.rcvEOF.Load() {
				continue
			}
			if err := c.error(); err != nil {
				return 0, t.opErr("read", err)
			}
			return 0, io.EOF
		default:
		}
		select {
		case <-c.rcvSignal:
		case <-c.dead:
		case <-c.closedCh:
		case <-dl:
		}
	}
}

// Write queues p for sending, blocking while the send buffer is full.
func (t *TCPConn) Write(p []byte) (int, error) {
	c := t.c
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	total := 0
	for {
		if c.closed.Load() {
			return total, t.opErr("write", net.ErrClosed)
		}
		dl := c.wd.wait()
		if expired(dl) {
			return total, t.opErr("write", os.ErrDeadlineExceeded)
		}
		if err := c.error(); err != nil {
			return total, t.opErr("write", err)
		}
		if c.wrClosed.Load() || expired(c.dead) {
			return total, t.opErr("write", syscall.EPIPE)
		}
		if len(p) == 0 {
			return total, nil
		}
		n := c.snd.write(p)
		if n > 0 {
			total += n
			p = p[n:]
			signal(c.kick)
			continue
		}
		select {
		case <-c.sndSignal:
		case <-c.dead:
		case <-c.closedCh:
		case <-dl:
		}
	}
}

// Close closes the connection: queued data and then a FIN go out in the
// background. Unread received data makes it a reset instead, so the peer
// learns that data was lost (RFC 9293 3.10.4).
func (t *TCPConn) Close() error {
	c := t.c
	if c.closed.Swap(true) {
		return t.opErr("close", net.ErrClosed)
	}
	if c.rcv.used() > 0 {
		c.rstOnClose.Store(true)
	}
	c.wrClosed.Store(true)
	close(c.closedCh)
	signal(c.kick)
	return nil
}

// CloseWrite sends a FIN after the queued data; reading goes on.
func (t *TCPConn) CloseWrite() error {
	if t.c.closed.Load() {
		return t.opErr("close", net.ErrClosed)
	}
	t.c.wrClosed.Store(true)
	signal(t.c.kick)
	return nil
}

func (t *TCPConn) LocalAddr() net.Addr  { return net.TCPAddrFromAddrPort(t.c.laddr) }
func (t *TCPConn) RemoteAddr() net.Addr { return net.TCPAddrFromAddrPort(t.c.raddr) }

func (t *TCPConn) SetDeadline(d time.Time) error {
	t.c.rd.set(d)
	t.c.wd.set(d)
	return nil
}
func (t *TCPConn) SetReadDeadline(d time.Time) error  { t.c.rd.set(d); return nil }
func (t *TCPConn) SetWriteDeadline(d time.Time) error { t.c.wd.set(d); return nil }
