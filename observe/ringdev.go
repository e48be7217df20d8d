package observe

import (
	"fmt"
	"io"
)

// BlockDevice is the part of a block device the ring needs: the firmware's
// Block IO protocol in the loader, an image file on the host.
type BlockDevice interface {
	BlockSize() int
	Blocks() uint64
	ReadBlocks(lba uint64, buf []byte) error
	WriteBlocks(lba uint64, buf []byte) error
	FlushBlocks() error
}

// Ring keeps log text in RAM and appends it to a scratch disk as records
// when flushed. It is a Sink; the Logger serialises calls to it.
type Ring struct {
	dev     BlockDevice
	h       Header
	run     uint32
	seq     uint64 // next record number
	first   bool   // the next record is the run's first
	pending []byte
	unit    []byte // scratch for encoding records
	lost    int    // bytes dropped because a flush failed with a full buffer
}

// ringPending bounds the text kept in RAM between flushes; reaching it
// flushes on its own.
const ringPending = 32 << 10

// OpenRing checks that dev is an ociboot scratch disk and prepares to
// append this run's records after everything already on it. A device
// without a valid header is refused with ErrNotScratch, and nothing is ever
// written to it.
func OpenRing(dev BlockDevice) (*Ring, error) {
	bs := dev.BlockSize()
	if bs <= 0 || bs > maxUnitSize {
		return nil, fmt.Errorf("observe: block size %d", bs)
	}
	first := make([]byte, max(bs, 512))
	if err := dev.ReadBlocks(0, first); err != nil {
		return nil, fmt.Errorf("observe: reading block 0: %w", err)
	}
	h, err := ParseHeader(first)
	if err != nil {
		return nil, err
	}
	if int(h.UnitSize)%bs != 0 {
		return nil, fmt.Errorf("observe: scratch unit size %d is not a multiple of the device's block size %d", h.UnitSize, bs)
	}
	if uint64(h.Size()) > dev.Blocks()*uint64(bs) {
		return nil, fmt.Errorf("observe: scratch header says %d bytes, the device has %d", h.Size(), dev.Blocks()*uint64(bs))
	}
	r := &Ring{dev: dev, h: h, run: 1, first: true, unit: make([]byte, h.UnitSize)}
	recs, torn, err := readRecords(devReader{r}, h)
	if err != nil {
		return nil, err
	}
	if n := len(recs); n > 0 {
		r.seq = recs[n-1].seq + 1
		for _, rec := range recs {
			r.run = max(r.run, rec.run+1)
		}
	}
	// A run that exited before its first flush left only its exit text:
	// never reuse its number, or that text would pass for this run's.
	if ex, _, err := readExit(devReader{r}, h); err != nil {
		return nil, err
	} else if ex != nil {
		r.run = max(r.run, ex.run+1)
	}
	// Step over what the last boot's final, torn flush left, so the
	// evidence survives until the ring comes round again.
	for i := uint64(0); i < h.Units/2 && torn[r.seq%h.Units]; i++ {
		r.seq++
	}
	return r, nil
}

// Header is the disk's header.
func (r *Ring) Header() Header { return r.h }

// Run is this boot's run number on the disk.
func (r *Ring) Run() uint32 { return r.run }

// Write keeps p for the next flush; it flushes on its own when enough text
// is pending.
func (r *Ring) Write(p []byte) (int, error) {
	r.pending = append(r.pending, p...)
	if len(r.pending) >= ringPending {
		if err := r.Flush(); err != nil {
			if len(r.pending) > 4*ringPending { // keep RAM bounded
				drop := len(r.pending) - ringPending
				r.pending = append(r.pending[:0], r.pending[drop:]...)
				r.lost += drop
			}
			return len(p), err
		}
	}
	return len(p), nil
}

