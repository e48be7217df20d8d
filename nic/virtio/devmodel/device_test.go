package devmodel

import (
	"strings"
	"testing"
)

// These check the model's own strictness: a driver mistake must show up in
// Err, or the driver tests would prove nothing.
func TestModelCatchesDriverMistakes(t *testing.T) {
	for _, tc := range []struct {
		name string
		do   func(d *Device) error
		want string
	}{
		{"BAR access with decoding off", func(d *Device) error {
			v, _ := d.BARRead(BAR, regStatus, 1)
			if v != 0xff {
				t.Errorf("read with decoding off = %#x, want all ones", v)
			}
			return nil
		}, "memory decoding off"},
		{"wrong register width", func(d *Device) error {
			d.ConfigWrite(0x04, 2, cmdMemory)
			_, err := d.BARRead(BAR, regStatus, 2)
			return err
		}, "2-byte access to common register 0x14"},
		{"unaligned config read", func(d *Device) error {
			_, err := d.ConfigRead(0x03, 2)
			return err
		}, "unaligned"},
		{"notify before DRIVER_OK", func(d *Device) error {
			d.ConfigWrite(0x04, 2, cmdMemory)
			return d.BARWrite(BAR, notifyOff+4, 2, 1)
		}, "before DRIVER_OK"},
		{"notify at the wrong doorbell", func(d *Device) error {
			d.ConfigWrite(0x04, 2, cmdMemory)
			return d.BARWrite(BAR, notifyOff, 2, 1)
		}, "want 0x4"},
		{"features after FEATURES_OK", func(d *Device) error {
			d.ConfigWrite(0x04, 2, cmdMemory)
			d.BARWrite(BAR, regStatus, 1, StatusAcknowledge|StatusDriver)
			d.BARWrite(BAR, regDrvFeatSel, 4, 1)
			d.BARWrite(BAR, regDrvFeat, 4, 1) // VERSION_1
			d.BARWrite(BAR, regStatus, 1, StatusAcknowledge|StatusDriver|StatusFeaturesOK)
			return d.BARWrite(BAR, regDrvFeat, 4, 1)
		}, "driver features written"},
		{"unoffered feature", func(d *Device) error {
			d.ConfigWrite(0x04, 2, cmdMemory)
			d.BARWrite(BAR, regStatus, 1, StatusAcknowledge|StatusDriver)
			d.BARWrite(BAR, regDrvFeatSel, 4, 0)
			d.BARWrite(BAR, regDrvFeat, 4, 1) // CSUM, not offered
			d.BARWrite(BAR, regStatus, 1, StatusAcknowledge|StatusDriver|StatusFeaturesOK)
			if d.Status()&StatusFeaturesOK != 0 {
				t.Error("FEATURES_OK accepted with an unoffered feature")
			}
			return nil
		}, "not offered"},
		{"queue in unallocated memory", func(d *Device) error {
			d.ConfigWrite(0x04, 2, cmdMemory)
			d.BARWrite(BAR, regQueueDesc, 8, DefaultBase)
			return d.BARWrite(BAR, regQueueEn, 2, 1)
		}, "descriptor table"},
		{"queue size not a power of two", func(d *Device) error {
			d.ConfigWrite(0x04, 2, cmdMemory)
			return d.BARWrite(BAR, regQueueSize, 2, 3)
		}, "size 3"},
		{"status bits cleared", func(d *Device) error {
			d.ConfigWrite(0x04, 2, cmdMemory)
			d.BARWrite(BAR, regStatus, 1, StatusAcknowledge|StatusDriver)
			d.BARWrite(BAR, regStatus, 1, StatusAcknowledge)
			return nil
		}, "clears bits"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := New(NewMemory(1<<20), Config{})
			err := tc.do(d)
			if d.Err() == nil || !strings.Contains(d.Err().Error(), tc.want) {
				t.Fatalf("Err() = %v, want it to mention %q", d.Err(), tc.want)
			}
			if err != nil && !strings.Contains(err.Error(), "driver violation") {
				t.Errorf("returned error %v is not a violation", err)
			}
		})
	}
}

func TestModelDescriptorChecks(t *testing.T) {
	// Hand-built rings: a transmit descriptor marked device-writable, and
	// one pointing outside allocated memory, each stop the device.
	for _, tc := range []struct {
		name  string
		flags uint16
		addr  func(buf uint64) uint64
		want  string
	}{
		{"wrong direction", descFWrite, func(b uint64) uint64 { return b }, "wrong direction"},
		{"wild address", 0, func(b uint64) uint64 { return b + 1<<30 }, "outside allocated memory"},
		{"indirect", 4, func(b uint64) uint64 { return b }, "indirect"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mem := NewMemory(1 << 20)
			var sent int
			d := New(mem, Config{QueueSize: 4, OnTransmit: func([]byte) { sent++ }})
			ring, _ := mem.Alloc(4096, 64)
			buf, _ := mem.Alloc(256, 64)
			clear(ring.Bytes())
			desc, avail, used := ring.Addr(), ring.Addr()+1024, ring.Addr()+2048
			w := func(off uint64, size int, v uint64) {
				if err := d.BARWrite(BAR, off, size, v); err != nil {
					t.Fatal(err)
				}
			}
			d.ConfigWrite(0x04, 2, cmdMemory|cmdBusMaster)
			w(regStatus, 1, StatusAcknowledge|StatusDriver)
			w(regDrvFeatSel, 4, 1)
			w(regDrvFeat, 4, 1)
			w(regStatus, 1, StatusAcknowledge|StatusDriver|StatusFeaturesOK)
			w(regQueueSel, 2, TxQueue)
			w(regQueueSize, 2, 4)
			w(regQueueDesc, 8, desc)
			w(regQueueDrv, 8, avail)
			w(regQueueDev, 8, used)
			w(regQueueEn, 2, 1)
			w(regStatus, 1, StatusAcknowledge|StatusDriver|StatusFeaturesOK|StatusDriverOK)
			r := ring.Bytes()
			le.PutUint64(r[0:], tc.addr(buf.Addr()))
			le.PutUint32(r[8:], 100)
			le.PutUint16(r[12:], tc.flags)
			le.PutUint16(r[1024+4:], 0) // ring[0] = descriptor 0
			le.PutUint16(r[1024+2:], 1) // avail.idx
			w(notifyOff+4*TxQueue, 2, TxQueue)
			if d.Err() == nil || !strings.Contains(d.Err().Error(), tc.want) {
				t.Fatalf("Err() = %v, want %q", d.Err(), tc.want)
			}
			if sent != 0 || d.Status()&StatusNeedsReset == 0 {
				t.Errorf("device sent %d frames, status %#x: should have stopped with NEEDS_RESET", sent, d.Status())
			}
		})
	}
}
