package handoff

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"fmt"
	"io"
)

// maxInflated bounds a gzip'd kernel's claimed size before anything is
// allocated for it; real arm64 and riscv64 Images are tens of MiB.
const maxInflated = 512 << 20

func isGzip(b []byte) bool { return len(b) > 18 && b[0] == 0x1f && b[1] == 0x8b }

// Inflate decompresses a gzip'd kernel (arm64 and riscv64 distro kernels
// ship as gzip'd Image) into memory from alloc, sized by the gzip trailer,
// and checks that the stream fills it exactly. On an error after the
// allocation it still returns the allocated memory, for the caller to free.
func Inflate(src []byte, alloc func(n int) ([]byte, error)) ([]byte, error) {
	if !isGzip(src) {
		return nil, fmt.Errorf("handoff: kernel is not gzip data")
	}
	size := int(binary.LittleEndian.Uint32(src[len(src)-4:])) // ISIZE: length mod 2^32
	if size == 0 || size > maxInflated {
		return nil, fmt.Errorf("handoff: gzip'd kernel claims %d bytes inflated (limit %d)", size, maxInflated)
	}
	zr, err := gzip.NewReader(bytes.NewReader(src))
	if err != nil {
		return nil, fmt.Errorf("handoff: gzip'd kernel: %w", err)
	}
	zr.Multistream(false)
	dst, err := alloc(size)
	if err != nil {
		return nil, err
	}
	if _, err := io.ReadFull(zr, dst); err != nil {
		return dst, fmt.Errorf("handoff: inflating the kernel: %w", err)
	}
	if n, _ := zr.Read(make([]byte, 1)); n != 0 {
		return dst, fmt.Errorf("handoff: gzip'd kernel inflates past the %d bytes its trailer claims", size)
	}
	if _, err := io.Copy(io.Discard, zr); err != nil { // reaches the CRC check
		return dst, fmt.Errorf("handoff: inflating the kernel: %w", err)
	}
	return dst, nil
}
