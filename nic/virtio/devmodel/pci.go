// The PCI side of the model: config space with its capability list, and
// the BAR registers.

package devmodel

import (
	"fmt"

	"github.com/ociboot/ociboot/nic/virtio"
)

// capability builders: virtio_pci_cap is cap_vndr, cap_next, cap_len,
// cfg_type, bar, id, padding[2], offset le32, length le32.
func vendorCap(cfgType, bar byte, off, length uint32) []byte {
	c := make([]byte, 16)
	c[0], c[2], c[3], c[4] = 0x09, 16, cfgType, bar
	le.PutUint32(c[8:], off)
	le.PutUint32(c[12:], length)
	return c
}

func (d *Device) buildConfig() {
	c := d.config[:]
	vendor, device, sub, rev := uint16(0x1af4), uint16(0x1041), uint16(0x1100), byte(1)
	if d.cfg.Transitional {
		device, sub, rev = 0x1000, 1, 0
	}
	if d.cfg.VendorID != 0 {
		vendor = d.cfg.VendorID
	}
	if d.cfg.DeviceID != 0 {
		device = d.cfg.DeviceID
	}
	if d.cfg.SubsystemID != 0 {
		sub = d.cfg.SubsystemID
	}
	le.PutUint16(c[0x00:], vendor)
	le.PutUint16(c[0x02:], device)
	if d.cfg.Caps != CapsNoList {
		le.PutUint16(c[0x06:], 1<<4)
	}
	c[0x08] = rev
	c[0x0b] = 0x02                         // network controller, Ethernet
	le.PutUint32(c[0x20:], 0xfe000000|0x4) // 64-bit memory BAR 4
	if d.cfg.Transitional {
		le.PutUint32(c[0x10:], 0xc000|0x1) // legacy I/O BAR 0, unused by modern drivers
	}
	le.PutUint16(c[0x2c:], 0x1af4)
	le.PutUint16(c[0x2e:], sub)
	c[0x3d] = 1 // INTA

	common := vendorCap(1, BAR, commonOff, commonLen)
	notify := append(vendorCap(2, BAR, notifyOff, notifyLen), 0, 0, 0, 0)
	notify[2] = 20
	le.PutUint32(notify[16:], d.cfg.NotifyMultiplier)
	isr := vendorCap(3, BAR, isrOff, isrLen)
	dev := vendorCap(4, BAR, deviceOff, deviceLen)
	pciCfg := append(vendorCap(5, 0, 0, 0), 0, 0, 0, 0)
	pciCfg[2] = 20
	pm := []byte{0x01, 0, 0x03, 0x00, 0, 0, 0, 0} // power management, not ours to read
	switch d.cfg.Caps {
	case CapsBadBAR:
		common[4] = 2
	case CapsRegionOutOfBounds:
		le.PutUint32(common[8:], barLen-0x10)
	case CapsShortCommon:
		le.PutUint32(common[12:], 0x20)
	case CapsShortNotifyCap:
		notify = notify[:16]
		notify[2] = 16
	case CapsNotifyTooSmall:
		le.PutUint32(notify[12:], 2)
	}
	caps := [][]byte{pm, common, notify, isr, dev, pciCfg}
	switch d.cfg.Caps {
	case CapsNoCommon:
		caps = [][]byte{pm, notify, isr, dev, pciCfg}
	case CapsReservedBAR:
		bogus := vendorCap(1, 6, 0xdead0000, commonLen)
		caps = append([][]byte{bogus}, caps...)
	}
	var at []int
	off := 0x40
	for _, cp := range caps {
		at = append(at, off)
		copy(c[off:], cp)
		off += (len(cp) + 3) &^ 3
	}
	for i := range at {
		if i+1 < len(at) {
			c[at[i]+1] = byte(at[i+1])
		}
	}
	c[0x34] = byte(at[0])
	last := at[len(at)-1]
	switch d.cfg.Caps {
	case CapsLoop:
		c[last+1] = byte(at[0])
	case CapsPtrInHeader:
		c[last+1] = 0x20
	case CapsOverrun:
		// 8 bytes fit before the end; cap_len claims 16.
		copy(c[0xf8:], vendorCap(1, BAR, commonOff, commonLen)[:8])
		c[0xf9] = byte(at[0])
		c[0x34] = 0xf8
	}
}

func (d *Device) command() uint16 { return le.Uint16(d.config[0x04:]) }

