package nic

import (
	"errors"
	"fmt"

	"github.com/ociboot/ociboot/nic/virtio"
)

// Path names a way to reach the wire.
type Path string

// The paths Open knows.
const (
	PathAuto   Path = "auto"   // virtio-net over PCI IO when possible, else SNP
	PathVirtio Path = "virtio" // only virtio-net over PCI IO
	PathSNP    Path = "snp"    // only the firmware's Simple Network Protocol
	// PathVirtioNoOffload is virtio-net with the receive offloads declined:
	// every frame cut to the MTU by the host. For a hypervisor whose
	// offloads misbehave, and to measure what they are worth.
	PathVirtioNoOffload Path = "virtio-nooffload"
)

// Paths lists the path names, for messages.
const Paths = "auto, virtio, virtio-nooffload or snp"

// ParsePath reads a path name as the boot plan or load options spell it.
func ParsePath(s string) (Path, error) {
	switch p := Path(s); p {
	case PathAuto, PathVirtio, PathVirtioNoOffload, PathSNP:
		return p, nil
	case "":
		return PathAuto, nil
	}
	return "", fmt.Errorf("nic: unknown NIC path %q (want %s)", s, Paths)
}

// Open brings up a card by path, logging which path it took and why.
// Automatic choice prefers our own virtio-net driver (it needs nothing from
// the firmware's network stack) and falls back to SNP only when no
// virtio-net function could be taken; both failures are reported together.
func Open(path Path, logf func(format string, args ...any)) (Device, error) {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	switch path {
	case PathVirtio, PathVirtioNoOffload:
		v, err := OpenVirtio(virtio.Options{NoOffloads: path == PathVirtioNoOffload})
		if err != nil {
			return nil, err
		}
		logf("nic: using %v (asked for %s)", v, path)
		return v, nil
	case PathSNP:
		s, err := OpenSNP()
		if err == nil {
			logf("nic: using %v (asked for SNP)", s)
		}
		return s, err
	case PathAuto, "":
	default:
		return nil, fmt.Errorf("nic: unknown NIC path %q", path)
	}
	v, verr := OpenVirtio(virtio.Options{})
	if verr == nil {
		logf("nic: using %v", v)
		return v, nil
	}
	s, serr := OpenSNP()
	if serr == nil {
		logf("nic: using %v, because virtio-net was not usable: %v", s, verr)
		return s, nil
	}
	return nil, fmt.Errorf("nic: no usable network card: %w", errors.Join(verr, serr))
}
