package oci

import (
	"context"
	"crypto/ecdsa"
	"errors"
	"fmt"
	"hash"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/ociboot/ociboot/actors"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// progressEvery spaces progress reports within one blob.
const progressEvery = 250 * time.Millisecond

// BootSet is what the fetcher hands on: a kernel (or UKI) and initrd in
// allocator pages, every byte verified against its digest, and the
// command line. The receiver owns the pages and must Free the set.
type BootSet struct {
	Ref      Reference
	Digest   digest.Digest      // what Ref resolved to (index or manifest)
	Manifest ocispec.Descriptor // the platform's manifest
	Format   Format
	Kernel   Pages // kernel image, or the UKI when UKI is set
	Initrd   Pages // initrds concatenated in order; nil when there are none
	Cmdline  string
	UKI      bool
	Arch     string // the kernel's architecture, as checked
	Title    string
	Version  string
	// Blobs are the digests the boot files came from, in fetch order.
	Blobs     []digest.Digest
	Signature SignatureStatus
}

// Free releases the set's pages; the set must not be used afterwards.
func (b *BootSet) Free() {
	if b.Kernel != nil {
		b.Kernel.Free()
		b.Kernel = nil
	}
	if b.Initrd != nil {
		b.Initrd.Free()
		b.Initrd = nil
	}
}

// Progress reports one blob's transfer.
type Progress struct {
	What   string // "kernel", "initrd 1/2", "layer 3/5", ...
	Digest digest.Digest
	Done   int64
	Total  int64
	Rate   float64       // bytes per second since the blob's first byte
	ETA    time.Duration // at Rate; 0 when done or unknown
	Final  bool          // the blob is complete (not yet known verified)
}

// FetcherConfig is what a Fetcher needs besides its client and allocator.
type FetcherConfig struct {
	Platform  ocispec.Platform // empty: linux/GOARCH
	Hint      Format           // FormatAuto to detect
	Policy    Policy
	PublicKey *ecdsa.PublicKey // for PolicyWarn and PolicyRequire
	// MaxBlob bounds each blob, file in a layer and the concatenated
	// initrd, checked before allocating; <= 0 means the client's limit
	// (WithMaxBlobSize) or none.
	MaxBlob  int64
	Progress func(Progress)                // may be nil; called from the fetcher's goroutine
	Logf     func(format string, a ...any) // warnings (PolicyWarn); may be nil
}

// Request asks the fetcher actor for a boot set; Reply gets exactly one
// Result and should have room for it.
type Request struct {
	Ref   Reference
	Reply chan<- Result
}

// Result answers a Request: a verified BootSet, or an error and nothing.
type Result struct {
	Boot *BootSet
	Err  error
}

// Fetcher is the loader's OCI fetcher actor: it resolves a reference for
// its platform, checks the signature policy, finds the boot files in the
// artifact and streams each blob into pages from its allocator, hashing as
// it goes. Only verified buffers leave it; pages of a failed or unverified
// blob are freed before it reports the error.
type Fetcher struct {
	c     *Client
	alloc Allocator
	cfg   FetcherConfig
	reqs  chan Request
	cnt   actors.Counters
}

// NewFetcher returns a fetcher actor using c and alloc.
func NewFetcher(c *Client, alloc Allocator, cfg FetcherConfig) *Fetcher {
	if cfg.MaxBlob <= 0 {
		cfg.MaxBlob = c.maxBlob
	}
	return &Fetcher{c: c, alloc: alloc, cfg: cfg, reqs: make(chan Request, 1)}
}

// Name implements actors.Actor.
func (f *Fetcher) Name() string { return "oci-fetcher" }

// Counters implements actors.Metered: messages are blobs, bytes are blob
// bytes received.
func (f *Fetcher) Counters() *actors.Counters { return &f.cnt }

// Requests is where the actor takes its work.
func (f *Fetcher) Requests() chan<- Request { return f.reqs }

// Run serves requests until ctx ends. A set that cannot be delivered
// because ctx ended is freed.
func (f *Fetcher) Run(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case r := <-f.reqs:
			f.cnt.SetQueue(len(f.reqs))
			start := time.Now()
			bs, err := f.Fetch(ctx, r.Ref)
			f.cnt.BusySince(start)
			select {
			case r.Reply <- Result{Boot: bs, Err: err}:
			case <-ctx.Done():
				if bs != nil {
					bs.Free()
				}
				return nil
			}
		}
	}
}

