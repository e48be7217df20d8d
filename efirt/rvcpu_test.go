package efirt

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"testing"
)

// A device tree QEMU 7.2 built for its riscv64 virt machine
// (-M virt,dumpdtb=..., -cpu rv64): the timebase and the ISA string come
// out as the firmware would hand them to efirt.
func TestParseFDTQEMUVirt(t *testing.T) {
	blob, err := os.ReadFile("testdata/qemu7.2-virt-riscv64.dtb")
	if err != nil {
		t.Fatal(err)
	}
	info := parseFDTBlob(blob)
	if info.timebase != 10000000 {
		t.Errorf("timebase %d, want 10 MHz", info.timebase)
	}
	// rv64imafdch_zicsr_zifencei_zihintpause_zba_zbb_zbc_zbs_sstc
	var letters uint64
	for _, c := range "imafdch" {
		letters |= 1 << (c - 'a')
	}
	if info.letters != letters {
		t.Errorf("letters %#x, want %#x", info.letters, letters)
	}
	if want := uint64(rvExtFD | rvExtC | rvExtZba | rvExtZbb | rvExtZbc | rvExtZbs); info.ext != want {
		t.Errorf("IMA_EXT_0 %#x, want %#x", info.ext, want)
	}
	// Truncated blobs yield what came before the cut, never a panic.
	for n := 0; n < len(blob); n += 7 {
		cut := append([]byte(nil), blob[:n]...)
		parseFDTBlob(cut)
	}
}

// fdtBuilder writes a minimal flattened device tree (version 17).
type fdtBuilder struct{ structs, strs bytes.Buffer }

func (b *fdtBuilder) u32(v uint32) { binary.Write(&b.structs, binary.BigEndian, v) }
func (b *fdtBuilder) pad() {
	for b.structs.Len()%4 != 0 {
		b.structs.WriteByte(0)
	}
}
func (b *fdtBuilder) begin(name string) {
	b.u32(fdtBeginNode)
	b.structs.WriteString(name)
	b.structs.WriteByte(0)
	b.pad()
}
func (b *fdtBuilder) end() { b.u32(fdtEndNode) }
func (b *fdtBuilder) prop(name string, val []byte) {
	off := b.strs.Len()
	b.strs.WriteString(name)
	b.strs.WriteByte(0)
	b.u32(fdtProp)
	b.u32(uint32(len(val)))
	b.u32(uint32(off))
	b.structs.Write(val)
	b.pad()
}
func (b *fdtBuilder) bytes() []byte {
	b.u32(fdtEnd)
	var out bytes.Buffer
	structOff := uint32(fdtHeaderSize + 16) // header, then an empty reserve map
	strOff := structOff + uint32(b.structs.Len())
	for _, v := range []uint32{fdtMagic, strOff + uint32(b.strs.Len()), structOff, strOff, fdtHeaderSize, 17, 16, 0, uint32(b.strs.Len()), uint32(b.structs.Len())} {
		binary.Write(&out, binary.BigEndian, v)
	}
	out.Write(make([]byte, 16))
	out.Write(b.structs.Bytes())
	out.Write(b.strs.Bytes())
	return out.Bytes()
}

func be32b(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }

// The extension list of newer device trees counts, /cpus's timebase wins
// over a CPU's own, and only the first CPU is read.
func TestParseFDTExtensionsList(t *testing.T) {
	var b fdtBuilder
	b.begin("")
	b.begin("memory@80000000")
	b.prop("timebase-frequency", be32b(1)) // not under /cpus: ignored
	b.end()
	b.begin("cpus")
	b.begin("cpu@0")
	b.prop("timebase-frequency", be32b(24000000))
	b.prop("riscv,isa-extensions", []byte("i\x00m\x00a\x00f\x00d\x00c\x00v\x00zicboz\x00ZBB\x00"))
	b.end()
	b.begin("cpu@1")
	b.prop("riscv,isa", []byte("rv64imafdc_zba_zbs\x00"))
	b.end()
	b.prop("timebase-frequency", append(be32b(0), be32b(25000000)...))
	b.end()
	b.end()
	info := parseFDTBlob(b.bytes())
	if info.timebase != 25000000 {
		t.Errorf("timebase %d, want /cpus's 25 MHz", info.timebase)
	}
	if want := uint64(rvExtFD | rvExtC | rvExtV | rvExtZicboz | rvExtZbb); info.ext != want {
		t.Errorf("IMA_EXT_0 %#x, want %#x (cpu@1 must not count)", info.ext, want)
	}
}

