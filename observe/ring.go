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
//	8   uint32   version (2; version 1 images are read and written too)
//	12  uint32   unit size in bytes
//	16  uint64   ring units: the number of record units after the header
//	24  uint64   generation: a sequence number chosen when the disk is
//	             formatted; records of another generation (an earlier format
//	             of the same disk) are ignored
//	32  uint32   crash units (version 2): the units after the ring that form
//	             the crash area
//	36  uint32   CRC-32C of bytes 0-35 (version 1: bytes 32-35 are the
//	             CRC-32C of bytes 0-31, and there is no crash area)
//	40  zero to the end of the unit
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
//
// The crash area (units 1+ring units .. +crash units) holds what the
// console showed after the ring's last flush, written by efirt's kernel
// when the program exits (efirt/exitlog.go writes it without Go: no tables,
// no allocation). A panic's text and efirt's exit line land there. It is
// rewritten at every exit that knows the disk:
//
//	0   [8]byte  magic "OCIBEXIT"
//	8   uint64   generation (as in the header)
//	16  uint32   run: the run whose console this is
//	20  uint32   len: text bytes
//	24  uint32   flags: 1 = the text's start was cut (more than fits)
//	28  uint32   FNV-1a (32-bit) of bytes 8-27 and then of the text
//	32  text: the next len bytes
//
// A torn or foreign crash area fails the checksum and is ignored with a
// note.
const (
	headerMagic   = "OCIBTLOG"
	recordMagic   = "OBLK"
	crashMagic    = "OCIBEXIT"
	FormatVersion = 2

	// CrashHeader is the size of the crash area's header.
	CrashHeader = 32
	// CrashAreaBytes is the crash area FormatImage reserves: room for
	// efirt's capture of the console (16 KiB) and its header.
	CrashAreaBytes = 20 << 10
	crashCut       = 1

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
	Version    uint32 // FormatVersion, or 1 for an image without crash area
	UnitSize   uint32
	Units      uint64 // record units in the ring
	Generation uint64
	CrashUnits uint32 // units in the crash area after the ring (version 2)
}

// Payload is the log bytes one record carries.
func (h Header) Payload() int { return int(h.UnitSize) - recordHeader }

// Size is the bytes of disk the format uses.
func (h Header) Size() int64 { return int64(h.Units+1+uint64(h.CrashUnits)) * int64(h.UnitSize) }

// CrashOffset is the byte offset of the crash area (meaningful when
// CrashUnits > 0).
func (h Header) CrashOffset() int64 { return int64(h.Units+1) * int64(h.UnitSize) }

// CrashBytes is the size of the crash area.
func (h Header) CrashBytes() int { return int(h.CrashUnits) * int(h.UnitSize) }

// MarshalHeader encodes h as a full header unit of h.Version (0 means
// FormatVersion).
func MarshalHeader(h Header) []byte {
	b := make([]byte, h.UnitSize)
	copy(b, headerMagic)
	v := h.Version
	if v == 0 {
		v = FormatVersion
	}
	binary.LittleEndian.PutUint32(b[8:], v)
	binary.LittleEndian.PutUint32(b[12:], h.UnitSize)
	binary.LittleEndian.PutUint64(b[16:], h.Units)
	binary.LittleEndian.PutUint64(b[24:], h.Generation)
	if v == 1 {
		binary.LittleEndian.PutUint32(b[32:], crc32.Checksum(b[:32], castagnoli))
		return b
	}
	binary.LittleEndian.PutUint32(b[32:], h.CrashUnits)
	binary.LittleEndian.PutUint32(b[36:], crc32.Checksum(b[:36], castagnoli))
	return b
}

