package stack

import (
	"encoding/binary"
	"errors"

	"github.com/ociboot/ociboot/nic/csum"
)

// TCP flags.
const (
	flagFIN = 1 << iota
	flagSYN
	flagRST
	flagPSH
	flagACK
	flagURG
)

const tcpHeaderLen = 20

var errDataOffset = errors.New("bad TCP data offset")

type sackBlock struct{ start, end uint32 }

// segment is a parsed TCP segment; payload aliases the packet buffer.
type segment struct {
	srcPort, dstPort uint16
	seq, ack         uint32
	flags            uint8
	wnd              uint16
	mss              uint16 // 0: option absent
	wscale           int8   // -1: option absent
	sackOK           bool
	ts               bool
	tsVal, tsEcr     uint32
	nsack            int
	sack             [4]sackBlock
	payload          []byte
}

// seqLen is the sequence space the segment occupies.
func (s *segment) seqLen() uint32 {
	n := uint32(len(s.payload))
	if s.flags&flagSYN != 0 {
		n++
	}
	if s.flags&flagFIN != 0 {
		n++
	}
	return n
}

// parseTCP validates segment b (the IPv4 payload) against its checksum and
// data offset, and parses the options we use.
func parseTCP(b []byte, src, dst [4]byte) (s segment, err error) {
	if len(b) < tcpHeaderLen {
		return s, errTruncated
	}
	off := int(b[12]>>4) * 4
	if off < tcpHeaderLen || off > len(b) {
		return s, errDataOffset
	}
	if csum.Fold(csum.Sum(pseudoSum(src, dst, protoTCP, len(b)), b)) != 0 {
		return s, errChecksum
	}
	s.srcPort = binary.BigEndian.Uint16(b[0:2])
	s.dstPort = binary.BigEndian.Uint16(b[2:4])
	s.seq = binary.BigEndian.Uint32(b[4:8])
	s.ack = binary.BigEndian.Uint32(b[8:12])
	s.flags = b[13] & 0x3f
	s.wnd = binary.BigEndian.Uint16(b[14:16])
	s.wscale = -1
	s.payload = b[off:]
	parseOptions(&s, b[tcpHeaderLen:off])
	return s, nil
}

// parseOptions reads TCP options; a malformed option ends the parse (the
// segment itself is still good, as RFC 9293 asks).
func parseOptions(s *segment, o []byte) {
	for len(o) > 0 {
		kind := o[0]
		if kind == 0 {
			return
		}
		if kind == 1 {
			o = o[1:]
			continue
		}
		if len(o) < 2 || int(o[1]) < 2 || int(o[1]) > len(o) {
			return
		}
		l := int(o[1])
		v := o[2:l]
		switch {
		case kind == 2 && l == 4:
			s.mss = binary.BigEndian.Uint16(v)
		case kind == 3 && l == 3:
			s.wscale = int8(min(v[0], 14))
		case kind == 4 && l == 2:
			s.sackOK = true
		case kind == 5 && (l-2)%8 == 0:
			for i := 0; i+8 <= len(v) && s.nsack < len(s.sack); i += 8 {
				s.sack[s.nsack] = sackBlock{binary.BigEndian.Uint32(v[i:]), binary.BigEndian.Uint32(v[i+4:])}
				s.nsack++
			}
		case kind == 8 && l == 10:
			s.ts = true
			s.tsVal = binary.BigEndian.Uint32(v[0:4])
			s.tsEcr = binary.BigEndian.Uint32(v[4:8])
		}
		o = o[l:]
	}
}

// tcpOut describes a segment to build.
type tcpOut struct {
	seq, ack     uint32
	flags        uint8
	wnd          uint16
	syn          bool // SYN options: MSS, SACK-permitted, window scale
	mss          uint16
	wscale       uint8
	ts           bool
	tsVal, tsEcr uint32
	sacks        []sackBlock
}

func (o *tcpOut) optLen() int {
	n := 0
	if o.syn {
		n += 4 + 2 + 4 // MSS, SACK-permitted (padded to 4 with TS's NOPs), NOP+WS
		if o.ts {
			n += 10
		} else {
			n += 2
		}
		return n
	}
	if o.ts {
		n += 12
	}
	if len(o.sacks) > 0 {
		n += 4 + 8*len(o.sacks)
	}
	return n
}

// putTCP writes the header (with options) into b, whose payload of
// payloadLen bytes follows the header already, and fills in the checksum.
// It returns the header length.
func putTCP(b []byte, sport, dport uint16, o *tcpOut, payloadLen int, src, dst [4]byte) int {
	hl := tcpHeaderLen + o.optLen()
	binary.BigEndian.PutUint16(b[0:2], sport)
	binary.BigEndian.PutUint16(b[2:4], dport)
	binary.BigEndian.PutUint32(b[4:8], o.seq)
	binary.BigEndian.PutUint32(b[8:12], o.ack)
	b[12] = byte(hl/4) << 4
	b[13] = o.flags
	binary.BigEndian.PutUint16(b[14:16], o.wnd)
	b[16], b[17], b[18], b[19] = 0, 0, 0, 0
	p := b[tcpHeaderLen:hl]
	if o.syn {
		p[0], p[1] = 2, 4
		binary.BigEndian.PutUint16(p[2:4], o.mss)
		p = p[4:]
		if o.ts {
			p[0], p[1] = 4, 2 // SACK-permitted
			p[2], p[3] = 8, 10
			binary.BigEndian.PutUint32(p[4:8], o.tsVal)
			binary.BigEndian.PutUint32(p[8:12], o.tsEcr)
			p = p[12:]
		} else {
			p[0], p[1], p[2], p[3] = 1, 1, 4, 2
			p = p[4:]
		}
		p[0], p[1], p[2], p[3] = 1, 3, 3, o.wscale
	} else {
		if o.ts {
			p[0], p[1], p[2], p[3] = 1, 1, 8, 10
			binary.BigEndian.PutUint32(p[4:8], o.tsVal)
			binary.BigEndian.PutUint32(p[8:12], o.tsEcr)
			p = p[12:]
		}
		if len(o.sacks) > 0 {
			p[0], p[1], p[2], p[3] = 1, 1, 5, byte(2+8*len(o.sacks))
			p = p[4:]
			for _, s := range o.sacks {
				binary.BigEndian.PutUint32(p[0:4], s.start)
				binary.BigEndian.PutUint32(p[4:8], s.end)
				p = p[8:]
			}
		}
	}
	n := hl + payloadLen
	binary.BigEndian.PutUint16(b[16:18], csum.Fold(csum.Sum(pseudoSum(src, dst, protoTCP, n), b[:n])))
	return hl
}

// Sequence-number comparisons modulo 2^32 (RFC 9293 3.4).
func seqLT(a, b uint32) bool  { return int32(a-b) < 0 }
func seqLEQ(a, b uint32) bool { return int32(a-b) <= 0 }
func seqGT(a, b uint32) bool  { return int32(a-b) > 0 }
func seqGEQ(a, b uint32) bool { return int32(a-b) >= 0 }
func seqMax(a, b uint32) uint32 {
	if seqGT(a, b) {
		return a
	}
	return b
}
