// Package efi attaches an observe.Logger to the firmware's devices: ConOut,
// serial ports that ConOut does not already reach, and the block-IO ring on
// the first disk that carries ociboot's scratch header.
//
// The ring also receives what efirt printed itself (its notes, the
// runtime's fd 2): efirt captures the console, and the ring's sink copies
// the bytes that did not come through the logger before each write. The
// crash area of the same disk is registered with efirt, which writes there
// at exit what the console showed after the ring's last flush — the text
// of a panic, which no Go code is left to log.
//
// The serial question: on OVMF and most servers ConOut already is the
// serial port (a terminal driver on top of its Serial IO), so writing to
// Serial IO as well would print everything twice. A port is therefore
// teed only when its device path is not part of any instance of the
// firmware's ConOut variable (SerialAuto), or when asked (SerialOn). A
// firmware whose ConOut variable cannot be read gets no serial tee in
// SerialAuto, since there is no telling.
package efi

import (
	"errors"
	"fmt"
	"os"

	"github.com/ociboot/ociboot/efirt"
	"github.com/ociboot/ociboot/observe"
	"github.com/ociboot/ociboot/uefi"
)

// SerialMode says which Serial IO ports get a copy of the log.
type SerialMode int

const (
	SerialAuto SerialMode = iota // ports ConOut does not reach
	SerialOn                     // every port
	SerialOff                    // none
)

// Options configure Attach.
type Options struct {
	Serial SerialMode
	// NoRing skips the search for a scratch disk.
	NoRing bool
}

// Attached is what Attach found.
type Attached struct {
	Ring     *observe.Ring // nil without a scratch disk
	RingDisk uefi.Handle
	Serial   []uefi.Handle
}

// Attach adds ConOut, the serial ports opts selects and the scratch disk's
// ring to l, then logs what it found, so every sink, the ring included,
// starts with the same lines.
func Attach(l *observe.Logger, opts Options) Attached {
	var a Attached
	var notes []string
	var ringErr error
	if !opts.NoRing {
		a.Ring, a.RingDisk, ringErr = FindRing()
	}
	l.Attach(observe.Sink{Name: "ConOut", W: os.Stdout, Live: true})
	if opts.Serial != SerialOff {
		a.Serial, notes = attachSerial(l, opts.Serial)
	}
	if a.Ring != nil {
		l.Attach(observe.Sink{Name: "ring", W: &ringSink{r: a.Ring, buf: make([]byte, 512)}})
		if err := registerExit(a.Ring, a.RingDisk); err != nil {
			notes = append(notes, fmt.Sprintf("observe: a crash would not reach the scratch disk: %v", err))
		}
	}
	for _, n := range notes {
		l.Logf("%s", n)
	}
	switch {
	case opts.NoRing:
	case ringErr != nil:
		l.Warnf("observe: no block-IO ring: %v", ringErr)
	case a.Ring == nil:
		l.Logf("observe: no scratch disk attached; the log is not kept on disk")
	default:
		hd := a.Ring.Header()
		l.Logf("observe: scratch disk %#x: ring of %d units of %d bytes, run %d", uintptr(a.RingDisk), hd.Units, hd.UnitSize, a.Ring.Run())
	}
	return a
}

// FindRing opens the ring on the first block device whose first block
// carries the scratch header. Every other device is only read (its block 0),
// never written. It returns a nil ring when there is no scratch disk.
func FindRing() (*observe.Ring, uefi.Handle, error) {
	hs, err := uefi.LocateHandles(&uefi.BlockIoProtocolGUID)
	if err != nil {
		return nil, 0, err
	}
	var errs []error
	for _, h := range hs {
		dev, err := uefi.OpenBlockIo(h)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		m := dev.Media()
		if !m.MediaPresent || m.ReadOnly || m.BlockSize == 0 {
			continue
		}
		ring, err := observe.OpenRing(dev)
		if err == nil {
			return ring, h, nil
		}
		dev.Close()
		if !errors.Is(err, observe.ErrNotScratch) {
			errs = append(errs, fmt.Errorf("disk %#x: %w", uintptr(h), err))
		}
	}
	if len(errs) > 0 {
		return nil, 0, errors.Join(errs...)
	}
	return nil, 0, nil
}