// ConfigRead implements virtio.PCI over a 256-byte config space.
func (d *Device) ConfigRead(off uint32, size int) (uint32, error) {
	if err := checkAccess(uint64(off), size, 256); err != nil {
		return 0, d.violate("config read: %v", err)
	}
	var b [4]byte
	copy(b[:], d.config[off:int(off)+size])
	return le.Uint32(b[:]), nil
}

// ConfigWrite implements virtio.PCI; only the command register is
// writable (memory decode, bus master, INTx disable).
func (d *Device) ConfigWrite(off uint32, size int, v uint32) error {
	if err := checkAccess(uint64(off), size, 256); err != nil {
		return d.violate("config write: %v", err)
	}
	if off == 0x04 && size == 2 {
		le.PutUint16(d.config[0x04:], uint16(v)&(cmdMemory|cmdBusMaster|1<<10))
		return nil
	}
	return d.violate("config write of %d bytes at %#x: only the command register is writable", size, off)
}

func checkAccess(off uint64, size int, limit uint64) error {
	if size != 1 && size != 2 && size != 4 && size != 8 {
		return fmt.Errorf("access width %d", size)
	}
	if off%uint64(size) != 0 {
		return fmt.Errorf("unaligned %d-byte access at %#x", size, off)
	}
	if off+uint64(size) > limit {
		return fmt.Errorf("%d-byte access at %#x beyond %#x", size, off, limit)
	}
	return nil
}

// BARSize implements virtio.PCI.
func (d *Device) BARSize(bar int) (uint64, error) {
	if bar < 0 || bar > 5 {
		return 0, fmt.Errorf("devmodel: no BAR %d", bar)
	}
	if bar == BAR {
		return barLen, nil
	}
	return 0, nil
}

// BARRead implements virtio.PCI.
func (d *Device) BARRead(bar int, off uint64, size int) (uint64, error) {
	if bar != BAR {
		return 0, d.violate("read of unimplemented BAR %d", bar)
	}
	if err := checkAccess(off, size, barLen); err != nil {
		return 0, d.violate("BAR read: %v", err)
	}
	if d.command()&cmdMemory == 0 {
		d.violate("BAR read at %#x with memory decoding off", off)
		return 1<<(8*size) - 1, nil // master abort reads all ones
	}
	switch {
	case off >= commonOff && off < commonOff+commonLen:
		return d.commonRead(off-commonOff, size)
	case off >= isrOff && off < isrOff+isrLen:
		v := d.isr
		d.isr = 0 // reading the ISR acknowledges it
		return uint64(v), nil
	case off >= deviceOff && off < deviceOff+deviceLen:
		return d.deviceRead(off-deviceOff, size)
	}
	return 0, d.violate("BAR read of %d bytes at %#x outside every structure", size, off)
}

// BARWrite implements virtio.PCI.
func (d *Device) BARWrite(bar int, off uint64, size int, v uint64) error {
	if bar != BAR {
		return d.violate("write to unimplemented BAR %d", bar)
	}
	if err := checkAccess(off, size, barLen); err != nil {
		return d.violate("BAR write: %v", err)
	}
	if d.command()&cmdMemory == 0 {
		d.violate("BAR write at %#x with memory decoding off", off)
		return nil // dropped, as on the bus
	}
	switch {
	case off >= commonOff && off < commonOff+commonLen:
		return d.commonWrite(off-commonOff, size, v)
	case off >= notifyOff && off < notifyOff+notifyLen:
		return d.notify(off-notifyOff, size, v)
	}
	return d.violate("BAR write of %d bytes at %#x outside the writable structures", size, off)
}

// width is the natural access width of a common register; 64-bit fields
// may also be accessed as two 32-bit halves (§4.1.3.1).
func width(reg uint64) int {
	switch reg {
	case regDevFeatSel, regDevFeat, regDrvFeatSel, regDrvFeat:
		return 4
	case regStatus, regGeneration:
		return 1
	case regQueueDesc, regQueueDrv, regQueueDev:
		return 8
	}
	return 2
}

// field splits an access into the register it hits and, for 64-bit
// registers, which half; it rejects accesses of the wrong width.
func field(off uint64, size int) (reg uint64, shift uint, err error) {
	reg = off
	if off >= regQueueDesc {
		reg = regQueueDesc + (off-regQueueDesc)&^7
		if size == 4 {
			return reg, uint(off-reg) * 8, nil
		}
	}
	if w := width(reg); w != size || reg != off {
		return 0, 0, fmt.Errorf("%d-byte access to common register %#x of width %d", size, off, width(reg))
	}
	return reg, 0, nil
}

