package oci

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	digest "github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

var peMachineOf = map[string]uint16{"amd64": 0x8664, "arm64": 0xaa64, "riscv64": 0x5064, "loong64": 0x6264}

// fakePE is a minimal PE image for arch, padded with seeded bytes to size,
// with a ".linux" section header when uki.
func fakePE(arch string, size int, uki bool, seed uint64) []byte {
	b := randomBytes(size, seed)
	copy(b, "MZ")
	binary.LittleEndian.PutUint32(b[0x3c:], 0x80)
	copy(b[0x80:], "PE\x00\x00")
	binary.LittleEndian.PutUint16(b[0x84:], peMachineOf[arch])
	nsec := 1
	binary.LittleEndian.PutUint16(b[0x86:], uint16(nsec))
	binary.LittleEndian.PutUint16(b[0x94:], 0xf0) // optional header size
	sec := 0x80 + 4 + 20 + 0xf0
	name := ".text\x00\x00\x00"
	if uki {
		name = ".linux\x00\x00"
	}
	copy(b[sec:], name)
	return b
}

// fakeImage is a bare arm64 Image (no PE header), gzip'd when gz.
func fakeArm64Image(size int, gz bool, seed uint64) []byte {
	b := randomBytes(size, seed)
	b[0], b[1] = 0, 0
	copy(b[0x38:], "ARMd")
	if !gz {
		return b
	}
	var out bytes.Buffer
	zw := gzip.NewWriter(&out)
	zw.Write(b)
	zw.Close()
	return out.Bytes()
}

func goarch() string { return runtime.GOARCH }

// pushManifest PUTs a manifest under tag (or its digest when tag is "").
func (f *fixture) pushManifest(repo, tag, mt string, body []byte) ocispec.Descriptor {
	f.t.Helper()
	d := digest.FromBytes(body)
	if tag == "" {
		tag = d.String()
	}
	req, _ := http.NewRequest(http.MethodPut, "http://"+f.push+"/v2/"+repo+"/manifests/"+tag, bytes.NewReader(body))
	req.Header.Set("Content-Type", mt)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		f.t.Fatalf("manifest PUT %s: HTTP %d", tag, resp.StatusCode)
	}
	return ocispec.Descriptor{MediaType: mt, Digest: d, Size: int64(len(body))}
}

func (f *fixture) layer(repo, mt string, data []byte, annot map[string]string) ocispec.Descriptor {
	d := f.pushBlob(repo, data)
	d.MediaType = mt
	d.Annotations = annot
	return d
}

func (f *fixture) artifact(repo, tag, artifactType string, layers []ocispec.Descriptor, annot map[string]string) ocispec.Descriptor {
	f.t.Helper()
	cfg := f.pushBlob(repo, []byte("{}"))
	cfg.MediaType = ocispec.MediaTypeEmptyJSON
	m := ocispec.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest,
		ArtifactType: artifactType, Config: cfg, Layers: layers, Annotations: annot}
	body, _ := json.Marshal(m)
	return f.pushManifest(repo, tag, ocispec.MediaTypeImageManifest, body)
}

func (f *fixture) index(repo, tag string, entries ...ocispec.Descriptor) ocispec.Descriptor {
	idx := ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex, Manifests: entries}
	body, _ := json.Marshal(idx)
	return f.pushManifest(repo, tag, ocispec.MediaTypeImageIndex, body)
}

func withPlatform(d ocispec.Descriptor, arch string) ocispec.Descriptor {
	d.Platform = &ocispec.Platform{OS: "linux", Architecture: arch}
	return d
}

func fetcherFor(host string, cfg FetcherConfig, opts ...Option) (*Fetcher, *HeapAllocator) {
	a := &HeapAllocator{}
	return NewFetcher(testClient(host, opts...), a, cfg), a
}

// checkNothingHandedOn requires an error wrapping want, no set, no live pages.
func checkNothingHandedOn(t *testing.T, bs *BootSet, err error, want error, a *HeapAllocator) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("error %v, want %v", err, want)
	}
	if bs != nil {
		t.Errorf("a boot set was handed on with the error")
	}
	if n := a.Live(); n != 0 {
		t.Errorf("%d bytes of pages not freed", n)
	}
}

