package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"runtime"
	"syscall"
	"time"

	"github.com/ociboot/ociboot/efirt"
	"github.com/ociboot/ociboot/handoff"
	"github.com/ociboot/ociboot/observe"
	"github.com/ociboot/ociboot/oci"
	"github.com/ociboot/ociboot/plan"
	"github.com/ociboot/ociboot/services"
	"github.com/ociboot/ociboot/uefi"
)

// firmwarePages allocates download buffers from the firmware: they stay
// put, need no Go bookkeeping, and outlive the runtime after handoff.
type firmwarePages struct{}

func (firmwarePages) Alloc(size int64) (oci.Pages, error) {
	if size <= 0 || int64(int(size)) != size {
		return nil, fmt.Errorf("bootd: cannot allocate %d bytes", size)
	}
	return uefi.NewPages(int(size))
}

// fetch pulls the target's boot set with verification, printing progress.
func fetch(ctx context.Context, log *observe.Logger, tl *observe.Timeline, pl *pipeline, t plan.Target) (*oci.BootSet, error) {
	ref, err := oci.ParseReference(t.Ref)
	if err != nil {
		return nil, fail("reading the target's reference", err, "")
	}
	hc, err := pl.httpClient(t)
	if err != nil {
		return nil, fail("setting up HTTPS", err, "the plan's CA certificates")
	}
	var opts []oci.Option
	if t.PlainHTTP {
		opts = append(opts, oci.WithPlainHTTP(ref.Host()))
	}
	if t.Username != "" {
		opts = append(opts, oci.WithBasicAuth(ref.Host(), t.Username, t.Password))
	}
	if t.Token != "" {
		opts = append(opts, oci.WithBearerToken(ref.Host(), t.Token))
	}
	format, err := oci.ParseFormat(t.Format)
	if err != nil {
		return nil, fail("reading the target's format", err, "")
	}
	policy, err := oci.ParsePolicy(t.Policy)
	if err != nil {
		return nil, fail("reading the signature policy", err, "")
	}
	cfg := oci.FetcherConfig{Hint: format, Policy: policy, Logf: log.Warnf}
	if t.PublicKey != "" {
		if cfg.PublicKey, err = oci.ParsePublicKey([]byte(t.PublicKey)); err != nil {
			return nil, fail("reading the signature key", err, "")
		}
	}
	var bar *observe.Progress
	var barWhat string
	cfg.Progress = func(pr oci.Progress) {
		if bar == nil || barWhat != pr.What {
			bar, barWhat = log.NewProgress(pr.What, pr.Total), pr.What
		}
		if pr.Final {
			bar.Finish(pr.Done)
			tl.Span("blob", fmt.Sprintf("%s %s", pr.What, pr.Digest), 0, pr.Done)
			bar = nil
			return
		}
		bar.Update(pr.Done)
	}
	f := oci.NewFetcher(oci.NewClient(hc, opts...), firmwarePages{}, cfg)
	began := time.Now()
	set, err := f.Fetch(ctx, ref)
	if err != nil {
		return nil, fail("fetching "+t.Ref, err, fetchCause(err))
	}
	tl.Span("fetch", fmt.Sprintf("%s (%s)", set.Digest, set.Format), time.Since(began), int64(len(set.Kernel.Bytes())))
	log.Milestone("bootd: %s verified: %s format, kernel %s, initrd %s, signature %v", t.Ref, set.Format,
		observe.FormatBytes(int64(len(set.Kernel.Bytes()))), initrdSize(set), set.Signature)
	log.Block(observe.Info, observe.FormatRates(pl.rates()))
	return set, nil
}

func initrdSize(set *oci.BootSet) string {
	if set.Initrd == nil {
		return "none"
	}
	return observe.FormatBytes(int64(len(set.Initrd.Bytes())))
}

// fetchCause puts the likely cause of a fetch failure into words.
func fetchCause(err error) string {
	var dns *services.DNSError
	switch {
	case errors.As(err, &dns):
		return "the registry's name does not resolve with the DHCP-provided DNS servers"
	case errors.Is(err, oci.ErrDigestMismatch), errors.Is(err, oci.ErrSizeMismatch):
		return "the registry served bytes that do not match the artifact's digest: corrupted or tampered content; nothing unverified is booted"
	case errors.Is(err, oci.ErrUnauthorized):
		return "the registry wants credentials the plan does not have"
	case errors.Is(err, oci.ErrNotFound):
		return "the repository, tag or digest does not exist on the registry"
	case errors.Is(err, oci.ErrPlatform):
		return "the artifact has no variant for this machine's architecture"
	case errors.As(err, new(x509.UnknownAuthorityError)), errors.As(err, new(x509.HostnameError)),
		errors.As(err, new(x509.CertificateInvalidError)), errors.As(err, new(*tls.CertificateVerificationError)):
		return "the registry's TLS certificate is not trusted (unknown CA, wrong name or expired); add its CA to the plan"
	case errors.Is(err, syscall.EHOSTUNREACH):
		return "the registry's host (or the gateway to it) does not answer ARP: it is down or not on this network"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "the registry's host refused the connection: nothing listens on that port"
	case errors.Is(err, syscall.ETIMEDOUT):
		return "the registry's host stopped answering"
	case errors.Is(err, oci.ErrUnsigned), errors.Is(err, oci.ErrBadSignature):
		return "the artifact's signature is missing or does not verify under the plan's policy"
	}
	return ""
}