// registerExit gives efirt the ring's crash area for the exit text.
func registerExit(r *observe.Ring, h uefi.Handle) error {
	lba, blocks := r.CrashArea()
	if blocks == 0 {
		return errors.New("the disk has no crash area (format version 1; recreate it with ociboot logs init)")
	}
	iface, err := uefi.HandleProtocol(h, &uefi.BlockIoProtocolGUID)
	if err != nil {
		return err
	}
	dev, err := uefi.OpenBlockIo(h)
	if err != nil {
		return err
	}
	m := dev.Media()
	return efirt.SetExitDisk(efirt.ExitDisk{
		BlockIo: iface, MediaID: m.MediaID, BlockSize: m.BlockSize,
		LBA: lba, Blocks: blocks,
		Generation: r.Header().Generation, Run: r.Run(),
	})
}

// ringSink is the ring as the logger's sink: before the logger's text it
// appends what efirt printed since, so the ring keeps the console's order,
// and after each flush it tells efirt how far the disk holds the console.
type ringSink struct {
	r   *observe.Ring
	pos uint64 // efirt's console position copied up to
	buf []byte
}

func (s *ringSink) Write(p []byte) (int, error) {
	if err := s.drain(); err != nil {
		return 0, err
	}
	return s.r.Write(p)
}

func (s *ringSink) Flush() error {
	if err := s.drain(); err != nil {
		return err
	}
	pos := efirt.ConsolePos()
	if err := s.r.Flush(); err != nil {
		return err
	}
	efirt.ConsoleSaved(pos)
	return nil
}

// drain copies efirt's own console output into the ring.
func (s *ringSink) drain() error {
	for {
		n, next, lost := efirt.ReadConsole(s.pos, s.buf)
		s.pos = next
		if lost > 0 {
			note := fmt.Sprintf("[observe: %d bytes of efirt's console output were lost before reaching the ring]\n", lost)
			if _, err := s.r.Write([]byte(note)); err != nil {
				return err
			}
		}
		if n == 0 {
			return nil
		}
		if _, err := s.r.Write(s.buf[:n]); err != nil {
			return err
		}
	}
}

// attachSerial tees the log to the serial ports mode selects and returns
// them with notes on what it decided.
func attachSerial(l *observe.Logger, mode SerialMode) (used []uefi.Handle, notes []string) {
	hs, err := uefi.LocateHandles(&uefi.SerialIoProtocolGUID)
	if err != nil || len(hs) == 0 {
		return nil, nil
	}
	var conOut [][]uefi.DevicePathNode
	if mode == SerialAuto {
		v, err := uefi.GetVariable("ConOut", &uefi.GlobalVariableGUID)
		if err == nil {
			conOut, err = uefi.ParseDevicePaths(v)
		}
		if err != nil {
			return nil, []string{fmt.Sprintf("observe: %d serial ports, not teed: cannot tell whether ConOut reaches them (%v)", len(hs), err)}
		}
	}
	for i, h := range hs {
		if mode == SerialAuto && onConOut(h, conOut) {
			notes = append(notes, fmt.Sprintf("observe: serial port %d is on ConOut already; not teed", i))
			continue
		}
		port, err := uefi.OpenSerialIo(h)
		if err != nil {
			notes = append(notes, fmt.Sprintf("observe: serial port %d: %v", i, err))
			continue
		}
		l.Attach(observe.Sink{Name: fmt.Sprintf("serial%d", i), W: crlf{port}, Live: true})
		used = append(used, h)
		notes = append(notes, fmt.Sprintf("observe: serial port %d (%d baud) teed", i, port.Mode().BaudRate))
	}
	return used, notes
}

// onConOut tells whether the port's device path leads one of ConOut's
// instances. A port without a device path counts as on ConOut: unknown.
func onConOut(h uefi.Handle, conOut [][]uefi.DevicePathNode) bool {
	b, err := uefi.DevicePathOf(h)
	if err != nil {
		return true
	}
	p, err := uefi.ParseDevicePaths(b)
	if err != nil || len(p) == 0 {
		return true
	}
	for _, inst := range conOut {
		if uefi.DevicePathHasPrefix(inst, p[0]) {
			return true
		}
	}
	return false
}

// crlf turns each "\n" into "\r\n" on the way to a serial terminal.
type crlf struct {
	w interface{ Write([]byte) (int, error) }
}

func (c crlf) Write(p []byte) (int, error) {
	out := make([]byte, 0, len(p)+16)
	for _, b := range p {
		if b == '\n' {
			out = append(out, '\r')
		}
		out = append(out, b)
	}
	if _, err := c.w.Write(out); err != nil {
		return 0, err
	}
	return len(p), nil
}