func TestFetchOursIndex(t *testing.T) {
	f := newFixture(t)
	repo := "boot/ours"
	var entries []ocispec.Descriptor
	kernels := map[string][]byte{}
	for i, arch := range []string{"arm64", "amd64", "riscv64"} {
		k := fakePE(arch, 300_000+i, false, uint64(10+i))
		kernels[arch] = k
		m := f.artifact(repo, "", ArtifactType, []ocispec.Descriptor{
			f.layer(repo, MediaTypeKernel, k, nil),
			f.layer(repo, MediaTypeInitrd, []byte("first-initrd-"+arch), nil),
			f.layer(repo, MediaTypeInitrd, []byte("second"), nil),
			f.layer(repo, MediaTypeCmdline, []byte("console=ttyS0 quiet\n"), nil),
		}, map[string]string{ocispec.AnnotationTitle: "Test OS", ocispec.AnnotationVersion: "1.2", AnnotationCmdline: "from-annotation"})
		entries = append(entries, withPlatform(m, arch))
	}
	top := f.index(repo, "v1", entries...)
	host := f.serve(nil)
	var reports []Progress
	fe, a := fetcherFor(host, FetcherConfig{Platform: ocispec.Platform{Architecture: "amd64"}, Progress: func(p Progress) { reports = append(reports, p) }})
	bs, err := fe.Fetch(context.Background(), mustRef(t, host+"/"+repo+":v1"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(bs.Kernel.Bytes(), kernels["amd64"]) || string(bs.Initrd.Bytes()) != "first-initrd-amd64second" {
		t.Errorf("kernel %d bytes, initrd %q", len(bs.Kernel.Bytes()), bs.Initrd.Bytes())
	}
	if bs.Cmdline != "console=ttyS0 quiet" || bs.Format != FormatOCIBoot || bs.UKI || bs.Arch != "amd64" ||
		bs.Title != "Test OS" || bs.Version != "1.2" || bs.Digest != top.Digest || len(bs.Blobs) != 4 {
		t.Errorf("set %+v", bs)
	}
	// Each blob starts with a report of zero bytes and ends with a final one.
	if len(reports) != 6 || reports[0].Done != 0 || reports[0].What != "kernel" || !reports[1].Final ||
		reports[2].What != "initrd 1/2" || !reports[5].Final || reports[5].What != "initrd 2/2" {
		t.Errorf("progress reports %+v", reports)
	}
	if s := fe.Counters().Snapshot("x"); s.Messages != 3 || s.Bytes != uint64(len(kernels["amd64"])+len("first-initrd-amd64second")) {
		t.Errorf("counters %+v", s)
	}
	bs.Free()
	if a.Live() != 0 {
		t.Errorf("%d bytes live after Free", a.Live())
	}

	// Only other platforms: a clear error, nothing allocated.
	fe, a = fetcherFor(host, FetcherConfig{Platform: ocispec.Platform{Architecture: "loong64"}})
	bs, err = fe.Fetch(context.Background(), mustRef(t, host+"/"+repo+":v1"))
	checkNothingHandedOn(t, bs, err, ErrPlatform, a)
	if a.Allocs() != 0 || !strings.Contains(err.Error(), "linux/arm64, linux/amd64, linux/riscv64") {
		t.Errorf("%d allocations; %v", a.Allocs(), err)
	}
}

func TestFetchOursUKIAndAnnotationCmdline(t *testing.T) {
	f := newFixture(t)
	uki := fakePE(goarch(), 50_000, true, 3)
	f.artifact("boot/uki", "v1", ArtifactType, []ocispec.Descriptor{f.layer("boot/uki", MediaTypeUKI, uki, nil)},
		map[string]string{AnnotationCmdline: "root=/dev/vda"})
	// A kernel layer that is really a UKI is found out by its sections.
	f.artifact("boot/uki", "plain", ArtifactType, []ocispec.Descriptor{f.layer("boot/uki", MediaTypeUKI, fakePE(goarch(), 50_000, false, 4), nil)}, nil)
	host := f.serve(nil)
	fe, a := fetcherFor(host, FetcherConfig{})
	bs, err := fe.Fetch(context.Background(), mustRef(t, host+"/boot/uki:v1"))
	if err != nil {
		t.Fatal(err)
	}
	if !bs.UKI || bs.Initrd != nil || bs.Cmdline != "root=/dev/vda" || !bytes.Equal(bs.Kernel.Bytes(), uki) {
		t.Errorf("set %+v", bs)
	}
	bs.Free()
	bs, err = fe.Fetch(context.Background(), mustRef(t, host+"/boot/uki:plain"))
	if err == nil || !strings.Contains(err.Error(), ".linux") || bs != nil || a.Live() != 0 {
		t.Errorf("UKI without .linux: %v, %d live", err, a.Live())
	}
}

func TestFetchNetboot(t *testing.T) {
	f := newFixture(t)
	repo := "fedora/netboot"
	file := func(name string, data []byte) ocispec.Descriptor {
		return f.layer(repo, NetbootFileMediaType, data, map[string]string{ocispec.AnnotationTitle: name})
	}
	kernel := fakePE(goarch(), 200_000, false, 5)
	m := f.artifact(repo, "40-"+goarch(), NetbootArtifactType, []ocispec.Descriptor{
		file("boot.iso", []byte("iso")),
		file("grubx64.efi", fakePE(goarch(), 1000, false, 6)),
		file("initrd.img", []byte("INITRD")),
		file("shimx64.efi", fakePE(goarch(), 1000, false, 7)),
		file("vmlinuz", kernel),
	}, map[string]string{"org.pulpproject.netboot.version": "1"})
	other := f.artifact(repo, "", NetbootArtifactType, []ocispec.Descriptor{file("vmlinuz", fakePE("s390x", 1000, false, 8))}, nil)
	f.index(repo, "40", withPlatform(other, "s390x"), withPlatform(m, goarch()))
	f.artifact(repo, "two", NetbootArtifactType, []ocispec.Descriptor{file("vmlinuz", kernel), file("linux", kernel)}, nil)
	host := f.serve(nil)
	fe, a := fetcherFor(host, FetcherConfig{})
	for _, tag := range []string{"40", "40-" + goarch()} {
		bs, err := fe.Fetch(context.Background(), mustRef(t, host+"/"+repo+":"+tag))
		if err != nil {
			t.Fatal(err)
		}
		if bs.Format != FormatNetboot || !bytes.Equal(bs.Kernel.Bytes(), kernel) || string(bs.Initrd.Bytes()) != "INITRD" {
			t.Errorf("%s: set %+v", tag, bs)
		}
		bs.Free()
	}
	bs, err := fe.Fetch(context.Background(), mustRef(t, host+"/"+repo+":two"))
	checkNothingHandedOn(t, bs, err, ErrTwoKernels, a)
}

// tarFile is one entry of a test layer.
type tarFile struct {
	name string
	data []byte
	typ  byte // 0: regular
	link string
}

func buildTar(t testing.TB, files []tarFile) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		h := &tar.Header{Name: f.name, Mode: 0o644, Size: int64(len(f.data)), Typeflag: tar.TypeReg, Linkname: f.link}
		if f.typ != 0 {
			h.Typeflag, h.Size = f.typ, 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			tw.Write(f.data)
		}
	}
	tw.Close()
	return buf.Bytes()
}

