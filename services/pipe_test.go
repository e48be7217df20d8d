package services

import (
	"net"
	"os"
	"sync"
	"time"
)

// memPacketConn is one end of an in-memory datagram link: what one end
// writes, the other reads, with the writer's address as the source. Like
// UDP, a full queue drops datagrams. Read deadlines work as on a socket.
type memPacketConn struct {
	local net.Addr
	peer  *memPacketConn
	in    chan memPacket

	closeOnce sync.Once
	closed    chan struct{}

	mu       sync.Mutex
	deadline time.Time
	changed  chan struct{} // closed and replaced on every SetReadDeadline
}

type memPacket struct {
	data     []byte
	from, to net.Addr
}

// memPacketPair returns two connected ends with the given local addresses.
func memPacketPair(a, b net.Addr) (*memPacketConn, *memPacketConn) {
	x := &memPacketConn{local: a, in: make(chan memPacket, 64), closed: make(chan struct{}), changed: make(chan struct{})}
	y := &memPacketConn{local: b, in: make(chan memPacket, 64), closed: make(chan struct{}), changed: make(chan struct{})}
	x.peer, y.peer = y, x
	return x, y
}

func (c *memPacketConn) ReadFrom(b []byte) (int, net.Addr, error) {
	p, err := c.readPacket()
	if err != nil {
		return 0, nil, err
	}
	return copy(b, p.data), p.from, nil
}

// readPacket also reports the destination the writer chose.
func (c *memPacketConn) readPacket() (memPacket, error) {
	for {
		c.mu.Lock()
		deadline, changed := c.deadline, c.changed
		c.mu.Unlock()
		var expired <-chan time.Time
		var t *time.Timer
		if !deadline.IsZero() {
			d := time.Until(deadline)
			if d <= 0 {
				return memPacket{}, os.ErrDeadlineExceeded
			}
			t = time.NewTimer(d)
			expired = t.C
		}
		p, err, again := c.wait(expired, changed)
		if t != nil {
			t.Stop()
		}
		if !again {
			return p, err
		}
	}
}

func (c *memPacketConn) wait(expired <-chan time.Time, changed chan struct{}) (memPacket, error, bool) {
	select {
	case p := <-c.in:
		return p, nil, false
	case <-c.closed:
		return memPacket{}, net.ErrClosed, false
	case <-expired:
		return memPacket{}, os.ErrDeadlineExceeded, false
	case <-changed:
		return memPacket{}, nil, true
	}
}

func (c *memPacketConn) WriteTo(b []byte, to net.Addr) (int, error) {
	select {
	case <-c.closed:
		return 0, net.ErrClosed
	default:
	}
	select {
	case c.peer.in <- memPacket{data: append([]byte(nil), b...), from: c.local, to: to}:
	default: // dropped, as a full socket buffer would
	}
	return len(b), nil
}

func (c *memPacketConn) Close() error {
	c.closeOnce.Do(func() { close(c.closed) })
	return nil
}

func (c *memPacketConn) LocalAddr() net.Addr { return c.local }

func (c *memPacketConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	c.deadline = t
	close(c.changed)
	c.changed = make(chan struct{})
	c.mu.Unlock()
	return nil
}

func (c *memPacketConn) SetDeadline(t time.Time) error      { return c.SetReadDeadline(t) }
func (c *memPacketConn) SetWriteDeadline(t time.Time) error { return nil }
