package nic

import (
	"errors"
	"fmt"
	"net"

	"github.com/ociboot/ociboot/nic/virtio"
	"github.com/ociboot/ociboot/uefi"
)

// snpTxBuffers is how many frames may be in the firmware's hands at once.
const snpTxBuffers = 64

// snpBufSize holds the largest Ethernet frame with a VLAN tag.
const snpBufSize = 1536

// SNP drives a card through the firmware's Simple Network Protocol: the
// fallback where no virtio-net function can be taken over.
type SNP struct {
	snp  *uefi.SNP
	mac  net.HardwareAddr
	mtu  int
	max  int
	tx   uintptr   // snpTxBuffers × snpBufSize bytes of firmware pages
	free []uintptr // transmit buffers we own
	busy int       // transmit buffers the firmware holds

	oversize int // received frames dropped for not fitting a buffer
}

// OpenSNP takes the first Simple Network Protocol instance exclusively,
// which stops the firmware's network stack on it, and brings it to the
// initialized state with unicast and broadcast reception.
func OpenSNP() (*SNP, error) {
	handles, err := uefi.LocateHandles(&uefi.SimpleNetworkProtocolGUID)
	if err != nil {
		return nil, fmt.Errorf("nic: listing Simple Network Protocols: %w", err)
	}
	if len(handles) == 0 {
		return nil, errors.New("nic: the firmware offers no Simple Network Protocol")
	}
	var errs []error
	for _, h := range handles {
		s, err := openSNP(h)
		if err == nil {
			return s, nil
		}
		errs = append(errs, err)
	}
	return nil, fmt.Errorf("nic: no usable Simple Network Protocol among %d: %w", len(handles), errors.Join(errs...))
}

func openSNP(h uefi.Handle) (*SNP, error) {
	p, err := uefi.OpenSNP(h, uefi.OpenExclusive)
	if err != nil {
		return nil, fmt.Errorf("nic: taking SNP %#x from the firmware: %w", uintptr(h), err)
	}
	fail := func(err error) (*SNP, error) {
		p.Close()
		return nil, errors.Join(fmt.Errorf("nic: bringing up SNP %#x: %w", uintptr(h), err), giveBack(h))
	}
	m := p.Mode()
	if m.State == uefi.SNPStopped {
		if err := p.Start(); err != nil {
			return fail(err)
		}
	}
	if m.State == uefi.SNPStarted {
		if err := p.Initialize(); err != nil {
			return fail(err)
		}
	}
	if m.HwAddressSize != 6 || m.MediaHeaderSize != 14 {
		return fail(fmt.Errorf("not Ethernet (address %d bytes, header %d)", m.HwAddressSize, m.MediaHeaderSize))
	}
	want := uint32(uefi.SNPReceiveUnicast | uefi.SNPReceiveBroadcast)
	if m.ReceiveFilterSetting&want != want {
		if err := p.SetReceiveFilters(want&m.ReceiveFilterMask, 0); err != nil {
			return fail(err)
		}
	}
	tx, err := uefi.AllocatePages(snpTxBuffers * snpBufSize)
	if err != nil {
		return fail(err)
	}
	s := &SNP{snp: p, mac: p.MAC(), mtu: int(m.MaxPacketSize), tx: tx}
	s.max = min(s.mtu+14, snpBufSize)
	if s.max < 60 {
		return fail(fmt.Errorf("it reports a maximum packet of %d bytes", m.MaxPacketSize))
	}
	for i := 0; i < snpTxBuffers; i++ {
		s.free = append(s.free, tx+uintptr(i*snpBufSize))
	}
	return s, nil
}

// MAC is the interface's station address.
func (s *SNP) MAC() net.HardwareAddr { return s.mac }

// MTU is the interface's maximum packet size.
func (s *SNP) MTU() int { return s.mtu }