// handOff tears the pipeline down and starts the target. For a kernel it
// does not return unless the kernel fails to start.
func handOff(log *observe.Logger, tl *observe.Timeline, pl *pipeline, t plan.Target, set *oci.BootSet) error {
	cmdline := t.Cmdline
	if cmdline == "" {
		cmdline = set.Cmdline
	}
	if t.Kind == "efi" || set.UKI {
		cmdline = t.Cmdline // a UKI carries its own command line; a program gets only the plan's
	}
	img, err := handoff.Load(set.Kernel.Bytes(), cmdline)
	if err != nil {
		pl.stop(log)
		return fail("loading the kernel image", err, "the firmware refused the image")
	}
	if set.Initrd != nil && t.Kind != "efi" {
		if err := img.SetInitrd(set.Initrd.Bytes()); err != nil {
			img.Unload()
			pl.stop(log)
			return fail("publishing the initrd", err, "")
		}
	}
	log.Block(observe.Info, observe.FormatRates(pl.rates()))
	pl.stop(log)
	logMemory(log, set)
	tl.Mark("startimage", t.Name)
	log.Block(observe.Info, tl.Summary())
	log.Milestone("bootd: starting %s with command line %q", t.Name, cmdline)
	data, err := img.Start()
	if t.Kind == "efi" {
		if err != nil {
			return fail("running "+t.Name, fmt.Errorf("%w %s", err, data), "the program reported a failure")
		}
		log.Logf("bootd: %s returned %q", t.Name, data)
		return nil
	}
	if err == nil {
		err = errors.New("the kernel returned to the loader")
	}
	return fail("starting the kernel", fmt.Errorf("%w %s", err, data), "the kernel's EFI stub gave up before taking over the machine")
}

// logMemory reports the runtime's peak memory next to the payload, which
// lives in firmware pages outside it: together they are what the loader
// asked of the machine. Exact byte counts follow for tools.
func logMemory(log *observe.Logger, set *oci.BootSet) {
	st := efirt.ReadStats()
	peak, held := int64(st.PagesPeak)*4096, int64(st.PagesHeld)*4096
	payload := int64(len(set.Kernel.Bytes()))
	if set.Initrd != nil {
		payload += int64(len(set.Initrd.Bytes()))
	}
	// The Go heap's share says whether growth is live data or garbage the
	// collector has not reached yet.
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	log.Logf("bootd: memory: runtime peak %s, held %s (Go heap %s allocated of %s, %d GCs); payload %s in firmware pages (peak=%d held=%d payload=%d bytes)",
		observe.FormatBytes(peak), observe.FormatBytes(held), observe.FormatBytes(int64(ms.HeapAlloc)), observe.FormatBytes(int64(ms.HeapSys)),
		ms.NumGC, observe.FormatBytes(payload), peak, held, payload)
}

// chainEmbedded starts an EFI program compiled into the loader: no network,
// nothing to fetch or verify beyond what was built in.
func chainEmbedded(log *observe.Logger, tl *observe.Timeline, t plan.Target) error {
	data, ok := plan.EmbeddedImage(t.Embedded)
	if !ok {
		return fail("finding embedded program "+t.Embedded, errors.New("not compiled into this loader"),
			"the plan names a program the build did not embed (ociboot build -embed NAME=FILE)")
	}
	img, err := handoff.Load(data, t.Cmdline)
	if err != nil {
		return fail("loading embedded program "+t.Embedded, err, "the firmware refused the image")
	}
	tl.Mark("startimage", t.Name)
	log.Milestone("bootd: starting %s (embedded, %s) with command line %q", t.Name, observe.FormatBytes(int64(len(data))), t.Cmdline)
	exit, err := img.Start()
	if err != nil {
		return fail("running "+t.Name, fmt.Errorf("%w %s", err, exit), "the program reported a failure")
	}
	log.Logf("bootd: %s returned %q", t.Name, exit)
	return nil
}