func (d *Device) commonRead(off uint64, size int) (uint64, error) {
	reg, shift, err := field(off, size)
	if err != nil {
		return 0, d.violate("%v", err)
	}
	q := d.selected()
	switch reg {
	case regDevFeatSel:
		return uint64(d.devFeatSel), nil
	case regDevFeat:
		if d.devFeatSel > 1 {
			return 0, nil
		}
		return uint64(d.cfg.Features) >> (32 * d.devFeatSel) & 0xffffffff, nil
	case regDrvFeatSel:
		return uint64(d.drvFeatSel), nil
	case regDrvFeat:
		if d.drvFeatSel > 1 {
			return 0, nil
		}
		return d.drvFeatures >> (32 * d.drvFeatSel) & 0xffffffff, nil
	case regMSIXConfig, regQueueMSIX:
		return noVector, nil
	case regNumQueues:
		return uint64(d.cfg.NumQueues), nil
	case regStatus:
		return uint64(d.readStatus()), nil
	case regGeneration:
		return uint64(d.generation), nil
	case regQueueSel:
		return uint64(d.queueSel), nil
	}
	if q == nil {
		return 0, nil // queue registers of an absent queue read as 0
	}
	switch reg {
	case regQueueSize:
		return uint64(q.size), nil
	case regQueueEn:
		if q.enabled {
			return 1, nil
		}
		return 0, nil
	case regNotifyOff:
		return uint64(d.queueSel), nil
	}
	var v uint64
	switch reg {
	case regQueueDesc:
		v = q.desc
	case regQueueDrv:
		v = q.driver
	case regQueueDev:
		v = q.device
	}
	if size == 4 {
		return v >> shift & 0xffffffff, nil
	}
	return v, nil
}

// readStatus counts down a pending reset, which completes (state and all)
// only when the status finally reads 0.
func (d *Device) readStatus() uint8 {
	if d.resetWait > 0 {
		d.resetWait--
		if d.resetWait == 0 {
			d.doReset()
		}
	}
	if d.resetWait != 0 && d.status == 0 {
		return StatusNeedsReset // still busy: anything but 0
	}
	return d.status
}

func (d *Device) selected() *vqueue {
	if int(d.queueSel) < len(d.q) && d.queueSel < d.cfg.NumQueues {
		return &d.q[d.queueSel]
	}
	return nil
}

func (d *Device) commonWrite(off uint64, size int, v uint64) error {
	reg, shift, err := field(off, size)
	if err != nil {
		return d.violate("%v", err)
	}
	if d.resetWait != 0 {
		return d.violate("write to common register %#x while a reset is pending", reg)
	}
	switch reg {
	case regDevFeatSel:
		d.devFeatSel = uint32(v)
		return nil
	case regDrvFeatSel:
		d.drvFeatSel = uint32(v)
		return nil
	case regDrvFeat:
		if d.status&StatusDriver == 0 || d.status&StatusFeaturesOK != 0 {
			return d.violate("driver features written in status %#x", d.status)
		}
		if d.drvFeatSel <= 1 {
			s := 32 * d.drvFeatSel
			d.drvFeatures = d.drvFeatures&^(0xffffffff<<s) | (v&0xffffffff)<<s
		}
		return nil
	case regMSIXConfig, regQueueMSIX:
		return nil
	case regStatus:
		d.writeStatus(uint8(v))
		return nil
	case regQueueSel:
		d.queueSel = uint16(v)
		return nil
	case regDevFeat, regNumQueues, regGeneration, regNotifyOff:
		return d.violate("write to read-only common register %#x", reg)
	}
	q := d.selected()
	if q == nil {
		return d.violate("queue register %#x written with absent queue %d selected", reg, d.queueSel)
	}
	if q.enabled {
		return d.violate("queue %d register %#x written after the queue was enabled", d.queueSel, reg)
	}
	switch reg {
	case regQueueSize:
		if v == 0 || v&(v-1) != 0 || v > uint64(d.cfg.QueueSize) {
			return d.violate("queue %d size %d: not a power of two up to %d", d.queueSel, v, d.cfg.QueueSize)
		}
		q.size = uint16(v)
	case regQueueEn:
		if v != 1 {
			return d.violate("queue %d enable written with %d", d.queueSel, v)
		}
		return d.enable(q)
	case regQueueDesc, regQueueDrv, regQueueDev:
		p := &q.desc
		if reg == regQueueDrv {
			p = &q.driver
		} else if reg == regQueueDev {
			p = &q.device
		}
		if size == 4 {
			*p = *p&^(0xffffffff<<shift) | (v&0xffffffff)<<shift
		} else {
			*p = v
		}
	}
	return nil
}

