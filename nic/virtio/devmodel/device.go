// Package devmodel simulates a virtio-net PCI function for tests: PCI config
// space with virtio capabilities, a BAR with the common, ISR, device and
// notify structures, and a device side that works the split virtqueues in
// a Memory. It can be told to misbehave in the ways a buggy or hostile
// device would.
//
// The model does its device-side work synchronously: when the driver writes
// a queue's doorbell, when the test calls Inject or Step. Together with the
// driver it must be used from one goroutine (or under one lock), because
// both touch the same ring memory without synchronisation, exactly as a CPU
// and a device do.
package devmodel

import (
	"encoding/binary"
	"fmt"
	"net"

	"github.com/ociboot/ociboot/nic/virtio"
)

var le = binary.LittleEndian

// Queue numbers of a single-pair virtio-net device.
const (
	RxQueue = 0
	TxQueue = 1
)

// BAR holds all virtio structures, laid out like QEMU's modern virtio-pci;
// it is a 64-bit memory BAR, so BAR 5 is its upper half.
const (
	BAR       = 4
	barLen    = 0x4000
	commonOff = 0x0000
	commonLen = 0x38
	isrOff    = 0x1000
	isrLen    = 4
	deviceOff = 0x2000
	deviceLen = 12
	notifyOff = 0x3000
	notifyLen = 0x1000
)

// Common configuration registers (virtio 1.2 §4.1.4.3).
const (
	regDevFeatSel = 0x00
	regDevFeat    = 0x04
	regDrvFeatSel = 0x08
	regDrvFeat    = 0x0c
	regMSIXConfig = 0x10
	regNumQueues  = 0x12
	regStatus     = 0x14
	regGeneration = 0x15
	regQueueSel   = 0x16
	regQueueSize  = 0x18
	regQueueMSIX  = 0x1a
	regQueueEn    = 0x1c
	regNotifyOff  = 0x1e
	regQueueDesc  = 0x20
	regQueueDrv   = 0x28
	regQueueDev   = 0x30
)

// Device status bits.
const (
	StatusAcknowledge = 1
	StatusDriver      = 2
	StatusDriverOK    = 4
	StatusFeaturesOK  = 8
	StatusNeedsReset  = 64
	StatusFailed      = 128
)

const (
	netHdrLen         = 12
	descFNext         = 1
	descFWrite        = 2
	descFIndirect     = 4
	usedFNoNotify     = 1
	availFNoInterrupt = 1
	cmdMemory         = 1 << 1
	cmdBusMaster      = 1 << 2
	noVector          = 0xffff
)

// Fault is a way for the device to break the ring protocol.
type Fault int

const (
	FaultNone Fault = iota
	// FaultUsedIdxJump moves used.idx a full ring further than it completed.
	FaultUsedIdxJump
	// FaultBogusID names a descriptor beyond the end of the ring.
	FaultBogusID
	// FaultNotPosted completes a descriptor the driver has not made
	// available in place of the one the device took. When every slot is
	// posted (a full receive ring) there is none, and it completes the
	// right one twice instead.
	FaultNotPosted
	// FaultOversizeLen reports one byte more than the receive buffer holds.
	FaultOversizeLen
	// FaultDuplicate completes the same buffer twice in a row.
	FaultDuplicate
	// FaultStall stops the queue: nothing is consumed or completed until
	// the fault is cleared. Unlike the others it does not clear itself.
	FaultStall
	// FaultShortMerge makes the next received packet's header claim one
	// more buffer (num_buffers) than the packet used.
	FaultShortMerge
)

// CapFault selects a malformed PCI capability list.
type CapFault int