// Fetch does one request's work on the caller's goroutine.
func (f *Fetcher) Fetch(ctx context.Context, ref Reference) (_ *BootSet, err error) {
	top, body, err := f.c.FetchManifest(ctx, ref)
	if err != nil {
		return nil, err
	}
	mdesc := top
	if isIndex(top.MediaType) {
		mdesc, body, err = f.c.ResolveIndex(ctx, ref, top, body, f.cfg.Platform)
		if err != nil {
			return nil, err
		}
	}
	bs := &BootSet{Ref: ref, Digest: top.Digest, Manifest: mdesc}
	defer func() {
		if err != nil {
			bs.Free()
		}
	}()
	failf := func(op string, e error) error { return wrap(e, op, ref, mdesc.Digest.String()) }

	if bs.Signature, err = f.checkSignature(ctx, ref, top, mdesc); err != nil {
		return nil, err
	}
	layout, err := Detect(body, f.cfg.Hint)
	if err != nil {
		return nil, failf("boot artifact", err)
	}
	bs.Format, bs.Title, bs.Version, bs.UKI = layout.Format, layout.Title, layout.Version, layout.UKI
	bs.Cmdline = layout.CmdlineText

	if layout.Format.inLayers() {
		if err := f.fromLayers(ctx, ref, layout, bs); err != nil {
			return nil, err
		}
	} else {
		if bs.Kernel, err = f.fetchPages(ctx, ref, []ocispec.Descriptor{*layout.Kernel}, "kernel"); err != nil {
			return nil, err
		}
		bs.Blobs = append(bs.Blobs, layout.Kernel.Digest)
		if len(layout.Initrds) > 0 {
			if bs.Initrd, err = f.fetchPages(ctx, ref, layout.Initrds, "initrd"); err != nil {
				return nil, err
			}
			for _, d := range layout.Initrds {
				bs.Blobs = append(bs.Blobs, d.Digest)
			}
		}
		if layout.Cmdline != nil {
			if layout.Cmdline.Size > maxCmdline {
				return nil, failf("fetch blob", fmt.Errorf("%w: command line blob is %d bytes, limit %d", ErrTooLarge, layout.Cmdline.Size, maxCmdline))
			}
			buf := make(Buffer, layout.Cmdline.Size)
			if err := f.c.FetchBlob(ctx, ref, *layout.Cmdline, buf); err != nil {
				return nil, err
			}
			bs.Cmdline = strings.TrimSpace(string(buf))
			bs.Blobs = append(bs.Blobs, layout.Cmdline.Digest)
		}
	}

	arch := wantPlatform(f.cfg.Platform).Architecture
	uki, err := checkKernelArch(bs.Kernel.Bytes(), arch)
	if err != nil {
		return nil, failf("boot artifact", err)
	}
	if layout.UKI && !uki {
		return nil, failf("boot artifact", errors.New("the UKI layer is a PE image without a .linux section"))
	}
	bs.UKI, bs.Arch = uki, arch
	if bs.UKI && bs.Initrd != nil {
		return nil, failf("boot artifact", errors.New("a UKI carries its own initrd; the artifact has one as well"))
	}
	return bs, nil
}

