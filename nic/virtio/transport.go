package virtio

import (
	"fmt"
	"time"
)

// PCI configuration space (PCI Local Bus 3.0 §6.1).
const (
	pciVendorID    = 0x00
	pciDeviceID    = 0x02
	pciCommand     = 0x04
	pciStatus      = 0x06
	pciSubsystemID = 0x2e
	pciCapPtr      = 0x34

	pciCommandMemory    = 1 << 1
	pciCommandBusMaster = 1 << 2
	pciStatusCapList    = 1 << 4

	pciCapVendor = 0x09
	// Capabilities live after the 64-byte header and within the 256-byte
	// legacy config space; the two low bits of each pointer are reserved.
	pciCapMin = 0x40
	pciCapMax = 0x100
)

// Identities (§4.1.2): modern devices are 0x1040 + device type; transitional
// ones carry the type in the subsystem ID instead.
const (
	VendorID             = 0x1af4
	DeviceIDModern       = 0x1041
	DeviceIDTransitional = 0x1000
	netDeviceType        = 1
)

// virtio_pci_cap (§4.1.4): cap_vndr, cap_next, cap_len, cfg_type, bar, id,
// padding[2], offset (le32), length (le32); the notify capability appends
// notify_off_multiplier (le32).
const (
	capCfgType    = 3
	capBAR        = 4
	capOffset     = 8
	capLength     = 12
	capMultiplier = 16
	capLen        = 16
	capNotifyLen  = 20

	cfgTypeCommon = 1
	cfgTypeNotify = 2
	cfgTypeISR    = 3
	cfgTypeDevice = 4
	maxBAR        = 5 // bar values 6..255 are reserved and must be ignored
)

// virtio_pci_common_cfg (§4.1.4.3).
const (
	comDeviceFeatureSelect = 0x00
	comDeviceFeature       = 0x04
	comDriverFeatureSelect = 0x08
	comDriverFeature       = 0x0c
	comNumQueues           = 0x12
	comDeviceStatus        = 0x14
	comConfigGeneration    = 0x15
	comQueueSelect         = 0x16
	comQueueSize           = 0x18
	comQueueEnable         = 0x1c
	comQueueNotifyOff      = 0x1e
	comQueueDesc           = 0x20
	comQueueDriver         = 0x28
	comQueueDevice         = 0x30
	comMinLen              = 0x38 // through queue_device; 1.2 fields unused
)

// device_status bits (§2.1).
const (
	statusAcknowledge = 1
	statusDriver      = 2
	statusDriverOK    = 4
	statusFeaturesOK  = 8
	statusNeedsReset  = 64
	statusFailed      = 128
)

// virtio_net_config (§5.1.4).
const (
	netCfgMAC    = 0
	netCfgStatus = 6
	netCfgMTU    = 10

	netStatusLinkUp = 1
)

// region is one virtio structure inside a BAR.
type region struct {
	bar      int
	off, len uint64
	present  bool
}

// transport is the located virtio structures of one PCI function.
type transport struct {
	pci        PCI
	common     region
	notify     region
	notifyMult uint32
	isr        region
	device     region
}

func cfgRead(p PCI, off uint32, size int) (uint32, error) {
	v, err := p.ConfigRead(off, size)
	if err != nil {
		return 0, fmt.Errorf("virtio-net: PCI config read at %#x: %w", off, err)
	}
	return v, nil
}

// identify checks vendor and device ID before the driver touches anything.
func identify(p PCI) (transitional bool, err error) {
	vendor, err := cfgRead(p, pciVendorID, 2)
	if err != nil {
		return false, err
	}
	device, err := cfgRead(p, pciDeviceID, 2)
	if err != nil {
		return false, err
	}
	if vendor != VendorID {
		return false, fmt.Errorf("%w: vendor %#04x, want %#04x", ErrNotVirtioNet, vendor, VendorID)
	}
	switch device {
	case DeviceIDModern:
		return false, nil
	case DeviceIDTransitional:
		sub, err := cfgRead(p, pciSubsystemID, 2)
		if err != nil {
			return false, err
		}
		if sub != netDeviceType {
			return false, fmt.Errorf("%w: transitional device %#04x with subsystem %#04x, want %d",
				ErrNotVirtioNet, device, sub, netDeviceType)
		}
		return true, nil
	}
	return false, fmt.Errorf("%w: device %#04x", ErrNotVirtioNet, device)
}

