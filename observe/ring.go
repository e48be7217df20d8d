package observe

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"sort"
	"strings"
)

// The scratch disk format. This is the only place that defines it; the
// loader writes it through OpenRing and the host reads it with Recover.
//
// The disk is a sequence of units of UnitSize bytes (a multiple of 512 and
// of the device's block size). All integers are little-endian.
//
// Unit 0 is the header, written only by the host (FormatImage):
//
//	0   [8]byte  magic "OCIBTLOG"
//	8   uint32   version (1)
//	12  uint32   unit size in bytes
//	16  uint64   ring units: the number of record units after the header
//	24  uint64   generation: a sequence number chosen when the disk is
//	             formatted; records of another generation (an earlier format
//	             of the same disk) are ignored
//	32  uint32   CRC-32C of bytes 0-31
//	36  zero to the end of the unit
//
// Units 1..ring units are records. Record number seq (counted from 0 across
// every run on the disk, never reused) lives in unit 1 + seq%units:
//
//	0   [4]byte  magic "OBLK"
//	4   uint32   CRC-32C of bytes 8 .. 32+len
//	8   uint64   generation (as in the header)
//	16  uint64   seq
//	24  uint32   run: 1 for the first boot that wrote to this disk, +1 per boot
//	28  uint16   len: payload bytes used
//	30  uint16   flags: 1 = the first record of its run
//	32  payload: the next len bytes of the run's log text
//
// A record is written once and never rewritten: each flush appends new
// records, so a write torn by a reset or power loss can only damage the
// records of that flush, which the CRC exposes; everything flushed before
// stays intact. When the ring wraps, the oldest records are overwritten and
// recovery reports the lost start of that run.
const (
	headerMagic   = "OCIBTLOG"
	recordMagic   = "OBLK"
	FormatVersion = 1

	recordHeader = 32
	flagFirst    = 1

	// DefaultUnitSize is the unit size the host tool formats with.
	DefaultUnitSize = 512
	maxUnitSize     = 64 << 10
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ErrNotScratch means a disk does not carry ociboot's scratch header. The
// loader never writes to such a disk.
var ErrNotScratch = errors.New("not an ociboot scratch disk (no valid header)")

// Header is the scratch disk's unit 0.
type Header struct {
	UnitSize   uint32
	Units      uint64 // record units in the ring
	Generation uint64
}

// Payload is the log bytes one record carries.
func (h Header) Payload() int { return int(h.UnitSize) - recordHeader }

// Size is the bytes of disk the format uses.
func (h Header) Size() int64 { return int64(h.Units+1) * int64(h.UnitSize) }

// MarshalHeader encodes h as a full header unit.
func MarshalHeader(h Header) []byte {
	b := make([]byte, h.UnitSize)
	copy(b, headerMagic)
	binary.LittleEndian.PutUint32(b[8:], FormatVersion)
	binary.LittleEndian.PutUint32(b[12:], h.UnitSize)
	binary.LittleEndian.PutUint64(b[16:], h.Units)
	binary.LittleEndian.PutUint64(b[24:], h.Generation)
	binary.LittleEndian.PutUint32(b[32:], crc32.Checksum(b[:32], castagnoli))
	return b
}

// ParseHeader decodes a header from the first bytes of a disk. Anything that
// is not a valid header of this version is ErrNotScratch (wrapped).
func ParseHeader(b []byte) (Header, error) {
	if len(b) < 36 || string(b[:8]) != headerMagic {
		return Header{}, ErrNotScratch
	}
	if crc32.Checksum(b[:32], castagnoli) != binary.LittleEndian.Uint32(b[32:]) {
		return Header{}, fmt.Errorf("%w: header checksum mismatch", ErrNotScratch)
	}
	if v := binary.LittleEndian.Uint32(b[8:]); v != FormatVersion {
		return Header{}, fmt.Errorf("%w: format version %d, this build knows %d", ErrNotScratch, v, FormatVersion)
	}
	h := Header{
		UnitSize:   binary.LittleEndian.Uint32(b[12:]),
		Units:      binary.LittleEndian.Uint64(b[16:]),
		Generation: binary.LittleEndian.Uint64(b[24:]),
	}
	if h.UnitSize < 512 || h.UnitSize > maxUnitSize || h.UnitSize%512 != 0 {
		return Header{}, fmt.Errorf("%w: unit size %d", ErrNotScratch, h.UnitSize)
	}
	if h.Units < 2 || h.Units > 1<<32 {
		return Header{}, fmt.Errorf("%w: %d ring units", ErrNotScratch, h.Units)
	}
	return h, nil
}

// record is one decoded record unit.
type record struct {
	seq     uint64
	run     uint32
	first   bool
	payload []byte
}

// putRecord encodes r into unit (len(unit) == UnitSize).
func putRecord(unit []byte, gen uint64, r record) {
	clear(unit)
	copy(unit, recordMagic)
	binary.LittleEndian.PutUint64(unit[8:], gen)
	binary.LittleEndian.PutUint64(unit[16:], r.seq)
	binary.LittleEndian.PutUint32(unit[24:], r.run)
	binary.LittleEndian.PutUint16(unit[28:], uint16(len(r.payload)))
	if r.first {
		binary.LittleEndian.PutUint16(unit[30:], flagFirst)
	}
	copy(unit[recordHeader:], r.payload)
	binary.LittleEndian.PutUint32(unit[4:], crc32.Checksum(unit[8:recordHeader+len(r.payload)], castagnoli))
}

// recordState classifies a unit.
type recordState int

const (
	unitEmpty recordState = iota // never written, or another generation's
	unitValid
	unitTorn // our magic but a bad checksum or length: a torn write
)

// parseRecord decodes unit for generation gen.
func parseRecord(unit []byte, gen uint64) (record, recordState) {
	if string(unit[:4]) != recordMagic {
		return record{}, unitEmpty
	}
	n := int(binary.LittleEndian.Uint16(unit[28:]))
	if recordHeader+n > len(unit) ||
		crc32.Checksum(unit[8:recordHeader+n], castagnoli) != binary.LittleEndian.Uint32(unit[4:]) {
		return record{}, unitTorn
	}
	if binary.LittleEndian.Uint64(unit[8:]) != gen {
		return record{}, unitEmpty
	}
	return record{
		seq:     binary.LittleEndian.Uint64(unit[16:]),
		run:     binary.LittleEndian.Uint32(unit[24:]),
		first:   binary.LittleEndian.Uint16(unit[30:])&flagFirst != 0,
		payload: unit[recordHeader : recordHeader+n],
	}, unitValid
}

// FormatImage writes a scratch disk of size bytes (rounded down to whole
// units) to w: the header and zeroed record units.
func FormatImage(w io.WriterAt, size int64, unitSize int, generation uint64) (Header, error) {
	if unitSize == 0 {
		unitSize = DefaultUnitSize
	}
	h := Header{UnitSize: uint32(unitSize), Generation: generation}
	if unitSize < 512 || unitSize > maxUnitSize || unitSize%512 != 0 {
		return h, fmt.Errorf("observe: unit size %d: want a multiple of 512 up to %d", unitSize, maxUnitSize)
	}
	units := size/int64(unitSize) - 1
	if units < 2 || units > 1<<32 {
		return h, fmt.Errorf("observe: a scratch disk of %d bytes holds %d ring units; want 2 to 2^32", size, units)
	}
	h.Units = uint64(units)
	zero := make([]byte, 64*unitSize)
	for off := int64(unitSize); off < h.Size(); off += int64(len(zero)) {
		n := min(int64(len(zero)), h.Size()-off)
		if _, err := w.WriteAt(zero[:n], off); err != nil {
			return h, fmt.Errorf("observe: zeroing the ring: %w", err)
		}
	}
	if _, err := w.WriteAt(MarshalHeader(h), 0); err != nil {
		return h, fmt.Errorf("observe: writing the scratch header: %w", err)
	}
	return h, nil
}

// RunLog is the recovered log of one boot.
type RunLog struct {
	Run  uint32
	Text string
	// StartLost: the ring wrapped and overwrote the beginning of this run.
	StartLost bool
	// Missing counts records absent between the first and last recovered
	// ones (torn or overwritten).
	Missing int
}

// Recovered is everything a scratch disk holds.
type Recovered struct {
	Header Header
	Runs   []RunLog // oldest first
	Torn   int      // units with a torn write
}

// Last is the most recent run's log, or nil if nothing was ever written.
func (r *Recovered) Last() *RunLog {
	if len(r.Runs) == 0 {
		return nil
	}
	return &r.Runs[len(r.Runs)-1]
}

// String renders a run's text with notes where something was lost.
func (l RunLog) String() string {
	var b strings.Builder
	if l.StartLost {
		b.WriteString("[observe: the beginning of this log was overwritten when the ring wrapped]\n")
	}
	b.WriteString(l.Text)
	if l.Missing > 0 {
		fmt.Fprintf(&b, "\n[observe: %d records of this log are missing (torn or overwritten)]\n", l.Missing)
	}
	return b.String()
}

// Recover reads a scratch disk and returns the logs of the runs it holds.
func Recover(r io.ReaderAt) (*Recovered, error) {
	hb := make([]byte, 512)
	if _, err := r.ReadAt(hb, 0); err != nil {
		return nil, fmt.Errorf("observe: reading the scratch header: %w", err)
	}
	h, err := ParseHeader(hb)
	if err != nil {
		return nil, err
	}
	recs, torn, err := readRecords(r, h)
	if err != nil {
		return nil, err
	}
	out := &Recovered{Header: h, Torn: len(torn)}
	for i := 0; i < len(recs); {
		j := i
		run := RunLog{Run: recs[i].run, StartLost: !recs[i].first}
		var text strings.Builder
		for ; j < len(recs) && recs[j].run == recs[i].run; j++ {
			if j > i {
				run.Missing += int(recs[j].seq - recs[j-1].seq - 1)
			}
			text.Write(recs[j].payload)
		}
		run.Text = text.String()
		out.Runs = append(out.Runs, run)
		i = j
	}
	return out, nil
}

// readRecords returns the valid records sorted by seq and the positions of
// torn units.
func readRecords(r io.ReaderAt, h Header) ([]record, map[uint64]bool, error) {
	var recs []record
	torn := map[uint64]bool{}
	chunk := make([]byte, 256*int(h.UnitSize))
	for u := uint64(0); u < h.Units; {
		n := min(uint64(256), h.Units-u)
		buf := chunk[:n*uint64(h.UnitSize)]
		if _, err := r.ReadAt(buf, int64(u+1)*int64(h.UnitSize)); err != nil {
			return nil, nil, fmt.Errorf("observe: reading ring units %d-%d: %w", u, u+n-1, err)
		}
		for k := uint64(0); k < n; k++ {
			unit := buf[k*uint64(h.UnitSize) : (k+1)*uint64(h.UnitSize)]
			rec, st := parseRecord(unit, h.Generation)
			switch {
			case st == unitTorn:
				torn[u+k] = true
			case st == unitValid && rec.seq%h.Units == u+k:
				rec.payload = append([]byte(nil), rec.payload...)
				recs = append(recs, rec)
			}
		}
		u += n
	}
	sort.Slice(recs, func(i, j int) bool { return recs[i].seq < recs[j].seq })
	return recs, torn, nil
}