func TestParseISA(t *testing.T) {
	for _, tc := range []struct {
		isa     string
		letters string
		ext     uint64
	}{
		{"rv64gc", "imafdc", rvExtFD | rvExtC},
		{"rv64imac", "imac", rvExtC},
		{"RV64IMAFDV_Zba_Zbb", "imafdv", rvExtFD | rvExtV | rvExtZba | rvExtZbb},
		{"rv64imaf", "imaf", 0}, // F without D is not FD
		{"rv64imazicsr_zbs", "ima", rvExtZbs},
		{"x86", "", 0},
	} {
		var info rvCPUInfo
		rvParseISA([]byte(tc.isa), &info)
		var letters uint64
		for _, c := range tc.letters {
			letters |= 1 << (c - 'a')
		}
		if info.letters != letters || info.ext != tc.ext {
			t.Errorf("%s: letters %#x ext %#x, want %#x %#x", tc.isa, info.letters, info.ext, letters, tc.ext)
		}
	}
}

// riscv_hwprobe: known keys answer, unknown ones are refused (the kernel
// then reports key -1).
func TestRVProbe(t *testing.T) {
	info := rvCPUInfo{ext: rvExtFD | rvExtZbb}
	if v, ok := rvProbe(rvKeyIMAExt0, &info); !ok || v != rvExtFD|rvExtZbb {
		t.Errorf("IMA_EXT_0: %#x %v", v, ok)
	}
	if v, ok := rvProbe(rvKeyBaseBehav, &info); !ok || v != rvBaseBehavIMA {
		t.Errorf("BASE_BEHAVIOR: %#x %v", v, ok)
	}
	if v, ok := rvProbe(rvKeyCPUPerf0, &info); !ok || v != rvMisalignedUnkn {
		t.Errorf("CPUPERF_0: %#x %v", v, ok)
	}
	if _, ok := rvProbe(99, &info); ok {
		t.Errorf("key 99 answered")
	}
}

// QEMU's virt machine has a goldfish RTC under /soc.
func TestParseFDTGoldfishRTC(t *testing.T) {
	blob, err := os.ReadFile("testdata/qemu7.2-virt-riscv64.dtb")
	if err != nil {
		t.Fatal(err)
	}
	if info := parseFDTBlob(blob); info.rtc != 0x101000 {
		t.Errorf("goldfish RTC at %#x, want 0x101000", info.rtc)
	}
}

func TestUnixToEFITime(t *testing.T) {
	for _, sec := range []int64{0, 951782400, 1709164800 + 3661, 1795000000, 4107542400 - 1, -86400} {
		var et [16]byte
		unixToEFITime(sec, 123456789, &et)
		s, ns := EFITimeToUnix(&et)
		if s != sec || ns != 123456789 {
			t.Errorf("%d: round trip gives %d.%09d (EFI_TIME % x)", sec, s, ns, et)
		}
	}
	var et [16]byte
	unixToEFITime(951782400, 0, &et) // 2000-02-29 00:00:00 UTC
	if y := int(et[0]) | int(et[1])<<8; y != 2000 || et[2] != 2 || et[3] != 29 {
		t.Errorf("2000-02-29 came out as %d-%d-%d", y, et[2], et[3])
	}
}

// QEMU's console UART is /chosen's stdout-path, /soc/serial@10000000.
func TestParseFDTConsoleUART(t *testing.T) {
	blob, err := os.ReadFile("testdata/qemu7.2-virt-riscv64.dtb")
	if err != nil {
		t.Fatal(err)
	}
	if info := parseFDTBlob(blob); info.uart != 0x10000000 {
		t.Errorf("console UART at %#x, want 0x10000000", info.uart)
	}
	// stdout-path picks among several; a 32-bit-register UART is not
	// taken.
	var b fdtBuilder
	b.begin("")
	b.begin("soc")
	for _, u := range []struct {
		addr  uint32
		shift uint32
	}{{0x1000, 2}, {0x2000, 0}, {0x3000, 0}} {
		b.begin(fmt.Sprintf("serial@%x", u.addr))
		b.prop("compatible", []byte("snps,dw-apb-uart\x00ns16550a\x00"))
		b.prop("reg", append(append(be32b(0), be32b(u.addr)...), append(be32b(0), be32b(0x100)...)...))
		if u.shift != 0 {
			b.prop("reg-shift", be32b(u.shift))
		}
		b.end()
	}
	b.end()
	b.begin("chosen")
	b.prop("stdout-path", []byte("/soc/serial@3000:115200n8\x00"))
	b.end()
	b.end()
	if info := parseFDTBlob(b.bytes()); info.uart != 0x3000 {
		t.Errorf("console UART at %#x, want stdout-path's 0x3000", info.uart)
	}
	for path, want := range map[string]uint64{"/soc/serial@10000000": 0x10000000, "serial@1f:9600": 0x1f, "/soc@0/uart": 0, "": 0} {
		if got := unitAddress([]byte(path)); got != want {
			t.Errorf("unitAddress(%q) = %#x, want %#x", path, got, want)
		}
	}
}