// findCaps walks the capability list and records the first usable instance
// of each virtio structure (§4.1.4: drivers use the first one they support).
func findCaps(p PCI) (*transport, error) {
	status, err := cfgRead(p, pciStatus, 2)
	if err != nil {
		return nil, err
	}
	if status&pciStatusCapList == 0 {
		return nil, fmt.Errorf("virtio-net: PCI status %#04x has no capability list", status)
	}
	ptr, err := cfgRead(p, pciCapPtr, 1)
	if err != nil {
		return nil, err
	}
	t := &transport{pci: p}
	var seen [pciCapMax]bool
	for ptr &^= 3; ptr != 0; {
		if ptr < pciCapMin || ptr > pciCapMax-4 {
			return nil, fmt.Errorf("virtio-net: capability pointer %#x outside config space %#x..%#x", ptr, pciCapMin, pciCapMax-4)
		}
		if seen[ptr] {
			return nil, fmt.Errorf("virtio-net: capability list loops back to %#x", ptr)
		}
		seen[ptr] = true
		hdr, err := cfgRead(p, ptr, 4)
		if err != nil {
			return nil, err
		}
		id, next, clen, cfgType := uint8(hdr), hdr>>8&0xfc, int(uint8(hdr>>16)), int(uint8(hdr>>24))
		if id == pciCapVendor && cfgType >= cfgTypeCommon && cfgType <= cfgTypeDevice {
			if err := t.parseCap(ptr, clen, cfgType); err != nil {
				return nil, err
			}
		}
		ptr = next
	}
	if !t.common.present {
		return nil, fmt.Errorf("virtio-net: no common configuration capability")
	}
	if !t.notify.present {
		return nil, fmt.Errorf("virtio-net: no notification capability")
	}
	return t, nil
}

func (t *transport) parseCap(ptr uint32, clen, cfgType int) error {
	minLen := capLen
	if cfgType == cfgTypeNotify {
		minLen = capNotifyLen
	}
	if clen < minLen {
		return fmt.Errorf("virtio-net: capability at %#x (type %d) is %d bytes, want at least %d", ptr, cfgType, clen, minLen)
	}
	if int(ptr)+clen > pciCapMax {
		return fmt.Errorf("virtio-net: capability at %#x (%d bytes) runs past config space", ptr, clen)
	}
	var r *region
	switch cfgType {
	case cfgTypeCommon:
		r = &t.common
	case cfgTypeNotify:
		r = &t.notify
	case cfgTypeISR:
		r = &t.isr
	case cfgTypeDevice:
		r = &t.device
	}
	if r.present {
		return nil
	}
	bar, err := cfgRead(t.pci, ptr+capBAR, 1)
	if err != nil {
		return err
	}
	if bar > maxBAR {
		return nil // reserved BAR number: the spec says to skip such a capability
	}
	off, err := cfgRead(t.pci, ptr+capOffset, 4)
	if err != nil {
		return err
	}
	length, err := cfgRead(t.pci, ptr+capLength, 4)
	if err != nil {
		return err
	}
	size, err := t.pci.BARSize(int(bar))
	if err != nil {
		return fmt.Errorf("virtio-net: size of BAR %d: %w", bar, err)
	}
	if size == 0 {
		return fmt.Errorf("virtio-net: capability at %#x (type %d) points into BAR %d, which is not implemented", ptr, cfgType, bar)
	}
	if uint64(off)+uint64(length) > size {
		return fmt.Errorf("virtio-net: capability at %#x (type %d) region %#x+%#x exceeds BAR %d size %#x",
			ptr, cfgType, off, length, bar, size)
	}
	need := uint32(1)
	switch cfgType {
	case cfgTypeCommon:
		need = comMinLen
	case cfgTypeNotify:
		need = 2
		if t.notifyMult, err = cfgRead(t.pci, ptr+capMultiplier, 4); err != nil {
			return err
		}
	}
	if length < need {
		return fmt.Errorf("virtio-net: capability at %#x (type %d) region is %d bytes, want at least %d", ptr, cfgType, length, need)
	}
	*r = region{bar: int(bar), off: uint64(off), len: uint64(length), present: true}
	return nil
}

