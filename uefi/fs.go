package uefi

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"unsafe"
)

// SimpleFileSystemProtocolGUID is EFI_SIMPLE_FILE_SYSTEM_PROTOCOL_GUID.
var SimpleFileSystemProtocolGUID = NewGUID(0x964e5b22, 0x6459, 0x11d2, [8]byte{0x8e, 0x39, 0x00, 0xa0, 0xc9, 0x69, 0x72, 0x3b})

// EFI_SIMPLE_FILE_SYSTEM_PROTOCOL and EFI_FILE_PROTOCOL function offsets.
const (
	sfsOpenVolume = 8
	fileOpen      = 8
	fileClose     = 16
	fileRead      = 32
	fileModeRead  = 1
)

// ErrNoFile is returned when the file does not exist.
var ErrNoFile = errors.New("no such file")

// ReadFileBesideImage reads the file name from the directory the running
// image was loaded from, on the same volume (the ESP, usually). It reads at
// most max bytes.
func ReadFileBesideImage(name string, max int) ([]byte, error) {
	li, err := OpenLoadedImage(ImageHandle())
	if err != nil {
		return nil, err
	}
	dir := imageDir(li.FilePath)
	path := dir + `\` + name
	fs, err := HandleProtocol(li.DeviceHandle, &SimpleFileSystemProtocolGUID)
	if err != nil {
		return nil, fmt.Errorf("uefi: %s: the loader's volume has no file system: %w", path, err)
	}
	var root, file uintptr
	if err := Call(*at[uintptr](fs + sfsOpenVolume), fs, uintptr(unsafe.Pointer(&root))).Err(); err != nil {
		return nil, fmt.Errorf("uefi: opening the loader's volume: %w", err)
	}
	defer Call(*at[uintptr](root + fileClose), root)
	p := append(UCS2(path), 0)
	if err := Call(*at[uintptr](root + fileOpen), root, uintptr(unsafe.Pointer(&file)), uintptr(unsafe.Pointer(&p[0])), fileModeRead, 0).Err(); err != nil {
		if err == NotFound {
			return nil, fmt.Errorf("uefi: %s: %w", path, ErrNoFile)
		}
		return nil, fmt.Errorf("uefi: opening %s: %w", path, err)
	}
	defer Call(*at[uintptr](file + fileClose), file)
	var out []byte
	buf := make([]byte, 64<<10)
	for {
		n := uintptr(len(buf))
		if err := Call(*at[uintptr](file + fileRead), file, uintptr(unsafe.Pointer(&n)), uintptr(unsafe.Pointer(&buf[0]))).Err(); err != nil {
			return nil, fmt.Errorf("uefi: reading %s: %w", path, err)
		}
		if n == 0 {
			return out, nil
		}
		out = append(out, buf[:n]...)
		if len(out) > max {
			return nil, fmt.Errorf("uefi: %s is larger than %d bytes", path, max)
		}
	}
}

// imageDir is the directory part of the file-path nodes of a device path
// ("\EFI\BOOT" for \EFI\BOOT\BOOTX64.EFI).
func imageDir(dp uintptr) string {
	if dp == 0 {
		return ""
	}
	b, err := devicePathAt(dp)
	if err != nil {
		return ""
	}
	return filePathDir(b)
}

// filePathDir joins the file-path nodes of device path b and returns the
// directory part.
func filePathDir(b []byte) string {
	paths, err := ParseDevicePaths(b)
	if err != nil || len(paths) == 0 {
		return ""
	}
	var path []uint16
	for _, n := range paths[0] {
		if n.Type != dpMedia || n.SubType != 4 { // not a file-path node
			continue
		}
		for i := 0; i+1 < len(n.Data); i += 2 {
			c := binary.LittleEndian.Uint16(n.Data[i:])
			if c == 0 {
				break
			}
			path = append(path, c)
		}
	}
	s := FromUCS2(path)
	if i := strings.LastIndexByte(s, '\\'); i >= 0 {
		return s[:i]
	}
	return ""
}
