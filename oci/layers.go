package oci

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"path"
	"slices"
	"sort"
	"strings"

	"github.com/klauspost/compress/zstd"
)

// maxZstdWindow bounds the memory one zstd layer may make us reserve;
// "zstd --long" uses 128 MiB windows, ordinary levels at most 8 MiB.
const maxZstdWindow = 128 << 20

// walkLayer reads one image layer, a tar stream that may be gzip or zstd
// compressed (told apart by their magic, not by the media type, which
// registries and tools get wrong), calling visit for each entry with the
// entry's body. It reads the stream to its end so that compressed formats
// check their trailers.
func walkLayer(r io.Reader, visit func(hdr *tar.Header, body io.Reader) error) error {
	br := bufio.NewReaderSize(r, 64<<10)
	magic, _ := br.Peek(4)
	var src io.Reader = br
	switch {
	case len(magic) >= 2 && magic[0] == 0x1f && magic[1] == 0x8b:
		zr, err := gzip.NewReader(br)
		if err != nil {
			return fmt.Errorf("gzip: %w", err)
		}
		defer zr.Close()
		src = zr
	case len(magic) == 4 && string(magic) == "\x28\xb5\x2f\xfd":
		// One decoding goroutine: the loader has one CPU, and a
		// synchronous decoder leaves nothing running after an error.
		zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true), zstd.WithDecoderMaxWindow(maxZstdWindow))
		if err != nil {
			return fmt.Errorf("zstd: %w", err)
		}
		defer zr.Close()
		src = zr
	}
	tr := tar.NewReader(src)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("tar: %w", err)
		}
		if err := visit(hdr, tr); err != nil {
			return err
		}
	}
	if _, err := io.Copy(io.Discard, src); err != nil {
		return fmt.Errorf("after the tar end: %w", err)
	}
	return nil
}

// layerTree keeps the boot-file candidates found in an image's layers,
// applying each layer over those before it as an overlay file system
// would: a later file replaces an earlier one, a whiteout (".wh.NAME")
// removes NAME and everything under it, an opaque marker (".wh..wh..opq")
// removes what lower layers had in its directory. Nothing else is kept.
type layerTree struct {
	alloc Allocator
	max   int64 // largest file kept; <= 0: no limit
	layer int   // index of the layer being applied
	files map[string]*layerFile
}

type layerFile struct {
	pages Pages
	layer int
}

func newLayerTree(alloc Allocator, max int64) *layerTree {
	return &layerTree{alloc: alloc, max: max, files: map[string]*layerFile{}}
}

// wantedFile tells the paths that may hold a kernel or initrd.
func wantedFile(name string) bool {
	if name == "kernel" {
		return true
	}
	if dir, base := path.Split(name); dir == "boot/" {
		return strings.HasPrefix(base, "vmlinuz") || strings.HasPrefix(base, "initrd.img") || strings.HasPrefix(base, "initramfs")
	}
	parts := strings.Split(name, "/")
	return len(parts) == 5 && parts[0] == "usr" && parts[1] == "lib" && parts[2] == "modules" &&
		(parts[4] == "vmlinuz" || parts[4] == "initramfs.img")
}

// cleanName makes a tar entry name a clean relative path ("" for the root).
func cleanName(n string) string {
	return strings.TrimPrefix(path.Clean("/"+n), "/")
}

// apply walks one layer into the tree.
func (t *layerTree) apply(r io.Reader) error {
	err := walkLayer(r, t.visit)
	t.layer++
	return err
}

func (t *layerTree) visit(hdr *tar.Header, body io.Reader) error {
	name := cleanName(hdr.Name)
	if name == "" {
		return nil
	}
	dir, base := path.Split(name)
	dir = strings.TrimSuffix(dir, "/")
	if base == ".wh..wh..opq" {
		t.remove(dir, true, true)
		return nil
	}
	if target, ok := strings.CutPrefix(base, ".wh."); ok {
		t.remove(path.Join(dir, target), false, true)
		return nil
	}
	if hdr.Typeflag == tar.TypeDir {
		// A directory replaces a file of that name, keeps what is under it.
		t.drop(name)
		return nil
	}
	// Anything else replaces the path and whatever a directory there held.
	t.remove(name, false, false)
	if (hdr.Typeflag != tar.TypeReg && hdr.Typeflag != tar.TypeRegA) || !wantedFile(name) {
		return nil
	}
	if hdr.Size < 0 || (t.max > 0 && hdr.Size > t.max) {
		return fmt.Errorf("%w: /%s is %d bytes, limit %d", ErrTooLarge, name, hdr.Size, t.max)
	}
	p, err := t.alloc.Alloc(hdr.Size)
	if err != nil {
		return fmt.Errorf("allocating %d bytes for /%s: %w", hdr.Size, name, err)
	}
	if _, err := io.ReadFull(body, p.Bytes()); err != nil {
		p.Free()
		return fmt.Errorf("reading /%s: %w", name, err)
	}
	t.files[name] = &layerFile{pages: p, layer: t.layer}
	return nil
}