// checkSignature applies the policy. Under PolicyRequire an artifact not
// signed with the key is an error naming the reference and the reason. A
// signature over the index or over the platform's manifest counts.
func (f *Fetcher) checkSignature(ctx context.Context, ref Reference, top, mdesc ocispec.Descriptor) (SignatureStatus, error) {
	if f.cfg.Policy == PolicyOff {
		return SignatureStatus{}, nil
	}
	st := f.c.VerifySignature(ctx, ref, top.Digest, f.cfg.PublicKey)
	if !st.Verified && mdesc.Digest != top.Digest {
		if st2 := f.c.VerifySignature(ctx, ref, mdesc.Digest, f.cfg.PublicKey); st2.Verified {
			st = st2
		}
	}
	if st.Verified {
		return st, nil
	}
	if f.cfg.Policy == PolicyRequire {
		return st, &Error{Op: "verify signature", Registry: ref.Registry, Repository: ref.Repository, Tag: ref.Tag, Digest: top.Digest.String(), Err: st.Err}
	}
	if f.cfg.Logf != nil {
		f.cfg.Logf("oci: WARNING: %s: signature %v; booting anyway (policy warn)", ref, st.Err)
	}
	return st, nil
}

// checkSize refuses a size over the limit before anything is allocated.
func (f *Fetcher) checkSize(size int64, what string) error {
	if size < 0 {
		return fmt.Errorf("%w: %s size %d", ErrSizeMismatch, what, size)
	}
	if f.cfg.MaxBlob > 0 && size > f.cfg.MaxBlob {
		return fmt.Errorf("%w: %s is %d bytes, limit %d", ErrTooLarge, what, size, f.cfg.MaxBlob)
	}
	return nil
}

// fetchPages fetches descs back to back into one allocation.
func (f *Fetcher) fetchPages(ctx context.Context, ref Reference, descs []ocispec.Descriptor, what string) (Pages, error) {
	var total int64
	for _, d := range descs {
		if err := f.checkSize(d.Size, what+" blob"); err != nil {
			return nil, wrap(err, "fetch blob", ref, d.Digest.String())
		}
		total += d.Size
	}
	if err := f.checkSize(total, what); err != nil {
		return nil, wrap(err, "fetch blob", ref, descs[0].Digest.String())
	}
	p, err := f.alloc.Alloc(total)
	if err != nil {
		return nil, wrap(fmt.Errorf("allocating %d bytes for the %s: %w", total, what, err), "fetch blob", ref, descs[0].Digest.String())
	}
	mem := p.Bytes()
	var off int64
	for i, d := range descs {
		name := what
		if len(descs) > 1 {
			name = fmt.Sprintf("%s %d/%d", what, i+1, len(descs))
		}
		w := f.meter(name, d, Buffer(mem[off:off+d.Size]))
		err := f.c.FetchBlob(ctx, ref, d, w)
		w.final()
		if err != nil {
			p.Free()
			return nil, err
		}
		f.cnt.Add(1, 0)
		off += d.Size
	}
	return p, nil
}

// fromLayers walks the image's layers in order, keeping only boot-file
// candidates, and moves the chosen kernel and initrd into bs.
func (f *Fetcher) fromLayers(ctx context.Context, ref Reference, layout *Layout, bs *BootSet) error {
	tree := newLayerTree(f.alloc, f.cfg.MaxBlob)
	defer tree.free()
	for i, d := range layout.Layers {
		if err := f.checkSize(d.Size, "layer"); err != nil {
			return wrap(err, "fetch blob", ref, d.Digest.String())
		}
		if err := f.streamLayer(ctx, ref, d, fmt.Sprintf("layer %d/%d", i+1, len(layout.Layers)), tree); err != nil {
			return err
		}
		bs.Blobs = append(bs.Blobs, d.Digest)
	}
	format, kernel, initrd, err := tree.choose(layout.Format)
	if err != nil {
		return wrap(err, "boot artifact", ref, bs.Manifest.Digest.String())
	}
	bs.Format = format
	bs.Kernel = tree.take(kernel)
	if initrd != "" {
		bs.Initrd = tree.take(initrd)
	}
	return nil
}