// Flush appends the pending text as new records and asks the device to
// make them durable.
func (r *Ring) Flush() error {
	if len(r.pending) == 0 {
		return nil
	}
	if r.lost > 0 {
		note := fmt.Sprintf("\n[observe: %d bytes of log lost: the scratch disk failed]\n", r.lost)
		r.pending = append([]byte(note), r.pending...)
		r.lost = 0
	}
	payload := r.h.Payload()
	recs := (len(r.pending) + payload - 1) / payload
	// Write runs of consecutive units, splitting where the ring wraps.
	var buf []byte
	startSeq := r.seq
	flushRun := func(seq uint64) error {
		if len(buf) == 0 {
			return nil
		}
		lba := (1 + startSeq%r.h.Units) * uint64(r.h.UnitSize) / uint64(r.dev.BlockSize())
		if err := r.dev.WriteBlocks(lba, buf); err != nil {
			return fmt.Errorf("observe: writing ring records %d-%d: %w", startSeq, seq-1, err)
		}
		buf, startSeq = buf[:0], seq
		return nil
	}
	seq, text := r.seq, r.pending
	for i := 0; i < recs; i++ {
		n := min(payload, len(text))
		putRecord(r.unit, r.h.Generation, record{seq: seq, run: r.run, first: r.first && i == 0, payload: text[:n]})
		buf = append(buf, r.unit...)
		text = text[n:]
		seq++
		if seq%r.h.Units == 0 {
			if err := flushRun(seq); err != nil {
				return err
			}
		}
	}
	if err := flushRun(seq); err != nil {
		return err
	}
	// Records are committed: never rewrite them, even if FlushBlocks fails.
	r.seq, r.first, r.pending = seq, false, r.pending[:0]
	if err := r.dev.FlushBlocks(); err != nil {
		return fmt.Errorf("observe: flushing the scratch disk: %w", err)
	}
	return nil
}

// devReader reads the device as an io.ReaderAt of whole units.
type devReader struct{ r *Ring }

func (d devReader) ReadAt(p []byte, off int64) (int, error) {
	bs := int64(d.r.dev.BlockSize())
	if off%bs != 0 || int64(len(p))%bs != 0 {
		return 0, fmt.Errorf("observe: unaligned read of %d bytes at %d", len(p), off)
	}
	if err := d.r.dev.ReadBlocks(uint64(off/bs), p); err != nil {
		return 0, fmt.Errorf("observe: reading blocks at %d: %w", off/bs, err)
	}
	return len(p), nil
}

// ImageDevice is a BlockDevice over an image file or any ReaderAt and
// WriterAt, for the host tool and tests.
type ImageDevice struct {
	RW interface {
		io.ReaderAt
		io.WriterAt
	}
	Size  int64 // bytes
	Block int   // block size; 0 = 512
	// Flushes counts FlushBlocks calls.
	Flushes int
}

func (d *ImageDevice) BlockSize() int {
	if d.Block == 0 {
		return 512
	}
	return d.Block
}

func (d *ImageDevice) Blocks() uint64 { return uint64(d.Size) / uint64(d.BlockSize()) }

func (d *ImageDevice) check(lba uint64, buf []byte) error {
	bs := uint64(d.BlockSize())
	if uint64(len(buf))%bs != 0 || lba+uint64(len(buf))/bs > d.Blocks() {
		return fmt.Errorf("observe: %d bytes at block %d outside a device of %d blocks", len(buf), lba, d.Blocks())
	}
	return nil
}

func (d *ImageDevice) ReadBlocks(lba uint64, buf []byte) error {
	if err := d.check(lba, buf); err != nil {
		return err
	}
	_, err := d.RW.ReadAt(buf, int64(lba)*int64(d.BlockSize()))
	return err
}

func (d *ImageDevice) WriteBlocks(lba uint64, buf []byte) error {
	if err := d.check(lba, buf); err != nil {
		return err
	}
	_, err := d.RW.WriteAt(buf, int64(lba)*int64(d.BlockSize()))
	return err
}

func (d *ImageDevice) FlushBlocks() error { d.Flushes++; return nil }
