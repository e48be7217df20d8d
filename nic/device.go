package nic

import "net"

// Device is a network card as the poller drives it: whole Ethernet frames
// (header onward, no FCS) in and out, never blocking. One goroutine owns a
// Device; implementations are not safe for concurrent use.
type Device interface {
	// MAC is the station address frames are sent from.
	MAC() net.HardwareAddr
	// MTU is the largest IP packet a frame carries.
	MTU() int
	// MaxFrame is the largest frame Transmit accepts and Receive returns.
	MaxFrame() int
	// Transmit queues frames and returns how many it took; fewer than
	// len(frames) with a nil error means the queue is full for now.
	Transmit(frames [][]byte) (int, error)
	// Receive fills bufs (each resliced to its frame) with waiting frames
	// and returns how many.
	Receive(bufs [][]byte) (int, error)
	// LinkUp reports the link state.
	LinkUp() bool
	// Close resets the device and gives it back to the firmware.
	Close() error
	// String says which path drives the card, for the console.
	String() string
}