// MaxFrame is the size of receive buffers: more than the MTU plus the
// Ethernet header, because some SNPs (iPXE's) hand over full-size frames
// with trailing bytes and refuse a buffer of exactly MTU+14.
func (s *SNP) MaxFrame() int { return snpBufSize }

// status calls GetStatus once, taking back the transmit buffer it returns,
// if any; every GetStatus must go through here or a buffer is lost.
func (s *SNP) status() (reclaimed bool, err error) {
	buf, err := s.snp.GetStatus()
	if err != nil || buf == 0 {
		return false, err
	}
	if buf < s.tx || buf >= s.tx+snpTxBuffers*snpBufSize || (buf-s.tx)%snpBufSize != 0 {
		return false, fmt.Errorf("nic: SNP returned transmit buffer %#x that is not ours", buf)
	}
	s.free = append(s.free, buf)
	s.busy--
	return true, nil
}

// reclaim takes back the transmit buffers the firmware has finished with.
func (s *SNP) reclaim() error {
	for s.busy > 0 {
		if ok, err := s.status(); !ok {
			return err
		}
	}
	return nil
}

// Transmit copies each frame into a firmware-owned buffer and queues it.
func (s *SNP) Transmit(frames [][]byte) (int, error) {
	if err := s.reclaim(); err != nil {
		return 0, err
	}
	for i, f := range frames {
		if len(f) < 14 || len(f) > s.max {
			return i, fmt.Errorf("nic: SNP frame of %d bytes (14..%d): %w", len(f), s.max, virtio.ErrFrameSize)
		}
		if len(s.free) == 0 {
			return i, nil
		}
		buf := s.free[len(s.free)-1]
		copy(uefi.Memory(buf, snpBufSize), f)
		switch st := s.snp.Transmit(buf, len(f)); st {
		case uefi.Success:
			s.free = s.free[:len(s.free)-1]
			s.busy++
		case uefi.NotReady:
			return i, nil
		default:
			return i, fmt.Errorf("nic: SNP Transmit: %w", st)
		}
	}
	return len(frames), nil
}

// Receive takes waiting frames, one firmware call each.
func (s *SNP) Receive(bufs [][]byte) (int, error) {
	for i := range bufs {
		b := bufs[i][:cap(bufs[i])]
		n, st := s.snp.Receive(b)
		switch st {
		case uefi.Success:
			bufs[i] = b[:n]
		case uefi.NotReady:
			return i, nil
		case uefi.BufferTooSmall:
			// The frame stays queued; drop it through a scratch buffer so it
			// does not block the queue for good.
			s.oversize++
			scratch := make([]byte, n)
			s.snp.Receive(scratch)
			return i, nil
		default:
			return i, fmt.Errorf("nic: SNP Receive: %w", st)
		}
	}
	return len(bufs), nil
}

// LinkUp reports media presence where the interface can tell.
func (s *SNP) LinkUp() bool {
	m := s.snp.Mode()
	if !m.MediaPresentSupported {
		return true
	}
	s.status() // refreshes MediaPresent
	return m.MediaPresent
}

// Close shuts the interface down and gives it back to the firmware's stack.
// Transmit buffers still held by the interface are leaked on purpose: it
// may still read them.
func (s *SNP) Close() error {
	s.reclaim()
	err := s.snp.Shutdown()
	if serr := s.snp.Stop(); err == nil {
		err = serr
	}
	if cerr := s.snp.Close(); err == nil {
		err = cerr
	}
	err = errors.Join(err, giveBack(s.snp.Handle))
	if s.busy == 0 {
		uefi.FreePages(s.tx, snpTxBuffers*snpBufSize)
	}
	return err
}

// Oversize counts received frames dropped because they exceeded MaxFrame.
func (s *SNP) Oversize() int { return s.oversize }

func (s *SNP) String() string {
	return fmt.Sprintf("firmware Simple Network Protocol on handle %#x", uintptr(s.snp.Handle))
}