func compress(t testing.TB, kind string, data []byte) []byte {
	var buf bytes.Buffer
	switch kind {
	case "gzip":
		zw := gzip.NewWriter(&buf)
		zw.Write(data)
		zw.Close()
	case "zstd":
		zw, err := zstd.NewWriter(&buf)
		if err != nil {
			t.Fatal(err)
		}
		zw.Write(data)
		zw.Close()
	default:
		return data
	}
	return buf.Bytes()
}

var layerMT = map[string]string{"": ocispec.MediaTypeImageLayer, "gzip": ocispec.MediaTypeImageLayerGzip, "zstd": ocispec.MediaTypeImageLayerZstd}

// image pushes an image whose layers are the given tars, compressed as kinds.
func (f *fixture) image(repo, tag string, kinds []string, layers ...[]tarFile) ocispec.Descriptor {
	f.t.Helper()
	var descs []ocispec.Descriptor
	for i, files := range layers {
		descs = append(descs, f.layer(repo, layerMT[kinds[i]], compress(f.t, kinds[i], buildTar(f.t, files)), nil))
	}
	cfg := f.pushBlob(repo, []byte(`{"architecture":"`+goarch()+`","os":"linux","rootfs":{"type":"layers"}}`))
	cfg.MediaType = ocispec.MediaTypeImageConfig
	m := ocispec.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest, Config: cfg, Layers: descs}
	body, _ := json.Marshal(m)
	return f.pushManifest(repo, tag, ocispec.MediaTypeImageManifest, body)
}