const (
	CapsOK CapFault = iota
	// CapsNoList clears the capability-list bit in the PCI status register.
	CapsNoList
	// CapsLoop links the last capability back to the first.
	CapsLoop
	// CapsPtrInHeader points a capability into the 64-byte header.
	CapsPtrInHeader
	// CapsOverrun starts the list with a capability that runs past the
	// end of config space.
	CapsOverrun
	// CapsBadBAR puts the common configuration in an unimplemented BAR.
	CapsBadBAR
	// CapsReservedBAR puts a first common capability with a reserved BAR
	// number (6) ahead of the real one. Well-formed: the driver must skip it.
	CapsReservedBAR
	// CapsRegionOutOfBounds makes the common configuration overrun its BAR.
	CapsRegionOutOfBounds
	// CapsNoCommon leaves out the common configuration capability.
	CapsNoCommon
	// CapsShortCommon declares a common configuration region too short for
	// the queue registers.
	CapsShortCommon
	// CapsShortNotifyCap gives the notify capability no multiplier field.
	CapsShortNotifyCap
	// CapsNotifyTooSmall makes the notify region too small for queue 1's
	// doorbell, which only shows during queue setup.
	CapsNotifyTooSmall
)

// Config describes the simulated device. The zero value is a modern
// virtio-net device offering VERSION_1, MAC and STATUS with link up.
type Config struct {
	Transitional bool   // device ID 0x1000, subsystem ID 1, modern caps as well
	VendorID     uint16 // overrides; 0 keeps the identity Transitional picks
	DeviceID     uint16
	SubsystemID  uint16

	MAC      net.HardwareAddr // nil means 52:54:00:12:34:56
	Features virtio.Features  // offered; 0 means VERSION_1|MAC|STATUS
	MTU      uint16           // reported when Features has MTU; 0 means 1500
	LinkDown bool

	// RequireMTU refuses FEATURES_OK unless the driver accepts MTU, as
	// Apple's Virtualization framework does.
	RequireMTU bool
	// RefuseFeaturesOK refuses FEATURES_OK whatever the driver accepts.
	RefuseFeaturesOK bool

	// QueueSize is the largest queue the device supports; 0 means 256. A
	// value that is not a power of two models a broken device.
	QueueSize uint16
	// AbsentTxQueue makes queue 1 read as size 0, as an unavailable queue.
	AbsentTxQueue    bool
	NumQueues        uint16 // 0 means 2
	NotifyMultiplier uint32 // 0 means 4
	SharedNotify     bool   // multiplier 0: one doorbell for all queues
	// NoNotify sets VIRTQ_USED_F_NO_NOTIFY: the driver should not ring the
	// doorbell and the device then acts only on Inject and Step.
	NoNotify bool
	// ResetDelay is how many device_status reads still return the old
	// status after the driver writes 0; negative means the reset never
	// completes (and the device keeps working on the rings).
	ResetDelay int
	Caps       CapFault

	// RxBacklog bounds frames held while no receive buffer is posted; 0
	// means 4096. Frames beyond it are dropped, as on a real NIC.
	RxBacklog int
	// OnTransmit gets every frame the driver sends (no virtio header). The
	// slice is valid only during the call. It may call Inject.
	OnTransmit func(frame []byte)
}

// Stats counts device-side traffic.
type Stats struct {
	TxFrames, TxBytes uint64 // consumed from the transmit queue
	RxFrames, RxBytes uint64 // written into receive buffers
	RxDropped         uint64 // injected frames dropped: device not live or backlog full
}

type vqueue struct {
	size                 uint16
	enabled              bool
	desc, driver, device uint64
	lastAvail, usedIdx   uint16
	fault                Fault
	notifications        int
}

// Device is a simulated virtio-net PCI function. It implements virtio.PCI.
type Device struct {
	cfg    Config
	mem    *Memory
	config [256]byte
	mac    [6]byte

	status      uint8
	resetWait   int // status reads before a pending reset completes; <0 never
	devFeatSel  uint32
	drvFeatSel  uint32
	drvFeatures uint64
	queueSel    uint16
	generation  uint8
	linkUp      bool
	isr         uint8
	q           [2]vqueue
	resets      int

	backlog [][]byte // FIFO from bhead on: virtio-net header, then the frame
	bhead   int
	spare   [][]byte
	segs    [][]byte
	scratch []byte
	stats   Stats
	err     error
}

var _ virtio.PCI = (*Device)(nil)

