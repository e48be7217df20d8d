package handoff

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"strings"
	"testing"
	"unsafe"

	"github.com/ociboot/ociboot/uefi"
)

func gz(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	w.Write(b)
	w.Close()
	return buf.Bytes()
}

func heapAlloc(n int) ([]byte, error) { return make([]byte, n), nil }

func TestInflate(t *testing.T) {
	image := bytes.Repeat([]byte("arm64 Image "), 100000)
	got, err := Inflate(gz(t, image), heapAlloc)
	if err != nil || !bytes.Equal(got, image) {
		t.Fatalf("inflate: %v", err)
	}
	z := gz(t, image)
	binary.LittleEndian.PutUint32(z[len(z)-4:], uint32(len(image)-1)) // trailer lies: smaller
	if _, err := Inflate(z, heapAlloc); err == nil || !strings.Contains(err.Error(), "past") {
		t.Errorf("short trailer: %v", err)
	}
	z = gz(t, image)
	binary.LittleEndian.PutUint32(z[len(z)-4:], uint32(len(image)+1)) // larger
	if _, err := Inflate(z, heapAlloc); err == nil {
		t.Error("long trailer accepted")
	}
	z = gz(t, image)
	z[len(z)/2] ^= 0xff
	if _, err := Inflate(z, heapAlloc); err == nil {
		t.Error("corrupt stream accepted")
	}
	z = gz(t, image)
	binary.LittleEndian.PutUint32(z[len(z)-4:], 0xffffffff)
	if _, err := Inflate(z, heapAlloc); err == nil || !strings.Contains(err.Error(), "limit") {
		t.Errorf("huge claim: %v", err)
	}
}

func pe(machine uint16) []byte {
	b := make([]byte, 0x100)
	b[0], b[1] = 'M', 'Z'
	binary.LittleEndian.PutUint32(b[0x3c:], 0x80)
	copy(b[0x80:], "PE\x00\x00")
	binary.LittleEndian.PutUint16(b[0x84:], machine)
	return b
}

func TestPEMachine(t *testing.T) {
	if m, err := PEMachine(pe(0x8664)); err != nil || m != 0x8664 {
		t.Errorf("amd64 kernel: %#x %v", m, err)
	}
	if _, err := PEMachine(pe(0xaa64)); err == nil || !strings.Contains(err.Error(), "for arm64") {
		t.Errorf("arm64 kernel on amd64: %v", err)
	}
	if _, err := PEMachine([]byte("\x7fELF................................................................")); err == nil || !strings.Contains(err.Error(), "not a PE image") {
		t.Errorf("ELF: %v", err)
	}
	b := pe(0x8664)
	binary.LittleEndian.PutUint32(b[0x3c:], 0xfffffff0)
	if _, err := PEMachine(b); err == nil {
		t.Error("PE offset out of range accepted")
	}
}

func TestDevicePaths(t *testing.T) {
	p := uefi.VendorMediaPath(LinuxInitrdMediaGUID)
	want := []byte{4, 3, 20, 0, 0x27, 0xe4, 0x68, 0x55, 0xfc, 0x68, 0x3d, 0x4f, 0xac, 0x74, 0xca, 0x55, 0x52, 0x31, 0xcc, 0x68, 0x7f, 0xff, 4, 0}
	if !bytes.Equal(p, want) {
		t.Errorf("initrd path % x\nwant % x", p, want)
	}
	m := uefi.MemoryMappedPath(0x10000, 0x2000)
	if len(m) != 28 || m[0] != 1 || m[1] != 3 || m[2] != 24 || binary.LittleEndian.Uint64(m[8:]) != 0x10000 ||
		binary.LittleEndian.Uint64(m[16:]) != 0x11fff || !bytes.Equal(m[24:], uefi.DevicePathEnd) {
		t.Errorf("memory-mapped path % x", m)
	}
}

// TestLoadFile2 calls the assembly routine the Linux stub calls, under the
// firmware's calling convention, through each branch of the contract.
func TestLoadFile2(t *testing.T) {
	data := []byte(strings.Repeat("initramfs ", 1000))
	proto := loadFile2Proto{loadFile: loadFile2Addr(), data: uintptr(unsafe.Pointer(&data[0])), size: uintptr(len(data))}
	call := func(bootPolicy uintptr, size *uintptr, buf []byte) uintptr {
		var b uintptr
		if buf != nil {
			b = uintptr(unsafe.Pointer(&buf[0]))
		}
		var sz uintptr
		if size != nil {
			sz = uintptr(unsafe.Pointer(size))
		}
		a := [5]uintptr{uintptr(unsafe.Pointer(&proto)), 0, bootPolicy, sz, b}
		r, si, di := callMS5(proto.loadFile, &a)
		if si != 0x5151515151515151 || di != 0xd1d1d1d1d1d1d1d1 {
			t.Fatalf("RSI/RDI not preserved: %#x %#x", si, di)
		}
		return r
	}
	const (
		invalid  = 0x8000000000000002
		unsupp   = 0x8000000000000003
		tooSmall = 0x8000000000000005
	)
	var size uintptr
	if r := call(1, &size, nil); r != unsupp {
		t.Errorf("BootPolicy=TRUE: %#x", r)
	}
	if r := call(0, nil, nil); r != invalid {
		t.Errorf("NULL BufferSize: %#x", r)
	}
	if r := call(0, &size, nil); r != tooSmall || size != uintptr(len(data)) {
		t.Errorf("NULL Buffer: %#x size %d", r, size)
	}
	small := make([]byte, 10)
	size = 10
	if r := call(0, &size, small); r != tooSmall || size != uintptr(len(data)) || small[0] != 0 {
		t.Errorf("small buffer: %#x size %d", r, size)
	}
	big := make([]byte, len(data)+100)
	size = uintptr(len(big))
	if r := call(0, &size, big); r != 0 || size != uintptr(len(data)) || !bytes.Equal(big[:len(data)], data) || big[len(data)] != 0 {
		t.Errorf("copy: %#x size %d", r, size)
	}
}