func TestFetchBootcImage(t *testing.T) {
	f := newFixture(t)
	oldK, newK := fakePE(goarch(), 120_000, false, 20), fakePE(goarch(), 130_000, false, 21)
	filler := randomBytes(1<<20, 22)
	f.image("bootc/os", "v1", []string{"gzip", "zstd", ""},
		[]tarFile{
			{name: "usr/", typ: tar.TypeDir},
			{name: "usr/bin/bash", data: filler},
			{name: "usr/lib/modules/6.1.0/vmlinuz", data: oldK},
			{name: "usr/lib/modules/6.1.0/initramfs.img", data: []byte("old initramfs")},
			{name: "usr/lib/modules/6.1.0/kernel/drivers.ko", data: filler[:1000]},
			{name: "boot/", typ: tar.TypeDir},
		},
		[]tarFile{
			// The update removes the old kernel and brings a new one.
			{name: "usr/lib/modules/.wh.6.1.0"},
			{name: "./usr/lib/modules/6.6.0/vmlinuz", data: newK},
			{name: "usr/lib/modules/6.6.0/initramfs.img", data: []byte("stale")},
		},
		[]tarFile{
			{name: "/usr/lib/modules/6.6.0/initramfs.img", data: []byte("new initramfs")},
			{name: "etc/hostname", data: []byte("x")},
		})
	// Two kernels left standing.
	f.image("bootc/two", "v1", []string{"gzip", "zstd"},
		[]tarFile{{name: "usr/lib/modules/6.1.0/vmlinuz", data: oldK}},
		[]tarFile{{name: "usr/lib/modules/6.6.0/vmlinuz", data: newK}})
	host := f.serve(nil)
	fe, a := fetcherFor(host, FetcherConfig{})
	bs, err := fe.Fetch(context.Background(), mustRef(t, host+"/bootc/os:v1"))
	if err != nil {
		t.Fatal(err)
	}
	if bs.Format != FormatBootc || !bytes.Equal(bs.Kernel.Bytes(), newK) || string(bs.Initrd.Bytes()) != "new initramfs" || len(bs.Blobs) != 3 {
		t.Errorf("set: format %s, kernel %d bytes, initrd %q", bs.Format, len(bs.Kernel.Bytes()), bs.Initrd.Bytes())
	}
	// Only the chosen files are held: the filler and old files were freed.
	if want := int64(len(newK) + len("new initramfs")); a.Live() != want {
		t.Errorf("%d bytes live, want %d", a.Live(), want)
	}
	bs.Free()
	bs, err = fe.Fetch(context.Background(), mustRef(t, host+"/bootc/two:v1"))
	checkNothingHandedOn(t, bs, err, ErrTwoKernels, a)
	if !strings.Contains(err.Error(), "6.1.0/vmlinuz") || !strings.Contains(err.Error(), "6.6.0/vmlinuz") {
		t.Errorf("error does not name both kernels: %v", err)
	}
}

