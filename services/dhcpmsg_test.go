package services

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseSearchList(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []byte
		want []string
		err  string
	}{
		{
			// RFC 3397 §3's example: the second name points into the first.
			name: "rfc3397",
			in: []byte{3, 'e', 'n', 'g', 5, 'a', 'p', 'p', 'l', 'e', 3, 'c', 'o', 'm', 0,
				9, 'm', 'a', 'r', 'k', 'e', 't', 'i', 'n', 'g', 0xc0, 4},
			want: []string{"eng.apple.com", "marketing.apple.com"},
		},
		{
			name: "pointer to a pointer",
			in:   []byte{1, 'a', 1, 'b', 0, 1, 'c', 0xc0, 2, 1, 'd', 0xc0, 5},
			want: []string{"a.b", "c.b", "d.c.b"},
		},
		{name: "empty names skipped", in: []byte{0, 1, 'x', 0}, want: []string{"x"}},
		{name: "forward pointer", in: []byte{0xc0, 2, 1, 'a', 0}, err: "does not point backwards"},
		{name: "self pointer", in: []byte{1, 'a', 0xc0, 2}, err: "does not point backwards"},
		// The pointer at 2 leads back to 0, whose walk reaches 2 again.
		{name: "loop", in: []byte{1, 'a', 0xc0, 0}, err: "too many compression pointers"},
		{name: "truncated label", in: []byte{5, 'a', 'b'}, err: "label truncated"},
		{name: "no terminator", in: []byte{1, 'a'}, err: "name truncated"},
		{name: "truncated pointer", in: []byte{0xc0}, err: "pointer truncated"},
		{name: "reserved label type", in: []byte{0x40, 0}, err: "label type"},
		{name: "dot in label", in: []byte{3, 'a', '.', 'b', 0}, err: "label"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseSearchList(tc.in)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("got %q, %v; want error containing %q", got, err, tc.err)
				}
				return
			}
			if err != nil || !slices.Equal(got, tc.want) {
				t.Fatalf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestParseClasslessRoutes(t *testing.T) {
	got, err := parseClasslessRoutes([]byte{
		0, 10, 0, 0, 1, // default via 10.0.0.1
		8, 10, 10, 0, 0, 2, // 10/8 via 10.0.0.2
		24, 192, 168, 7, 0, 0, 0, 0, // 192.168.7/24 on-link
		32, 1, 2, 3, 4, 10, 0, 0, 3, // host route
		12, 172, 31, 10, 0, 0, 4, // 172.16/12, bits past the width cleared
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []Route{
		{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParseAddr("10.0.0.1")},
		{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParseAddr("10.0.0.2")},
		{netip.MustParsePrefix("192.168.7.0/24"), netip.MustParseAddr("0.0.0.0")},
		{netip.MustParsePrefix("1.2.3.4/32"), netip.MustParseAddr("10.0.0.3")},
		{netip.MustParsePrefix("172.16.0.0/12"), netip.MustParseAddr("10.0.0.4")},
	}
	if !slices.Equal(got, want) {
		t.Errorf("got %v\nwant %v", got, want)
	}
	for _, bad := range [][]byte{{33, 1, 2, 3, 4, 5, 6, 7, 8, 9}, {24, 10, 0, 0, 1, 2}, {}} {
		if r, err := parseClasslessRoutes(bad); err == nil {
			t.Errorf("%v parsed as %v", bad, r)
		}
	}
}

func TestMaskBits(t *testing.T) {
	for mask, want := range map[[4]byte]int{
		{255, 255, 255, 0}: 24, {255, 255, 255, 255}: 32, {255, 255, 240, 0}: 20, {128, 0, 0, 0}: 1,
		{0, 0, 0, 0}: -1, {255, 0, 255, 0}: -1, {255, 255, 255, 1}: -1,
	} {
		got, err := maskBits(mask[:])
		if (want < 0) != (err != nil) || (err == nil && got != want) {
			t.Errorf("maskBits(%v) = %d, %v; want %d", mask, got, err, want)
		}
	}
}

// ackBytes builds a server reply by hand, with the sname and file fields
// given raw so that option overload can be exercised.
func ackBytes(sname, file []byte, opts ...byte) []byte {
	b := make([]byte, dhcpMinLen)
	b[0], b[1], b[2] = opReply, 1, 6
	copy(b[4:], []byte{1, 2, 3, 4})
	copy(b[16:], []byte{10, 1, 2, 3})
	copy(b[20:], []byte{10, 1, 2, 1})
	copy(b[28:], testMAC)
	copy(b[44:108], sname)
	copy(b[108:236], file)
	copy(b[236:], magicCookie[:])
	return append(append(b, opts...), optEnd)
}

func TestParseOverloadAndLongOptions(t *testing.T) {
	// The options field says both file and sname carry options; the boot
	// file name lives in the file field, the DNS list is split over two
	// instances (RFC 3396) and the domain sits in sname.
	file := []byte{optBootFileName, 9, 'b', 'o', 'o', 't', '.', 'e', 'f', 'i', 0, optDNS, 4, 10, 1, 2, 54, optEnd}
	sname := []byte{optDomainName, 4, 't', 'e', 's', 't', optEnd}
	b := ackBytes(sname, file,
		optMessageType, 1, msgAck, optServerID, 4, 10, 1, 2, 1, optLeaseTime, 4, 0, 0, 0x0e, 0x10,
		optOverload, 1, 3, optDNS, 4, 10, 1, 2, 53, optSubnetMask, 4, 255, 255, 0, 0)
	m, err := parseDHCP(b)
	if err != nil {
		t.Fatal(err)
	}
	l, warnings, err := leaseFrom(m, time.Unix(0, 0))
	if err != nil || len(warnings) > 0 {
		t.Fatal(err, warnings)
	}
	if l.BootFile != "boot.efi" || l.Domain != "test" || l.ServerName != "" || l.Addr.String() != "10.1.2.3/16" ||
		l.LeaseTime != time.Hour || l.T1 != 30*time.Minute || l.T2 != 52*time.Minute+30*time.Second {
		t.Errorf("lease %+v", l)
	}
	if want := []netip.Addr{netip.MustParseAddr("10.1.2.53"), netip.MustParseAddr("10.1.2.54")}; !slices.Equal(l.DNS, want) {
		t.Errorf("DNS %v, want %v (concatenated in options, file order)", l.DNS, want)
	}
	// Without overload, the same bytes in file are a (strange) file name.
	m, err = parseDHCP(ackBytes([]byte("srv"), []byte("pxelinux.0"), optMessageType, 1, msgOffer))
	if err != nil {
		t.Fatal(err)
	}
	if m.file != "pxelinux.0" || m.sname != "srv" {
		t.Errorf("file %q sname %q", m.file, m.sname)
	}
}

func TestLeaseWarnings(t *testing.T) {
	// A broken optional option is dropped with a warning; the lease stands.
	m, err := parseDHCP(ackBytes(nil, nil,
		optMessageType, 1, msgAck, optLeaseTime, 4, 0xff, 0xff, 0xff, 0xff,
		optRouter, 3, 10, 1, 2, optMTU, 2, 0, 10, optDomainSearch, 2, 0xc0, 0))
	if err != nil {
		t.Fatal(err)
	}
	l, warnings, err := leaseFrom(m, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if len(warnings) != 3 || l.Routers != nil || l.MTU != 0 || l.Search != nil {
		t.Errorf("lease %+v, warnings %v", l, warnings)
	}
	if l.LeaseTime != 0 || l.T1 != 0 {
		t.Errorf("infinite lease came out as %v (T1 %v)", l.LeaseTime, l.T1)
	}
	// An ACK with no lease time is refused.
	m, _ = parseDHCP(ackBytes(nil, nil, optMessageType, 1, msgAck))
	if _, _, err := leaseFrom(m, time.Now()); err == nil {
		t.Error("ACK without lease time accepted")
	}
}

func TestRequestRoundTrip(t *testing.T) {
	long := make([]byte, 600)
	for i := range long {
		long[i] = byte(i)
	}
	r := dhcpRequest{xid: 0xdeadbeef, secs: 7, broadcast: true, ciaddr: netip.MustParseAddr("10.0.0.9"), mac: testMAC,
		opts: []dhcpOption{{optMessageType, []byte{msgRequest}}, {200, long}}}
	b := r.marshal()
	if len(b) < bootpMinLen {
		t.Errorf("request of %d bytes, want at least %d", len(b), bootpMinLen)
	}
	b[0] = opReply // parseDHCP does not care, but be honest about it
	m, err := parseDHCP(b)
	if err != nil {
		t.Fatal(err)
	}
	if m.xid != r.xid || m.secs != 7 || m.flags != flagBroadcast || m.ciaddr != r.ciaddr || string(m.chaddr) != string(testMAC) ||
		m.messageType() != msgRequest || string(m.opts[200]) != string(long) {
		t.Errorf("round trip: %+v", m)
	}
}

// FuzzParseDHCP feeds arbitrary datagrams to the parser and the lease
// builder, and raw option bodies to the option decoders. None may panic, and
// what they accept must hold together.
func FuzzParseDHCP(f *testing.F) {
	f.Add(ackBytes(nil, nil, optMessageType, 1, msgAck, optLeaseTime, 4, 0, 0, 1, 0))
	f.Add(ackBytes([]byte{optDomainSearch, 2, 0xc0, 0}, []byte{optClasslessRoutes, 5, 8, 10, 1, 1, 1},
		optOverload, 1, 3, optMessageType, 1, msgOffer))
	f.Fuzz(func(t *testing.T, b []byte) {
		if m, err := parseDHCP(b); err == nil {
			if len(m.chaddr) > 16 {
				t.Fatalf("chaddr of %d bytes", len(m.chaddr))
			}
			if l, _, err := leaseFrom(m, time.Now()); err == nil {
				if !l.Addr.IsValid() || !l.Addr.Addr().Is4() || l.T1 > l.T2 || (l.LeaseTime != 0 && l.T2 > l.LeaseTime) {
					t.Fatalf("inconsistent lease %+v", l)
				}
				_ = l.String()
			}
		}
		if names, err := parseSearchList(b); err == nil {
			for _, n := range names {
				if len(n) > 253 || strings.Contains(n, "..") {
					t.Fatalf("search name %q", n)
				}
			}
		}
		if routes, err := parseClasslessRoutes(b); err == nil {
			for _, r := range routes {
				if r.Dest != r.Dest.Masked() {
					t.Fatalf("route %v not masked", r.Dest)
				}
			}
		}
	})
}