// read and write access a register inside a region, refusing anything that
// would reach beyond it whatever the offsets come from.
func (t *transport) read(r region, off uint64, size int) (uint64, error) {
	if off+uint64(size) > r.len {
		return 0, fmt.Errorf("virtio-net: register %#x+%d outside %d-byte region", off, size, r.len)
	}
	v, err := t.pci.BARRead(r.bar, r.off+off, size)
	if err != nil {
		return 0, fmt.Errorf("virtio-net: BAR %d read at %#x: %w", r.bar, r.off+off, err)
	}
	return v, nil
}

func (t *transport) write(r region, off uint64, size int, v uint64) error {
	if off+uint64(size) > r.len {
		return fmt.Errorf("virtio-net: register %#x+%d outside %d-byte region", off, size, r.len)
	}
	if err := t.pci.BARWrite(r.bar, r.off+off, size, v); err != nil {
		return fmt.Errorf("virtio-net: BAR %d write at %#x: %w", r.bar, r.off+off, err)
	}
	return nil
}

// write64 stores a 64-bit field as two 32-bit halves, low first, which every
// device must accept (§4.1.3.1); 8-byte BAR access is optional for bindings.
func (t *transport) write64(r region, off uint64, v uint64) error {
	if err := t.write(r, off, 4, v&0xffffffff); err != nil {
		return err
	}
	return t.write(r, off+4, 4, v>>32)
}

func (t *transport) status() (uint8, error) {
	v, err := t.read(t.common, comDeviceStatus, 1)
	return uint8(v), err
}

func (t *transport) setStatus(s uint8) error {
	return t.write(t.common, comDeviceStatus, 1, uint64(s))
}

// reset writes 0 to device_status and waits, bounded, for the device to
// read back 0 (§4.1.4.3.2): only then is it safe to reuse ring memory.
func (t *transport) reset(timeout time.Duration) error {
	if err := t.setStatus(0); err != nil {
		return err
	}
	deadline := time.Now().Add(timeout)
	for wait := time.Microsecond; ; wait = min(2*wait, time.Millisecond) {
		s, err := t.status()
		if err != nil {
			return err
		}
		if s == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("virtio-net: device status still %#02x %v after reset", s, timeout)
		}
		time.Sleep(wait)
	}
}

func (t *transport) deviceFeatures() (Features, error) {
	var f Features
	for sel := range uint64(2) {
		if err := t.write(t.common, comDeviceFeatureSelect, 4, sel); err != nil {
			return 0, err
		}
		v, err := t.read(t.common, comDeviceFeature, 4)
		if err != nil {
			return 0, err
		}
		f |= Features(v) << (32 * sel)
	}
	return f, nil
}

func (t *transport) setDriverFeatures(f Features) error {
	for sel := range uint64(2) {
		if err := t.write(t.common, comDriverFeatureSelect, 4, sel); err != nil {
			return err
		}
		if err := t.write(t.common, comDriverFeature, 4, uint64(f>>(32*sel))&0xffffffff); err != nil {
			return err
		}
	}
	return nil
}

// readConfig runs fn until it reads the device config under one stable
// config_generation (§4.1.4.3.1): fields wider than 32 bits, like the MAC,
// can otherwise be torn by a concurrent device update.
func (t *transport) readConfig(fn func() error) error {
	for range 16 {
		g1, err := t.read(t.common, comConfigGeneration, 1)
		if err != nil {
			return err
		}
		if err := fn(); err != nil {
			return err
		}
		g2, err := t.read(t.common, comConfigGeneration, 1)
		if err != nil {
			return err
		}
		if g1 == g2 {
			return nil
		}
	}
	return fmt.Errorf("virtio-net: device config generation kept changing")
}