func TestFetchBootPathAndLinuxKit(t *testing.T) {
	f := newFixture(t)
	k := fakePE(goarch(), 100_000, false, 30)
	f.image("debian/boot", "v1", []string{"gzip", "gzip"},
		[]tarFile{
			{name: "boot/vmlinuz-6.1.0-9", data: fakePE(goarch(), 1000, false, 31)},
			{name: "boot/initrd.img-6.1.0-9", data: []byte("old")},
			{name: "vmlinuz", typ: tar.TypeSymlink, link: "boot/vmlinuz-6.1.0-9"},
		},
		[]tarFile{
			{name: "boot/", typ: tar.TypeDir},
			{name: "boot/.wh..wh..opq"},
			{name: "boot/vmlinuz-6.1.0-50", data: k},
			{name: "boot/initrd.img-6.1.0-50", data: []byte("initrd 50")},
			{name: "boot/vmlinuz", typ: tar.TypeSymlink, link: "vmlinuz-6.1.0-50"},
		})
	lk := fakeArm64Image(80_000, true, 32)
	f.image("linuxkit/kernel", "6.6", []string{"gzip"},
		[]tarFile{{name: "kernel", data: lk}, {name: "kernel.tar", data: []byte("modules")}, {name: "System.map", data: []byte("map")}})
	f.image("empty/image", "v1", []string{"zstd"}, []tarFile{{name: "etc/os-release", data: []byte("x")}})
	host := f.serve(nil)

	fe, a := fetcherFor(host, FetcherConfig{})
	bs, err := fe.Fetch(context.Background(), mustRef(t, host+"/debian/boot:v1"))
	if err != nil {
		t.Fatal(err)
	}
	if bs.Format != FormatBootPath || !bytes.Equal(bs.Kernel.Bytes(), k) || string(bs.Initrd.Bytes()) != "initrd 50" {
		t.Errorf("set: %s, initrd %q", bs.Format, bs.Initrd.Bytes())
	}
	bs.Free()

	arm, _ := fetcherFor(host, FetcherConfig{Platform: ocispec.Platform{Architecture: "arm64"}})
	bs, err = arm.Fetch(context.Background(), mustRef(t, host+"/linuxkit/kernel:6.6"))
	if err != nil {
		t.Fatal(err)
	}
	if bs.Format != FormatLinuxKit || !bytes.Equal(bs.Kernel.Bytes(), lk) || bs.Initrd != nil || bs.Arch != "arm64" {
		t.Errorf("linuxkit set %+v", bs)
	}
	bs.Free()

	// The same kernel on an amd64 machine: another architecture.
	amd, a := fetcherFor(host, FetcherConfig{Platform: ocispec.Platform{Architecture: "amd64"}})
	bs, err = amd.Fetch(context.Background(), mustRef(t, host+"/linuxkit/kernel:6.6"))
	checkNothingHandedOn(t, bs, err, ErrWrongArch, a)
	if !strings.Contains(err.Error(), "kernel is for arm64, booting amd64") {
		t.Errorf("message %v", err)
	}
	// A hint that does not match what the image has.
	hinted, a := fetcherFor(host, FetcherConfig{Hint: FormatBootc})
	bs, err = hinted.Fetch(context.Background(), mustRef(t, host+"/debian/boot:v1"))
	checkNothingHandedOn(t, bs, err, ErrNoKernel, a)
	fe, a = fetcherFor(host, FetcherConfig{})
	bs, err = fe.Fetch(context.Background(), mustRef(t, host+"/empty/image:v1"))
	checkNothingHandedOn(t, bs, err, ErrNoKernel, a)
}