// streamLayer fetches one layer through the tree's walker without keeping
// the layer: bytes flow in order through a pipe to the walker, which runs
// on its own goroutine. What the walker kept counts only if the fetch and
// our own hash of exactly the bytes it read both verify.
func (f *Fetcher) streamLayer(ctx context.Context, ref Reference, d ocispec.Descriptor, what string, tree *layerTree) error {
	pr, pw := io.Pipe()
	sw := &streamWriter{pw: pw, h: d.Digest.Algorithm().Hash()}
	var walkErr error
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		walkErr = tree.apply(pr)
		// Drain whatever the walker left so the fetch completes and its
		// digest decides whether the layer itself was bad.
		_, _ = io.Copy(io.Discard, pr)
	}()
	w := f.meter(what, d, sw)
	fetchErr := f.c.FetchBlob(ctx, ref, d, w)
	w.final()
	pw.CloseWithError(fetchErr) // nil: EOF
	wg.Wait()
	switch {
	case fetchErr != nil:
		return fetchErr
	case sw.next != d.Size:
		return wrap(fmt.Errorf("%w: the walker read %d of %d bytes", ErrSizeMismatch, sw.next, d.Size), "fetch blob", ref, d.Digest.String())
	case digest.NewDigest(d.Digest.Algorithm(), sw.h) != d.Digest:
		return wrap(fmt.Errorf("%w: the bytes walked are not %s", ErrDigestMismatch, d.Digest), "fetch blob", ref, d.Digest.String())
	case walkErr != nil:
		return wrap(fmt.Errorf("walking %s: %w", what, walkErr), "fetch blob", ref, d.Digest.String())
	}
	f.cnt.Add(1, 0)
	return nil
}

// streamWriter turns FetchBlob's positioned writes into one ordered
// stream: bytes before next (a resumed or restarted request sending them
// again) are skipped, so the walker sees each offset once, and h hashes
// exactly what it saw.
type streamWriter struct {
	pw   *io.PipeWriter
	h    hash.Hash
	next int64
}

func (s *streamWriter) WriteAt(p []byte, off int64) (int, error) {
	if off > s.next {
		return 0, fmt.Errorf("oci: write at %d leaves a gap after %d", off, s.next)
	}
	skip := s.next - off
	if skip >= int64(len(p)) {
		return len(p), nil
	}
	q := p[skip:]
	n, err := s.pw.Write(q)
	s.h.Write(q[:n])
	s.next += int64(n)
	if err != nil {
		return int(skip) + n, err
	}
	return len(p), nil
}

// meteredWriter reports progress and counts bytes for one blob.
type meteredWriter struct {
	f     *Fetcher
	dst   io.WriterAt
	p     Progress
	start time.Time
	last  time.Time
}

// meter starts a blob's progress with a report of zero bytes, so a
// consumer's clock for the blob starts with it.
func (f *Fetcher) meter(what string, d ocispec.Descriptor, dst io.WriterAt) *meteredWriter {
	now := time.Now()
	m := &meteredWriter{f: f, dst: dst, p: Progress{What: what, Digest: d.Digest, Total: d.Size}, start: now, last: now}
	if f.cfg.Progress != nil {
		f.cfg.Progress(m.p)
	}
	return m
}

func (m *meteredWriter) WriteAt(p []byte, off int64) (int, error) {
	n, err := m.dst.WriteAt(p, off)
	m.f.cnt.Add(0, n)
	if end := off + int64(n); end > m.p.Done {
		m.p.Done = end
	}
	if now := time.Now(); m.f.cfg.Progress != nil && now.Sub(m.last) >= progressEvery {
		m.last = now
		m.report(now)
	}
	return n, err
}

func (m *meteredWriter) report(now time.Time) {
	if el := now.Sub(m.start).Seconds(); el > 0 {
		m.p.Rate = float64(m.p.Done) / el
	}
	m.p.ETA = 0
	if m.p.Rate > 0 && m.p.Done < m.p.Total {
		m.p.ETA = time.Duration(float64(m.p.Total-m.p.Done) / m.p.Rate * float64(time.Second))
	}
	m.f.cfg.Progress(m.p)
}

func (m *meteredWriter) final() {
	if m.f.cfg.Progress != nil {
		m.p.Final = true
		m.report(time.Now())
	}
}