// enable checks the ring placement the driver chose (§2.7: alignment 16,
// 2 and 4; all three areas inside memory it allocated).
func (d *Device) enable(q *vqueue) error {
	n := int(q.size)
	for _, a := range []struct {
		name  string
		addr  uint64
		size  int
		align uint64
	}{{"descriptor table", q.desc, 16 * n, 16}, {"driver area", q.driver, 6 + 2*n, 2}, {"device area", q.device, 6 + 8*n, 4}} {
		if a.addr%a.align != 0 {
			return d.violate("queue %d %s at %#x not %d-aligned", d.queueSel, a.name, a.addr, a.align)
		}
		if _, err := d.mem.Slice(a.addr, a.size); err != nil {
			return d.violate("queue %d %s: %v", d.queueSel, a.name, err)
		}
	}
	q.enabled = true
	return nil
}

func (d *Device) writeStatus(v uint8) {
	if v == 0 {
		switch {
		case d.cfg.ResetDelay < 0:
			d.resetWait = -1
		case d.cfg.ResetDelay > 0:
			d.resetWait = d.cfg.ResetDelay
		default:
			d.doReset()
		}
		return
	}
	old := d.status &^ StatusNeedsReset
	if v&old != old {
		d.violate("status %#x clears bits of %#x without a reset", v, old)
	}
	if v&StatusFeaturesOK != 0 && old&StatusFeaturesOK == 0 && !d.acceptFeatures() {
		v &^= StatusFeaturesOK
	}
	if v&StatusDriverOK != 0 && old&StatusDriverOK == 0 {
		if v&StatusFeaturesOK == 0 {
			d.violate("DRIVER_OK without FEATURES_OK")
			v &^= StatusDriverOK
		}
	}
	d.status = v | d.status&StatusNeedsReset
	if d.live() && d.cfg.NoNotify {
		for i := range d.q {
			if q := &d.q[i]; q.enabled {
				if used, err := d.mem.Slice(q.device, 2); err == nil {
					le.PutUint16(used, usedFNoNotify)
				}
			}
		}
	}
}

// acceptFeatures decides FEATURES_OK the way devices do: only offered bits,
// VERSION_1 mandatory for a modern device, plus the configured quirks.
func (d *Device) acceptFeatures() bool {
	f := virtio.Features(d.drvFeatures)
	if extra := f &^ d.cfg.Features; extra != 0 {
		d.violate("driver accepted features %v that were not offered", extra)
		return false
	}
	switch {
	case f&virtio.FeatureVersion1 == 0,
		d.cfg.RequireMTU && f&virtio.FeatureMTU == 0,
		d.cfg.RefuseFeaturesOK:
		return false
	}
	return true
}

func (d *Device) deviceRead(off uint64, size int) (uint64, error) {
	switch {
	case off < 6 && size == 1:
		return uint64(d.mac[off]), nil
	case off == 6 && size == 2:
		if d.linkUp {
			return 1, nil
		}
		return 0, nil
	case off == 8 && size == 2:
		return 1, nil // max_virtqueue_pairs
	case off == 10 && size == 2:
		return uint64(d.cfg.MTU), nil
	}
	return 0, d.violate("%d-byte device config read at %#x", size, off)
}

func (d *Device) notify(off uint64, size int, v uint64) error {
	if size != 2 {
		return d.violate("%d-byte notify write", size)
	}
	if v >= uint64(len(d.q)) || v >= uint64(d.cfg.NumQueues) {
		return d.violate("notify for absent queue %d", v)
	}
	if want := v * uint64(d.cfg.NotifyMultiplier); off != want {
		return d.violate("notify for queue %d at offset %#x, want %#x", v, off, want)
	}
	if d.status&StatusDriverOK == 0 {
		return d.violate("notify for queue %d before DRIVER_OK", v)
	}
	d.q[v].notifications++
	if v == TxQueue {
		d.processTx()
	} else {
		d.processRx()
	}
	return nil
}