// ParseHeader decodes a header from the first bytes of a disk. Anything that
// is not a valid header of this version is ErrNotScratch (wrapped).
func ParseHeader(b []byte) (Header, error) {
	if len(b) < 40 || string(b[:8]) != headerMagic {
		return Header{}, ErrNotScratch
	}
	v := binary.LittleEndian.Uint32(b[8:])
	crcEnd := 36
	switch v {
	case 1:
		crcEnd = 32
	case FormatVersion:
	default:
		return Header{}, fmt.Errorf("%w: format version %d, this build knows 1 to %d", ErrNotScratch, v, FormatVersion)
	}
	if crc32.Checksum(b[:crcEnd], castagnoli) != binary.LittleEndian.Uint32(b[crcEnd:]) {
		return Header{}, fmt.Errorf("%w: header checksum mismatch", ErrNotScratch)
	}
	h := Header{
		Version:    v,
		UnitSize:   binary.LittleEndian.Uint32(b[12:]),
		Units:      binary.LittleEndian.Uint64(b[16:]),
		Generation: binary.LittleEndian.Uint64(b[24:]),
	}
	if v >= 2 {
		h.CrashUnits = binary.LittleEndian.Uint32(b[32:])
	}
	if h.UnitSize < 512 || h.UnitSize > maxUnitSize || h.UnitSize%512 != 0 {
		return Header{}, fmt.Errorf("%w: unit size %d", ErrNotScratch, h.UnitSize)
	}
	if h.Units < 2 || h.Units > 1<<32 {
		return Header{}, fmt.Errorf("%w: %d ring units", ErrNotScratch, h.Units)
	}
	if h.CrashBytes() > 1<<24 {
		return Header{}, fmt.Errorf("%w: %d crash units", ErrNotScratch, h.CrashUnits)
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
// units) to w: the header, zeroed record units and a zeroed crash area of
// CrashAreaBytes (rounded up to whole units).
func FormatImage(w io.WriterAt, size int64, unitSize int, generation uint64) (Header, error) {
	if unitSize == 0 {
		unitSize = DefaultUnitSize
	}
	h := Header{Version: FormatVersion, UnitSize: uint32(unitSize), Generation: generation}
	if unitSize < 512 || unitSize > maxUnitSize || unitSize%512 != 0 {
		return h, fmt.Errorf("observe: unit size %d: want a multiple of 512 up to %d", unitSize, maxUnitSize)
	}
	h.CrashUnits = uint32((CrashAreaBytes + unitSize - 1) / unitSize)
	units := size/int64(unitSize) - 1 - int64(h.CrashUnits)
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
	// Exit is what the console showed after the ring's last flush, saved
	// by efirt when this run exited (a panic's text, efirt's exit line);
	// empty when the run did not exit through efirt or left nothing.
	Exit string
	// ExitCut: the start of Exit was lost (efirt's capture overflowed).
	ExitCut bool
}

// Recovered is everything a scratch disk holds.
type Recovered struct {
	Header Header
	Runs   []RunLog // oldest first
	Torn   int      // units with a torn write
	// Notes say what recovery ignored (a torn crash area).
	Notes []string
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
	if l.Exit != "" {
		if b.Len() > 0 && !strings.HasSuffix(b.String(), "\n") {
			b.WriteByte('\n')
		}
		b.WriteString(ExitMarker)
		if l.ExitCut {
			b.WriteString("[observe: the beginning of the console tail was lost]\n")
		}
		b.WriteString(l.Exit)
	}
	return b.String()
}

// ExitMarker introduces a run's exit text where RunLog.String renders it.
const ExitMarker = "---- console after the last flush, saved by efirt at exit ----\n"

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
	ex, note, err := readExit(r, h)
	if err != nil {
		return nil, err
	}
	if note != "" {
		out.Notes = append(out.Notes, note)
	}
	if ex != nil {
		// The exit text belongs to its run only: a run that handed over
		// (no exit) leaves an older run's text, shown with that run.
		last := out.Last()
		if last == nil || last.Run < ex.run {
			out.Runs = append(out.Runs, RunLog{Run: ex.run})
		}
		for i := range out.Runs {
			if out.Runs[i].Run == ex.run {
				out.Runs[i].Exit, out.Runs[i].ExitCut = string(ex.text), ex.cut
			}
		}
	}
	return out, nil
}

// CrashArea is where the exit text goes, in the device's blocks: the first
// block and the count (0 on a version 1 disk, which has none).
func (r *Ring) CrashArea() (lba, blocks uint64) {
	bs := uint64(r.dev.BlockSize())
	return uint64(r.h.CrashOffset()) / bs, uint64(r.h.CrashBytes()) / bs
}

// exitText is a decoded crash area.
type exitText struct {
	run  uint32
	cut  bool
	text []byte
}

// readExit reads the crash area. An area that was never written is nil
// without a note; a torn or inconsistent one is nil with a note.
func readExit(r io.ReaderAt, h Header) (*exitText, string, error) {
	if h.CrashUnits == 0 {
		return nil, "", nil
	}
	b := make([]byte, h.CrashBytes())
	if _, err := r.ReadAt(b, h.CrashOffset()); err != nil {
		return nil, "", fmt.Errorf("observe: reading the crash area: %w", err)
	}
	ex, err := parseExit(b, h.Generation)
	if err != nil {
		return nil, fmt.Sprintf("observe: crash area ignored: %v", err), nil
	}
	return ex, "", nil
}

// errNoExit means the crash area holds nothing of this generation.
var errNoExit = errors.New("empty")

// parseExit decodes a crash area of generation gen.
func parseExit(b []byte, gen uint64) (*exitText, error) {
	if len(b) < CrashHeader || string(b[:8]) != crashMagic {
		if len(b) >= 8 && allZero(b[:8]) {
			return nil, nil
		}
		return nil, errors.New("bad magic")
	}
	if g := binary.LittleEndian.Uint64(b[8:]); g != gen {
		return nil, nil // written before the disk was formatted again
	}
	n := int(binary.LittleEndian.Uint32(b[20:]))
	if n > len(b)-CrashHeader {
		return nil, fmt.Errorf("length %d in an area of %d bytes", n, len(b))
	}
	sum := fnv1a(fnv1a(fnvOffset, b[8:28]), b[CrashHeader:CrashHeader+n])
	if sum != binary.LittleEndian.Uint32(b[28:]) {
		return nil, errors.New("checksum mismatch (a torn write)")
	}
	return &exitText{
		run:  binary.LittleEndian.Uint32(b[16:]),
		cut:  binary.LittleEndian.Uint32(b[24:])&crashCut != 0,
		text: append([]byte(nil), b[CrashHeader:CrashHeader+n]...),
	}, nil
}

// PutExit encodes a crash area as efirt writes it, for tests and tools;
// it returns the bytes used.
func PutExit(b []byte, gen uint64, run uint32, cut bool, text []byte) int {
	copy(b, crashMagic)
	binary.LittleEndian.PutUint64(b[8:], gen)
	binary.LittleEndian.PutUint32(b[16:], run)
	binary.LittleEndian.PutUint32(b[20:], uint32(len(text)))
	flags := uint32(0)
	if cut {
		flags = crashCut
	}
	binary.LittleEndian.PutUint32(b[24:], flags)
	copy(b[CrashHeader:], text)
	binary.LittleEndian.PutUint32(b[28:], fnv1a(fnv1a(fnvOffset, b[8:28]), text))
	return CrashHeader + len(text)
}

const fnvOffset, fnvPrime = 2166136261, 16777619

// fnv1a continues a 32-bit FNV-1a hash: a checksum efirt's kernel computes
// without tables.
func fnv1a(h uint32, p []byte) uint32 {
	for _, c := range p {
		h ^= uint32(c)
		h *= fnvPrime
	}
	return h
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
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
