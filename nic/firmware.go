package nic

import (
	"errors"
	"fmt"
	"net"

	"github.com/ociboot/ociboot/nic/virtio"
	"github.com/ociboot/ociboot/uefi"
)

// pciDMA hands out DMA memory through the device's own PCI IO protocol, so
// the firmware maps it for bus mastering (and an IOMMU, where there is one).
type pciDMA struct{ d *uefi.PciIo }

func (m pciDMA) Alloc(size, align int) (virtio.Buffer, error) {
	if align > uefi.PageSize {
		return nil, fmt.Errorf("nic: DMA alignment %d exceeds a page", align)
	}
	return m.d.AllocDMA(size)
}

// Virtio is a virtio-net device taken over from the firmware. It is a
// Device; Net gives the driver's own figures.
type Virtio struct {
	Net *virtio.Net
	pci *uefi.PciIo
	mac net.HardwareAddr
}

// MAC is the device's address. A device that does not report one gets a
// locally administered address made from its PCI IO handle, so two such
// devices in one machine differ.
func (v *Virtio) MAC() net.HardwareAddr { return v.mac }

// MTU is the MTU the device reports, else 1500.
func (v *Virtio) MTU() int { m, _ := v.Net.MTU(); return m }

// MaxFrame is the largest frame the driver moves.
func (v *Virtio) MaxFrame() int { return v.Net.MaxFrame() }

// Transmit queues frames on the transmit ring.
func (v *Virtio) Transmit(frames [][]byte) (int, error) { return v.Net.Transmit(frames) }

// Receive takes frames off the receive ring.
func (v *Virtio) Receive(bufs [][]byte) (int, error) { return v.Net.Receive(bufs) }

// LinkUp reads the device's link status.
func (v *Virtio) LinkUp() bool { return v.Net.LinkUp() }

func (v *Virtio) String() string {
	kind := "modern 1af4:1041"
	if v.Net.Transitional() {
		kind = "transitional 1af4:1000"
	}
	return fmt.Sprintf("virtio-net (%s) over PCI IO, features %v", kind, v.Net.Features())
}

// Summary says what the driver received, for reports: how much came as
// segments larger than the MTU (receive offloads at work) and what it
// dropped.
func (v *Virtio) Summary() string {
	st := v.Net.Stats()
	return fmt.Sprintf("virtio-net received %d frames (%d bytes): %d merged from several buffers, %d partial checksums completed, %d dropped",
		st.RxFrames, st.RxBytes, st.RxMerged, st.RxCsumCompleted, st.RxDrops)
}

// Close resets the device, frees its memory and gives the device back to
// the firmware's drivers.
func (v *Virtio) Close() error {
	err := v.Net.Close()
	if cerr := v.pci.Close(); err == nil {
		err = cerr
	}
	return errors.Join(err, giveBack(v.pci.Handle))
}

// giveBack reconnects the firmware's drivers to h once we let go of it, so
// a chain-loaded program (or the firmware's own network boot) finds the
// card as it was. A handle no driver wants is not an error.
func giveBack(h uefi.Handle) error {
	if err := uefi.ConnectController(h); err != nil && !errors.Is(err, uefi.NotFound) {
		return fmt.Errorf("nic: giving %#x back to the firmware's drivers: %w", uintptr(h), err)
	}
	return nil
}

// OpenVirtio finds the first virtio-net PCI function, takes it from the
// firmware's driver (an exclusive open disconnects it) and starts the
// driver on it.
func OpenVirtio(opts virtio.Options) (*Virtio, error) {
	handles, err := uefi.LocateHandles(&uefi.PciIoProtocolGUID)
	if err != nil {
		return nil, fmt.Errorf("nic: listing PCI functions: %w", err)
	}
	for _, h := range handles {
		probe, err := uefi.OpenPciIo(h, uefi.OpenGetProtocol)
		if err != nil {
			continue
		}
		id, err := probe.ConfigRead(0, 4)
		probe.Close() // the firmware refuses an exclusive open beside our own
		if err != nil || uint16(id) != virtio.VendorID {
			continue
		}
		if uint16(id>>16) != virtio.DeviceIDModern && uint16(id>>16) != virtio.DeviceIDTransitional {
			continue
		}
		if err := releaseFromFirmware(h); err != nil {
			return nil, err
		}
		// A driver that will not let go (iPXE's option ROM refuses the
		// exclusive open) keeps the device: asking it to disconnect outright
		// was measured to tear down its SNP too, leaving no path at all.
		pci, err := uefi.OpenPciIo(h, uefi.OpenExclusive)
		if err != nil {
			return nil, fmt.Errorf("nic: taking PCI function %#x from the firmware: %w", uintptr(h), err)
		}
		n, err := virtio.Open(pci, pciDMA{pci}, opts)
		if err != nil {
			pci.Close()
			gerr := giveBack(h)
			if errors.Is(err, virtio.ErrNotVirtioNet) {
				continue // a virtio device of another kind: not ours to report on
			}
			return nil, errors.Join(fmt.Errorf("nic: starting virtio-net on PCI function %#x: %w", uintptr(h), err), gerr)
		}
		mac, err := n.MAC()
		if err != nil {
			h := uint64(uintptr(h))
			mac = net.HardwareAddr{0x02, 0x0c, byte(h >> 24), byte(h >> 16), byte(h >> 8), byte(h)}
		}
		return &Virtio{Net: n, pci: pci, mac: mac}, nil
	}
	return nil, fmt.Errorf("nic: no virtio-net device among %d PCI functions", len(handles))
}

// releaseFromFirmware stops the firmware's drivers on the children of
// controller h (its SNP and the network stack on top): the firmware's
// virtio-net driver will not stop while they run, so the exclusive open
// that follows could not take the device.
func releaseFromFirmware(h uefi.Handle) error {
	children, err := uefi.ChildHandles(h)
	if err != nil {
		return err
	}
	for _, c := range children {
		if err := uefi.DisconnectController(c); err != nil && !errors.Is(err, uefi.NotFound) {
			return fmt.Errorf("nic: stopping the firmware's drivers on child %#x: %w", uintptr(c), err)
		}
	}
	return nil
}
