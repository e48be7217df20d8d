package stack

import (
	"bytes"
	"encoding/binary"
	"testing"
	"time"

	"github.com/ociboot/ociboot/frames"
	"github.com/ociboot/ociboot/nic/csum"
)

// packet builds an IPv4 packet carrying a TCP segment.
func packet(o tcpOut, payload []byte) []byte {
	src, dst := [4]byte{10, 0, 0, 2}, [4]byte{10, 0, 0, 1}
	total := ipv4HeaderLen + tcpHeaderLen + o.optLen() + len(payload)
	p := make([]byte, total)
	putIPv4(p, total, 9, protoTCP, src, dst)
	copy(p[ipv4HeaderLen+tcpHeaderLen+o.optLen():], payload)
	putTCP(p[ipv4HeaderLen:], 80, 50000, &o, len(payload), src, dst)
	return p
}

func TestParseIPv4(t *testing.T) {
	good := packet(tcpOut{seq: 1, ack: 2, flags: flagACK, wnd: 100}, []byte("data"))
	h, payload, err := parseIPv4(append(bytes.Clone(good), 0, 0, 0)) // link padding
	if err != nil || h.proto != protoTCP || len(payload) != len(good)-20 || h.src != [4]byte{10, 0, 0, 2} {
		t.Fatalf("good packet: %+v, %d, %v", h, len(payload), err)
	}
	fix := func(p []byte) []byte { // recompute the header checksum after an edit
		p[10], p[11] = 0, 0
		binary.BigEndian.PutUint16(p[10:], csum.Checksum(p[:int(p[0]&0xf)*4]))
		return p
	}
	cases := []struct {
		name string
		p    []byte
		want error
	}{
		{"truncated", good[:19], errTruncated},
		{"IPv6", fix(func(p []byte) []byte { p[0] = 0x65; return p }(bytes.Clone(good))), errVersion},
		{"IHL 4", func(p []byte) []byte { p[0] = 0x44; return p }(bytes.Clone(good)), errIHL},
		{"IHL past end", func(p []byte) []byte { p[0] = 0x4f; return p[:40] }(bytes.Clone(good)), errIHL},
		{"total length past end", fix(func(p []byte) []byte { binary.BigEndian.PutUint16(p[2:], 2000); return p }(bytes.Clone(good))), errTotalLen},
		{"total length below header", fix(func(p []byte) []byte { binary.BigEndian.PutUint16(p[2:], 10); return p }(bytes.Clone(good))), errTotalLen},
		{"bad checksum", func(p []byte) []byte { p[8]--; return p }(bytes.Clone(good)), errChecksum},
		{"more fragments", fix(func(p []byte) []byte { p[6] |= 0x20; return p }(bytes.Clone(good))), errFragment},
		{"fragment offset", fix(func(p []byte) []byte { p[7] = 1; return p }(bytes.Clone(good))), errFragment},
	}
	for _, c := range cases {
		if _, _, err := parseIPv4(c.p); err != c.want {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
}

func TestTCPRoundTrip(t *testing.T) {
	outs := []tcpOut{
		{seq: 7, flags: flagSYN, wnd: 65535, syn: true, mss: 1460, wscale: 7, ts: true, tsVal: 11},
		{seq: 7, flags: flagSYN, wnd: 65535, syn: true, mss: 536, wscale: 3},
		{seq: 1 << 31, ack: 99, flags: flagACK | flagPSH, wnd: 3, ts: true, tsVal: 5, tsEcr: 6,
			sacks: []sackBlock{{100, 200}, {300, 400}, {500, 600}}},
		{seq: 1, ack: 2, flags: flagACK, sacks: []sackBlock{{1, 2}, {3, 4}, {5, 6}, {7, 8}}},
		{seq: 3, ack: 4, flags: flagRST},
	}
	for i, o := range outs {
		p := packet(o, []byte("hello"))
		h, payload, err := parseIPv4(p)
		if err != nil {
			t.Fatal(err)
		}
		s, err := parseTCP(payload, h.src, h.dst)
		if err != nil {
			t.Fatalf("%d: %v", i, err)
		}
		if s.seq != o.seq || s.ack != o.ack || s.flags != o.flags || s.wnd != o.wnd || s.ts != o.ts ||
			s.tsVal != o.tsVal || s.tsEcr != o.tsEcr || s.nsack != len(o.sacks) || string(s.payload) != "hello" ||
			s.srcPort != 80 || s.dstPort != 50000 {
			t.Fatalf("%d: parsed %+v from %+v", i, s, o)
		}
		for j, b := range o.sacks {
			if s.sack[j] != b {
				t.Fatalf("%d: SACK %d = %v, want %v", i, j, s.sack[j], b)
			}
		}
		if o.syn && (s.mss != o.mss || s.wscale != int8(o.wscale) || !s.sackOK) {
			t.Fatalf("%d: SYN options %+v", i, s)
		}
		if !o.syn && (s.mss != 0 || s.wscale != -1 || s.sackOK) {
			t.Fatalf("%d: options that were not sent: %+v", i, s)
		}
	}
}

func TestParseTCPMalformed(t *testing.T) {
	p := packet(tcpOut{seq: 1, flags: flagACK, ts: true, tsVal: 1}, []byte("x"))
	src, dst := [4]byte{10, 0, 0, 2}, [4]byte{10, 0, 0, 1}
	seg := bytes.Clone(p[20:])
	if _, err := parseTCP(seg[:19], src, dst); err != errTruncated {
		t.Errorf("truncated: %v", err)
	}
	for _, off := range []byte{0, 4, 15} {
		b := bytes.Clone(seg)
		b[12] = off << 4
		if _, err := parseTCP(b, src, dst); err != errDataOffset {
			t.Errorf("data offset %d: %v", off, err)
		}
	}
	b := bytes.Clone(seg)
	b[len(b)-1] ^= 1
	if _, err := parseTCP(b, src, dst); err != errChecksum {
		t.Errorf("corrupt payload: %v", err)
	}
	if _, err := parseTCP(seg, src, [4]byte{10, 0, 0, 3}); err != errChecksum {
		t.Errorf("wrong pseudo-header: %v", err)
	}
	// Broken option lengths end option parsing without failing the segment.
	for _, opts := range [][]byte{{8, 0, 1, 1}, {8, 40, 1, 1}, {2, 3, 1, 1}, {5, 3, 0, 0}} {
		var s segment
		s.wscale = -1
		parseOptions(&s, opts)
		if s.ts || s.mss != 0 || s.nsack != 0 {
			t.Errorf("options % x parsed as %+v", opts, s)
		}
	}
}

// Malformed packets reaching the stack are counted and dropped, and the
// connection they aimed at carries on.
func TestMalformedPacketsDropped(t *testing.T) {
	p := newScriptPeer(t, Options{})
	sc := p.dial(bigWnd)
	good := func() []byte {
		o := tcpOut{seq: sc.sndNxt, ack: sc.rcvNxt, flags: flagACK, wnd: bigWnd, ts: true, tsVal: 3}
		total := ipv4HeaderLen + tcpHeaderLen + o.optLen() + 4
		b := make([]byte, total)
		src, dst := p.ip, ourAddr.Addr().As4()
		putIPv4(b, total, 1, protoTCP, src, dst)
		copy(b[total-4:], "junk")
		putTCP(b[ipv4HeaderLen:], p.port, sc.lport, &o, 4, src, dst)
		return b
	}
	bad := [][]byte{
		good()[:10],
		func(b []byte) []byte { b[0] = 0x43; return b }(good()),
		func(b []byte) []byte { b[10]++; return b }(good()),
		func(b []byte) []byte { b[ipv4HeaderLen+12] = 0x20; return b }(good()), // data offset 2
		func(b []byte) []byte { b[len(b)-1]++; return b }(good()),              // TCP checksum
	}
	batch := p.pool.Get()
	for _, pkt := range bad {
		f := batch.Append(frames.HeaderLen + len(pkt))
		frames.Header{Dst: p.ourMAC, Src: p.mac, Type: frames.TypeIPv4}.Put(f)
		copy(f[frames.HeaderLen:], pkt)
	}
	p.rx <- batch
	sc.send(flagACK|flagPSH, bigWnd, []byte("fine"))
	buf := make([]byte, 10)
	sc.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := sc.c.Read(buf); err != nil || string(buf[:n]) != "fine" {
		t.Fatalf("Read after malformed packets: %q, %v", buf[:n], err)
	}
	if st := p.s.Stats(); st.Malformed != 3 {
		t.Errorf("IP layer counted %d malformed, want 3", st.Malformed)
	}
	if n := connOf(sc.c).stats.badSegsIn.Load(); n != 2 {
		t.Errorf("connection counted %d bad segments, want 2", n)
	}
}

// FuzzParseSegment feeds arbitrary bytes to the IPv4 and TCP parsers: they
// must not panic, must keep the payload inside the packet, and what they
// accept must survive a rebuild.
func FuzzParseSegment(f *testing.F) {
	f.Add(packet(tcpOut{seq: 1, flags: flagSYN, syn: true, mss: 1460, wscale: 7, ts: true, wnd: 100}, nil))
	f.Add(packet(tcpOut{seq: 5, ack: 6, flags: flagACK, ts: true, sacks: []sackBlock{{1, 2}}}, []byte("payload")))
	f.Fuzz(func(t *testing.T, p []byte) {
		h, payload, err := parseIPv4(p)
		if err != nil {
			return
		}
		if len(payload) > len(p)-20 || h.ihl < 20 {
			t.Fatalf("payload %d of a %d-byte packet, ihl %d", len(payload), len(p), h.ihl)
		}
		if h.proto != protoTCP {
			return
		}
		s, err := parseTCP(payload, h.src, h.dst)
		if err != nil {
			return
		}
		if len(s.payload) > len(payload)-20 || s.nsack > 4 {
			t.Fatalf("segment payload %d of %d, %d SACK blocks", len(s.payload), len(payload), s.nsack)
		}
		o := tcpOut{seq: s.seq, ack: s.ack, flags: s.flags, wnd: s.wnd, ts: s.ts, tsVal: s.tsVal, tsEcr: s.tsEcr, sacks: s.sack[:s.nsack]}
		if o.optLen() > 40 {
			return // more SACK blocks than fit beside a timestamp
		}
		total := 40 + o.optLen() + len(s.payload)
		b := make([]byte, total)
		putIPv4(b, total, 1, protoTCP, h.src, h.dst)
		copy(b[40+o.optLen():], s.payload)
		putTCP(b[20:], s.srcPort, s.dstPort, &o, len(s.payload), h.src, h.dst)
		h2, pl2, err := parseIPv4(b)
		if err != nil {
			t.Fatalf("rebuilt packet: %v", err)
		}
		s2, err := parseTCP(pl2, h2.src, h2.dst)
		if err != nil {
			t.Fatalf("rebuilt segment: %v", err)
		}
		if s2.seq != s.seq || s2.ack != s.ack || s2.flags != s.flags || s2.tsVal != s.tsVal || !bytes.Equal(s2.payload, s.payload) {
			t.Fatalf("rebuilt %+v, want %+v", s2, s)
		}
	})
}