func (t *layerTree) drop(name string) {
	if f := t.files[name]; f != nil {
		f.pages.Free()
		delete(t.files, name)
	}
}

// remove drops what is under name (and name itself unless underOnly),
// only from lower layers when lowerOnly.
func (t *layerTree) remove(name string, underOnly, lowerOnly bool) {
	prefix := name + "/"
	if name == "" {
		prefix = ""
	}
	for n, f := range t.files {
		if lowerOnly && f.layer >= t.layer {
			continue
		}
		if (n == name && !underOnly) || strings.HasPrefix(n, prefix) {
			f.pages.Free()
			delete(t.files, n)
		}
	}
}

// free releases everything the tree holds.
func (t *layerTree) free() {
	for n, f := range t.files {
		f.pages.Free()
		delete(t.files, n)
	}
}

// take removes name from the tree and hands its pages to the caller.
func (t *layerTree) take(name string) Pages {
	f := t.files[name]
	if f == nil {
		return nil
	}
	delete(t.files, name)
	return f.pages
}

func (t *layerTree) names(match func(string) bool) []string {
	var out []string
	for n := range t.files {
		if match(n) {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}

func isBootcKernel(n string) bool {
	return strings.HasPrefix(n, "usr/lib/modules/") && path.Base(n) == "vmlinuz"
}
func isBootKernel(n string) bool { return strings.HasPrefix(n, "boot/vmlinuz") }
func isBootInitrd(n string) bool {
	return strings.HasPrefix(n, "boot/initrd.img") || strings.HasPrefix(n, "boot/initramfs")
}

// choose picks the kernel (and initrd) among what the layers left,
// following hint (FormatAuto or FormatImage: bootc, then /boot, then
// LinuxKit's /kernel). Exactly one kernel must match.
func (t *layerTree) choose(hint Format) (f Format, kernel, initrd string, err error) {
	kinds := []struct {
		f     Format
		match func(string) bool
	}{
		{FormatBootc, isBootcKernel},
		{FormatBootPath, isBootKernel},
		{FormatLinuxKit, func(n string) bool { return n == "kernel" }},
	}
	for _, k := range kinds {
		if hint != FormatAuto && hint != FormatImage && hint != k.f {
			continue
		}
		ks := t.names(k.match)
		if len(ks) == 0 {
			continue
		}
		if len(ks) > 1 {
			return "", "", "", fmt.Errorf("%w (%s): /%s", ErrTwoKernels, k.f, strings.Join(ks, ", /"))
		}
		kernel = ks[0]
		switch k.f {
		case FormatBootc:
			initrd = path.Join(path.Dir(kernel), "initramfs.img")
		case FormatBootPath:
			ver := strings.TrimPrefix(kernel, "boot/vmlinuz")
			inits := t.names(isBootInitrd)
			for _, cand := range []string{"boot/initrd.img" + ver, "boot/initramfs" + ver + ".img", "boot/initramfs" + ver} {
				if slices.Contains(inits, cand) {
					initrd = cand
					break
				}
			}
			if initrd == "" && len(inits) == 1 {
				initrd = inits[0]
			}
		}
		if _, ok := t.files[initrd]; !ok {
			initrd = ""
		}
		return k.f, kernel, initrd, nil
	}
	what := "/usr/lib/modules/*/vmlinuz, /boot/vmlinuz* or /kernel"
	if hint != FormatAuto && hint != FormatImage {
		what = "a " + string(hint) + " kernel"
	}
	return "", "", "", fmt.Errorf("%w: the image's layers have no %s", ErrNoKernel, what)
}
