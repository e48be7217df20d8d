// Package observetest holds test helpers for the loader's log and crash
// area on disk: an in-memory disk image.
package observetest

import "errors"

// Image is an in-memory disk image of len(B) bytes; reads and writes past
// its end fail, as on a real disk.
type Image struct{ B []byte }

// NewImage returns a zeroed image of size bytes.
func NewImage(size int64) *Image { return &Image{B: make([]byte, size)} }

// ReadAt reads len(p) bytes at off.
func (m *Image) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 || off+int64(len(p)) > int64(len(m.B)) {
		return 0, errors.New("read past the end")
	}
	return copy(p, m.B[off:]), nil
}

// WriteAt writes p at off.
func (m *Image) WriteAt(p []byte, off int64) (int, error) {
	if off < 0 || off+int64(len(p)) > int64(len(m.B)) {
		return 0, errors.New("write past the end")
	}
	return copy(m.B[off:], p), nil
}