// New makes a device that does DMA in mem.
func New(mem *Memory, cfg Config) *Device {
	if mem == nil {
		panic("devmodel: New without Memory")
	}
	if cfg.Features == 0 {
		cfg.Features = virtio.FeatureVersion1 | virtio.FeatureMAC | virtio.FeatureStatus
	}
	if cfg.MTU == 0 {
		cfg.MTU = 1500
	}
	if cfg.QueueSize == 0 {
		cfg.QueueSize = 256
	}
	if cfg.NumQueues == 0 {
		cfg.NumQueues = 2
	}
	if cfg.NotifyMultiplier == 0 {
		cfg.NotifyMultiplier = 4
	}
	if cfg.SharedNotify {
		cfg.NotifyMultiplier = 0
	}
	if cfg.RxBacklog == 0 {
		cfg.RxBacklog = 4096
	}
	d := &Device{cfg: cfg, mem: mem, linkUp: !cfg.LinkDown}
	copy(d.mac[:], net.HardwareAddr{0x52, 0x54, 0x00, 0x12, 0x34, 0x56})
	if cfg.MAC != nil {
		copy(d.mac[:], cfg.MAC)
	}
	d.buildConfig()
	d.doReset()
	d.resets = 0
	return d
}

// violate records the first protocol violation by the driver.
func (d *Device) violate(format string, args ...any) error {
	err := fmt.Errorf("devmodel: driver violation: "+format, args...)
	if d.err == nil {
		d.err = err
	}
	return err
}

// broken records a violation that a real device would answer by stopping
// and setting DEVICE_NEEDS_RESET.
func (d *Device) broken(format string, args ...any) {
	d.violate(format, args...)
	d.status |= StatusNeedsReset
}

func (d *Device) doReset() {
	d.status = 0
	d.resetWait = 0
	d.devFeatSel, d.drvFeatSel, d.drvFeatures, d.queueSel = 0, 0, 0, 0
	d.isr = 0
	for i := range d.q {
		d.q[i] = vqueue{size: d.cfg.QueueSize, fault: d.q[i].fault, notifications: d.q[i].notifications}
	}
	if d.cfg.AbsentTxQueue {
		d.q[TxQueue].size = 0
	}
	for _, f := range d.backlog[d.bhead:] {
		d.spare = append(d.spare, f[:0])
	}
	clear(d.backlog)
	d.backlog, d.bhead = d.backlog[:0], 0
	d.resets++
}

// live says whether the device may touch the rings.
func (d *Device) live() bool {
	return d.status&StatusDriverOK != 0 && d.status&(StatusFailed|StatusNeedsReset) == 0 &&
		d.command()&cmdBusMaster != 0
}

// SetFault makes queue qi misbehave at its next completion (FaultStall:
// from now on, until SetFault(qi, FaultNone)). Faults survive resets.
func (d *Device) SetFault(qi int, f Fault) {
	d.q[qi].fault = f
	if f == FaultNone {
		d.Step() // a released stall catches up
	}
}

// SetLink changes the link state a STATUS-negotiating driver reads.
func (d *Device) SetLink(up bool) {
	d.linkUp = up
	d.generation++
	d.isr |= 2
}

// SetResetDelay changes Config.ResetDelay for later resets.
func (d *Device) SetResetDelay(n int) { d.cfg.ResetDelay = n }

// Status is the device_status the device holds (a pending reset shows as
// not done).
func (d *Device) Status() uint8 { return d.status }

// Resets counts completed device resets since New.
func (d *Device) Resets() int { return d.resets }

// DriverFeatures are the feature bits the driver last wrote.
func (d *Device) DriverFeatures() virtio.Features { return virtio.Features(d.drvFeatures) }

// QueueSize is the size the driver configured for queue qi.
func (d *Device) QueueSize(qi int) int { return int(d.q[qi].size) }

// Notifications counts doorbell writes for queue qi since New.
func (d *Device) Notifications(qi int) int { return d.q[qi].notifications }

// Backlog is the number of injected frames waiting for receive buffers.
func (d *Device) Backlog() int { return len(d.backlog) - d.bhead }

// Stats returns the device-side counters.
func (d *Device) Stats() Stats { return d.stats }

// Err is the first protocol violation the driver committed, nil if none.
func (d *Device) Err() error { return d.err }
