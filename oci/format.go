package oci

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Our boot artifact: an OCI image manifest with this artifactType (and the
// empty config), whose layers are a kernel, initrds in boot order and an
// optional command line, or a single UKI.
const (
	ArtifactType      = "application/vnd.ociboot.boot.v1"
	MediaTypeKernel   = "application/vnd.ociboot.kernel.v1"
	MediaTypeInitrd   = "application/vnd.ociboot.initrd.v1"
	MediaTypeCmdline  = "application/vnd.ociboot.cmdline.v1"
	MediaTypeUKI      = "application/vnd.ociboot.uki.v1"
	AnnotationCmdline = "dev.ociboot.cmdline"
)

// The netboot OCI artifact convention (pulp/netboot-oci-specs): one layer
// per file, named by org.opencontainers.image.title.
const (
	NetbootArtifactType  = "application/vnd.org.pulpproject.netboot.artifact.v1"
	NetbootFileMediaType = "application/x-netboot-file"
)

// maxCmdline bounds a command line layer; kernels accept a few KiB.
const maxCmdline = 64 << 10

// Format names a boot-artifact layout.
type Format string

const (
	FormatAuto     Format = ""          // detect
	FormatOCIBoot  Format = "ociboot"   // our artifact
	FormatNetboot  Format = "netboot"   // netboot OCI artifact
	FormatImage    Format = "image"     // any of the three below, found by walking layers
	FormatLinuxKit Format = "linuxkit"  // /kernel in an image layer
	FormatBootc    Format = "bootc"     // /usr/lib/modules/*/vmlinuz + initramfs.img
	FormatBootPath Format = "boot-path" // /boot/vmlinuz* (+ /boot/initrd.img* or initramfs*)
)

// ParseFormat reads a format hint; "" and "auto" mean detect.
func ParseFormat(s string) (Format, error) {
	switch f := Format(s); f {
	case "auto":
		return FormatAuto, nil
	case FormatAuto, FormatOCIBoot, FormatNetboot, FormatImage, FormatLinuxKit, FormatBootc, FormatBootPath:
		return f, nil
	}
	return "", fmt.Errorf("oci: unknown boot format %q (auto, ociboot, netboot, image, linuxkit, bootc, boot-path)", s)
}

func (f Format) inLayers() bool {
	return f == FormatImage || f == FormatLinuxKit || f == FormatBootc || f == FormatBootPath
}

// Layout is what a manifest says about where its boot files are. For the
// in-layer formats it lists the layers to walk; which files they hold is
// known only after walking (Format is then FormatImage or the hint).
type Layout struct {
	Format  Format
	Kernel  *ocispec.Descriptor // kernel or UKI blob (artifact formats)
	UKI     bool
	Initrds []ocispec.Descriptor // in boot order, concatenated
	Cmdline *ocispec.Descriptor  // command line blob, when there is one
	// CmdlineText is the command line from annotations; a cmdline blob,
	// once fetched, takes precedence.
	CmdlineText    string
	Layers         []ocispec.Descriptor // image layers to walk, in order
	Title, Version string
}

// Blobs lists the descriptors the layout fetches.
func (l *Layout) Blobs() []ocispec.Descriptor {
	var out []ocispec.Descriptor
	if l.Kernel != nil {
		out = append(out, *l.Kernel)
	}
	out = append(out, l.Initrds...)
	if l.Cmdline != nil {
		out = append(out, *l.Cmdline)
	}
	return append(out, l.Layers...)
}

// Detect reads a verified image manifest and finds the boot files in it,
// in the layout hint names or, for FormatAuto, the one it recognises.
func Detect(manifest []byte, hint Format) (*Layout, error) {
	var m ocispec.Manifest
	if err := json.Unmarshal(manifest, &m); err != nil {
		return nil, fmt.Errorf("decoding manifest: %w", err)
	}
	if m.MediaType != "" && !isManifest(m.MediaType) {
		return nil, fmt.Errorf("a %s is not an image manifest", m.MediaType)
	}
	at := m.ArtifactType
	if at == "" {
		at = m.Config.MediaType
	}
	hasType := func(mt string) bool {
		return slices.ContainsFunc(m.Layers, func(d ocispec.Descriptor) bool { return d.MediaType == mt })
	}
	f := hint
	if f == FormatAuto {
		switch {
		case at == ArtifactType || hasType(MediaTypeKernel) || hasType(MediaTypeUKI):
			f = FormatOCIBoot
		case at == NetbootArtifactType || hasType(NetbootFileMediaType):
			f = FormatNetboot
		case len(m.Layers) > 0 && !slices.ContainsFunc(m.Layers, func(d ocispec.Descriptor) bool { return !isTarLayer(d.MediaType) }):
			f = FormatImage
		default:
			var types []string
			for _, l := range m.Layers {
				types = append(types, l.MediaType)
			}
			return nil, fmt.Errorf("not a boot artifact this loader knows: artifactType %q, layers [%s]", at, strings.Join(types, ", "))
		}
	}
	l := &Layout{Format: f, Title: m.Annotations[ocispec.AnnotationTitle], Version: m.Annotations[ocispec.AnnotationVersion]}
	switch {
	case f == FormatOCIBoot:
		return l, l.ours(&m)
	case f == FormatNetboot:
		return l, l.netboot(&m)
	case f.inLayers():
		for _, d := range m.Layers {
			if !isTarLayer(d.MediaType) {
				return nil, fmt.Errorf("layer %s has media type %q, not a tar layer", d.Digest, d.MediaType)
			}
			l.Layers = append(l.Layers, d)
		}
		if len(l.Layers) == 0 {
			return nil, fmt.Errorf("%w: the image has no layers", ErrNoKernel)
		}
		return l, nil
	}
	return nil, fmt.Errorf("format %q cannot be read from a manifest", f)
}

func (l *Layout) ours(m *ocispec.Manifest) error {
	l.CmdlineText = m.Annotations[AnnotationCmdline]
	for i := range m.Layers {
		d := &m.Layers[i]
		switch d.MediaType {
		case MediaTypeKernel, MediaTypeUKI:
			if l.Kernel != nil {
				return fmt.Errorf("%w: layers %s and %s", ErrTwoKernels, l.Kernel.Digest, d.Digest)
			}
			l.Kernel, l.UKI = d, d.MediaType == MediaTypeUKI
		case MediaTypeInitrd:
			l.Initrds = append(l.Initrds, *d)
		case MediaTypeCmdline:
			if l.Cmdline != nil {
				return fmt.Errorf("two command line layers: %s and %s", l.Cmdline.Digest, d.Digest)
			}
			l.Cmdline = d
		}
		// Other layers (documentation, SBOMs) are not ours to fetch.
	}
	if l.Kernel == nil {
		return fmt.Errorf("%w: no %s or %s layer", ErrNoKernel, MediaTypeKernel, MediaTypeUKI)
	}
	if l.UKI && len(l.Initrds) > 0 {
		return fmt.Errorf("a UKI carries its own initrd; the artifact also has %d initrd layers", len(l.Initrds))
	}
	return nil
}

// netbootKernel and netbootInitrd tell the netboot files we boot from the
// others (shim, grub, install.img, ISO).
func netbootKernel(name string) bool {
	switch name {
	case "vmlinuz", "linux", "kernel", "bzImage", "Image", "Image.gz":
		return true
	}
	return strings.HasPrefix(name, "vmlinuz-")
}

func netbootInitrd(name string) bool {
	return strings.HasPrefix(name, "initrd") || strings.HasPrefix(name, "initramfs")
}

func (l *Layout) netboot(m *ocispec.Manifest) error {
	for i := range m.Layers {
		d := &m.Layers[i]
		if d.MediaType != NetbootFileMediaType {
			continue
		}
		name := d.Annotations[ocispec.AnnotationTitle]
		switch {
		case netbootKernel(name):
			if l.Kernel != nil {
				return fmt.Errorf("%w: files %q and %q", ErrTwoKernels, l.Kernel.Annotations[ocispec.AnnotationTitle], name)
			}
			l.Kernel = d
		case netbootInitrd(name):
			l.Initrds = append(l.Initrds, *d)
		case name == "cmdline":
			l.Cmdline = d
		}
	}
	if l.Kernel == nil {
		return fmt.Errorf("%w: no netboot file named vmlinuz, linux or kernel", ErrNoKernel)
	}
	return nil
}

func isTarLayer(mt string) bool {
	switch mt {
	case ocispec.MediaTypeImageLayer, ocispec.MediaTypeImageLayerGzip, ocispec.MediaTypeImageLayerZstd,
		"application/vnd.docker.image.rootfs.diff.tar.gzip", "application/vnd.docker.image.rootfs.diff.tar",
		"application/vnd.docker.image.rootfs.diff.tar.zstd":
		return true
	}
	return false
}