func TestFetchFailures(t *testing.T) {
	f := newFixture(t)
	kernel := fakePE(goarch(), 2<<20, false, 40)
	kd := f.layer("fail/a", MediaTypeKernel, kernel, nil)
	f.artifact("fail/a", "v1", ArtifactType, []ocispec.Descriptor{kd, f.layer("fail/a", MediaTypeInitrd, randomBytes(1<<20, 41), nil)}, nil)
	f.image("fail/img", "v1", []string{"gzip"}, []tarFile{{name: "boot/vmlinuz", data: kernel}, {name: "pad", data: randomBytes(1<<20, 42)}})
	ctx := context.Background()

	t.Run("flipped byte", func(t *testing.T) {
		for _, repo := range []string{"fail/a", "fail/img"} {
			host := f.serve(func(next http.Handler) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					if isBlobGET(r) {
						w = &flipWriter{ResponseWriter: w, at: 1 << 19}
					}
					next.ServeHTTP(w, r)
				})
			})
			fe, a := fetcherFor(host, FetcherConfig{})
			bs, err := fe.Fetch(ctx, mustRef(t, host+"/"+repo+":v1"))
			checkNothingHandedOn(t, bs, err, ErrDigestMismatch, a)
		}
	})
	t.Run("truncated and cut, then resumed", func(t *testing.T) {
		for _, repo := range []string{"fail/a", "fail/img"} {
			for _, mode := range []string{"truncate", "cut"} {
				var n, ranged atomic.Int32
				host := f.serve(func(next http.Handler) http.Handler {
					return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
						if r.Header.Get("Range") != "" {
							ranged.Add(1)
						}
						if isBlobGET(r) && r.Header.Get("Range") == "" && n.Add(1) == 1 && !strings.Contains(r.URL.Path, "44136fa") {
							rec := &capture{header: http.Header{}}
							next.ServeHTTP(rec, r)
							if mode == "truncate" {
								w.Header().Set("Content-Length", fmt.Sprint(rec.body.Len()))
								w.Write(rec.body.Bytes()[:rec.body.Len()/3])
							} else {
								cutAfter(t, w, rec.body.Bytes(), rec.body.Len()/2)
							}
							return
						}
						next.ServeHTTP(w, r)
					})
				})
				fe, a := fetcherFor(host, FetcherConfig{})
				bs, err := fe.Fetch(ctx, mustRef(t, host+"/"+repo+":v1"))
				if err != nil {
					t.Fatalf("%s %s: %v", repo, mode, err)
				}
				if !bytes.Equal(bs.Kernel.Bytes(), kernel) {
					t.Errorf("%s %s: kernel differs", repo, mode)
				}
				bs.Free()
				if a.Live() != 0 || n.Load() == 0 || ranged.Load() != 1 {
					t.Errorf("%s %s: %d live, %d first GETs, %d resumed", repo, mode, a.Live(), n.Load(), ranged.Load())
				}
			}
		}
	})
	t.Run("oversize", func(t *testing.T) {
		host := f.serve(nil)
		for _, repo := range []string{"fail/a", "fail/img"} {
			fe, a := fetcherFor(host, FetcherConfig{MaxBlob: 1 << 20})
			bs, err := fe.Fetch(ctx, mustRef(t, host+"/"+repo+":v1"))
			checkNothingHandedOn(t, bs, err, ErrTooLarge, a)
		}
		// The limit applies before the allocation.
		fe, a := fetcherFor(host, FetcherConfig{MaxBlob: 1 << 20})
		fe.Fetch(ctx, mustRef(t, host+"/fail/a:v1"))
		if a.Allocs() != 0 {
			t.Errorf("%d allocations for an oversize blob", a.Allocs())
		}
		// An allocator that runs out frees what it gave.
		fe, a = fetcherFor(host, FetcherConfig{})
		a.Limit = int64(len(kernel)) + 1000
		bs, err := fe.Fetch(ctx, mustRef(t, host+"/fail/a:v1"))
		if err == nil || bs != nil || a.Live() != 0 || !strings.Contains(err.Error(), "allocating") {
			t.Errorf("out of memory: %v, %d live", err, a.Live())
		}
	})
	t.Run("status", func(t *testing.T) {
		for _, code := range []int{401, 404, 500} {
			host := f.serve(func(next http.Handler) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					if isBlobGET(r) && !strings.Contains(r.URL.Path, "44136fa") {
						w.WriteHeader(code)
						return
					}
					next.ServeHTTP(w, r)
				})
			})
			want := map[int]error{401: ErrUnauthorized, 404: ErrNotFound}[code]
			for _, repo := range []string{"fail/a", "fail/img"} {
				fe, a := fetcherFor(host, FetcherConfig{})
				bs, err := fe.Fetch(ctx, mustRef(t, host+"/"+repo+":v1"))
				if code == 500 {
					var e *Error
					if !errors.As(err, &e) || e.Status != 500 || bs != nil || a.Live() != 0 {
						t.Errorf("500: %v", err)
					}
					continue
				}
				checkNothingHandedOn(t, bs, err, want, a)
			}
		}
	})
}

// capture is a ResponseWriter that keeps the body.
type capture struct {
	header http.Header
	body   bytes.Buffer
}

func (c *capture) Header() http.Header         { return c.header }
func (c *capture) Write(p []byte) (int, error) { return c.body.Write(p) }
func (c *capture) WriteHeader(int)             {}

