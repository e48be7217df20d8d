package oci

import (
	"archive/tar"
	"bytes"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// FuzzDetect feeds manifests to the format detector: no input may panic,
// and a layout it accepts must name a kernel or layers to walk.
func FuzzDetect(f *testing.F) {
	f.Add([]byte(`{"schemaVersion":2,"artifactType":"`+ArtifactType+`","layers":[{"mediaType":"`+MediaTypeKernel+`","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2}]}`), "")
	f.Add([]byte(`{"schemaVersion":2,"artifactType":"`+NetbootArtifactType+`","layers":[{"mediaType":"`+NetbootFileMediaType+`","annotations":{"org.opencontainers.image.title":"vmlinuz"}}]}`), "netboot")
	f.Add([]byte(`{"schemaVersion":2,"layers":[{"mediaType":"`+ocispec.MediaTypeImageLayerGzip+`"}]}`), "bootc")
	f.Fuzz(func(t *testing.T, manifest []byte, hint string) {
		h, err := ParseFormat(hint)
		if err != nil {
			return
		}
		l, err := Detect(manifest, h)
		if err != nil {
			return
		}
		if l.Kernel == nil && len(l.Layers) == 0 {
			t.Fatalf("accepted a layout with nothing to boot: %+v", l)
		}
		if l.UKI && len(l.Initrds) > 0 {
			t.Fatal("accepted a UKI with initrds")
		}
	})
}

// FuzzSelectPlatform feeds indexes to platform selection.
func FuzzSelectPlatform(f *testing.F) {
	f.Add([]byte(`{"schemaVersion":2,"manifests":[{"mediaType":"`+ocispec.MediaTypeImageManifest+`","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2,"platform":{"os":"linux","architecture":"amd64"}}]}`), "amd64", "")
	f.Add([]byte(`{"manifests":[{"mediaType":"`+MediaTypeDockerManifest+`","digest":"sha256:x","platform":{"os":"linux","architecture":"arm64","variant":"v8"}}]}`), "arm64", "")
	f.Fuzz(func(t *testing.T, index []byte, arch, variant string) {
		d, err := SelectPlatform(index, ocispec.Platform{Architecture: arch, Variant: variant})
		if err != nil {
			return
		}
		if d.Platform == nil || d.Platform.Architecture != wantPlatform(ocispec.Platform{Architecture: arch}).Architecture || d.Digest.Validate() != nil {
			t.Fatalf("selected %+v for %s/%s", d, arch, variant)
		}
	})
}

// FuzzWalkLayer feeds layers (tar, gzip or zstd) to the walker and the
// overlay tree: no panic, and every page it allocated is freed.
func FuzzWalkLayer(f *testing.F) {
	tr := buildTar(f, []tarFile{
		{name: "usr/lib/modules/6.1/vmlinuz", data: []byte("MZkernel")},
		{name: "usr/lib/modules/6.1/initramfs.img", data: []byte("initrd")},
		{name: "boot/.wh..wh..opq"},
		{name: "etc/.wh.passwd"},
		{name: "kernel", typ: tar.TypeSymlink, link: "boot/vmlinuz"},
	})
	f.Add(tr)
	f.Add(compress(f, "gzip", tr))
	f.Add(compress(f, "zstd", tr))
	f.Fuzz(func(t *testing.T, layer []byte) {
		a := &HeapAllocator{Limit: 64 << 20}
		tree := newLayerTree(a, 16<<20)
		_ = tree.apply(bytes.NewReader(layer))
		_ = tree.apply(bytes.NewReader(layer)) // over itself: replacements and whiteouts
		if _, k, i, err := tree.choose(FormatAuto); err == nil {
			if tree.files[k] == nil || (i != "" && tree.files[i] == nil) {
				t.Fatalf("chose %q/%q, which the tree does not hold", k, i)
			}
		}
		tree.free()
		if a.Live() != 0 {
			t.Fatalf("%d bytes live after free", a.Live())
		}
	})
}