func TestFetcherActor(t *testing.T) {
	f := newFixture(t)
	k := fakePE(goarch(), 10_000, false, 50)
	f.artifact("act/a", "v1", ArtifactType, []ocispec.Descriptor{f.layer("act/a", MediaTypeKernel, k, nil)}, nil)
	host := f.serve(nil)
	fe, a := fetcherFor(host, FetcherConfig{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- fe.Run(ctx) }()
	reply := make(chan Result, 1)
	fe.Requests() <- Request{Ref: mustRef(t, host+"/act/a:v1"), Reply: reply}
	r := <-reply
	if r.Err != nil || !bytes.Equal(r.Boot.Kernel.Bytes(), k) {
		t.Fatalf("result %+v", r)
	}
	r.Boot.Free()
	fe.Requests() <- Request{Ref: mustRef(t, host+"/act/a:missing"), Reply: reply}
	if r = <-reply; !errors.Is(r.Err, ErrNotFound) || r.Boot != nil {
		t.Errorf("missing tag: %+v", r)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not stop")
	}
	if a.Live() != 0 || fe.Name() == "" {
		t.Errorf("%d live", a.Live())
	}
}

func TestKernelArch(t *testing.T) {
	for _, tc := range []struct {
		img  []byte
		arch string
		uki  bool
	}{
		{fakePE("amd64", 4096, false, 1), "amd64", false},
		{fakePE("arm64", 4096, true, 1), "arm64", true},
		{fakePE("riscv64", 4096, false, 1), "riscv64", false},
		{fakePE("loong64", 4096, false, 1), "loong64", false},
		{fakeArm64Image(4096, false, 1), "arm64", false},
		{fakeArm64Image(8192, true, 1), "arm64", false},
	} {
		arch, uki, err := KernelArch(tc.img)
		if err != nil || arch != tc.arch || uki != tc.uki {
			t.Errorf("want %s/%v: got %s/%v %v", tc.arch, tc.uki, arch, uki, err)
		}
	}
	for _, bad := range [][]byte{nil, []byte("MZ"), randomBytes(4096, 9), compress(t, "gzip", []byte("hello"))} {
		if _, _, err := KernelArch(bad); err == nil {
			t.Errorf("%d bytes of junk accepted", len(bad))
		}
	}
}

func TestDetectErrors(t *testing.T) {
	for _, tc := range []struct {
		m    string
		hint Format
		want string
	}{
		{`{"schemaVersion":2,"artifactType":"x/y","layers":[{"mediaType":"x/z"}]}`, FormatAuto, "not a boot artifact"},
		{`{"schemaVersion":2,"artifactType":"` + ArtifactType + `","layers":[]}`, FormatAuto, "no kernel"},
		{`{"schemaVersion":2,"layers":[{"mediaType":"` + MediaTypeKernel + `"},{"mediaType":"` + MediaTypeUKI + `"}]}`, FormatAuto, "more than one"},
		{`{"schemaVersion":2,"layers":[{"mediaType":"` + MediaTypeUKI + `"},{"mediaType":"` + MediaTypeInitrd + `"}]}`, FormatAuto, "UKI carries"},
		{`{"schemaVersion":2,"layers":[{"mediaType":"x/z"}]}`, FormatImage, "not a tar layer"},
		{`{"schemaVersion":2,"mediaType":"` + ocispec.MediaTypeImageIndex + `"}`, FormatAuto, "not an image manifest"},
		{`[`, FormatAuto, "decoding"},
	} {
		if _, err := Detect([]byte(tc.m), tc.hint); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.m, err, tc.want)
		}
	}
	if _, err := ParseFormat("bogus"); err == nil {
		t.Error("ParseFormat accepted bogus")
	}
	if f, err := ParseFormat("auto"); err != nil || f != FormatAuto {
		t.Error("ParseFormat auto")
	}
}

// BenchmarkFetcher256MiB pulls a 256 MiB kernel blob through the fetcher
// (allocation, SHA-256 verification, progress, arch check) from the
// in-memory registry on loopback and reports MB/s.
func BenchmarkFetcher256MiB(b *testing.B) {
	f := newFixture(b)
	kernel := fakePE(goarch(), 256<<20, false, 77)
	f.artifact("bench/os", "v1", ArtifactType, []ocispec.Descriptor{f.layer("bench/os", MediaTypeKernel, kernel, nil)}, nil)
	host := f.serve(nil)
	fe, a := fetcherFor(host, FetcherConfig{})
	ref := mustRef(b, host+"/bench/os:v1")
	b.SetBytes(int64(len(kernel)))
	b.ResetTimer()
	var total time.Duration
	for b.Loop() {
		start := time.Now()
		bs, err := fe.Fetch(context.Background(), ref)
		total += time.Since(start)
		if err != nil {
			b.Fatal(err)
		}
		bs.Free()
	}
	b.ReportMetric(float64(len(kernel))*float64(b.N)/total.Seconds()/1e6, "MB/s-verified")
	if a.Live() != 0 {
		b.Fatal("pages not freed")
	}
}
