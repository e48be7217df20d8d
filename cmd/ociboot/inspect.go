package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"text/tabwriter"

	"github.com/ociboot/ociboot/oci"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func cmdInspect(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("inspect", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var rf registryFlags
	rf.register(fs)
	keyFile := fs.String("key", "", "PEM ECDSA P-256 public key to verify signatures with")
	fetch := fs.Bool("fetch", false, "download and verify the boot files (needed to find kernels inside image layers)")
	hint := fs.String("format", "auto", "boot format: auto, ociboot, netboot, image, linuxkit, bootc, boot-path")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: ociboot inspect [flags] REF\n\nPrints the platforms, boot format, files with sizes and digests, command line\nand signature status of a boot artifact or image.")
		fs.PrintDefaults()
	}
	if err := parseRefFirst(fs, args); err != nil {
		return 2
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return 2
	}
	fail := func(err error) int {
		fmt.Fprintf(stderr, "ociboot inspect: %v\n", err)
		return 1
	}
	ref, err := oci.ParseReference(fs.Arg(0))
	if err != nil {
		return fail(err)
	}
	format, err := oci.ParseFormat(*hint)
	if err != nil {
		return fail(err)
	}
	c, err := rf.client(ref)
	if err != nil {
		return fail(err)
	}
	top, body, err := c.FetchManifest(ctx, ref)
	if err != nil {
		return fail(err)
	}
	w := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	defer w.Flush()
	fmt.Fprintf(w, "reference\t%s\n", ref)
	fmt.Fprintf(w, "digest\t%s\t%s, %d bytes\n", top.Digest, top.MediaType, top.Size)

	// Signature status of the whole (index or manifest).
	switch {
	case *keyFile != "":
		pemData, err := os.ReadFile(*keyFile)
		if err != nil {
			return fail(err)
		}
		pub, err := oci.ParsePublicKey(pemData)
		if err != nil {
			return fail(err)
		}
		fmt.Fprintf(w, "signature\t%s\n", c.VerifySignature(ctx, ref, top.Digest, pub))
	default:
		sigRef := oci.Reference{Registry: ref.Registry, Repository: ref.Repository, Tag: oci.SigTag(top.Digest) + ".sig"}
		_, _, err := c.FetchManifest(ctx, sigRef)
		switch {
		case err == nil:
			fmt.Fprintf(w, "signature\tcosign signature at %s (not verified: give -key)\n", sigRef.Tag)
		case errors.Is(err, oci.ErrNotFound):
			fmt.Fprintf(w, "signature\tno cosign .sig signature\n")
		default:
			fmt.Fprintf(w, "signature\tunknown: %v\n", err)
		}
	}

	type entry struct {
		platform ocispec.Platform
		desc     ocispec.Descriptor
		body     []byte
	}
	var entries []entry
	if oci.IsIndex(top.MediaType) {
		var idx ocispec.Index
		if err := json.Unmarshal(body, &idx); err != nil {
			return fail(err)
		}
		for _, m := range idx.Manifests {
			if m.Platform == nil {
				fmt.Fprintf(w, "entry\t%s\t%s (no platform, skipped)\n", m.Digest, m.ArtifactType)
				continue
			}
			entries = append(entries, entry{platform: *m.Platform})
		}
	} else {
		entries = append(entries, entry{desc: top, body: body})
	}
	code := 0
	for _, e := range entries {
		if e.body == nil {
			e.desc, e.body, err = c.ResolveIndex(ctx, ref, top, body, e.platform)
			if err != nil {
				fmt.Fprintf(w, "platform\t%s\terror: %v\n", oci.PlatformString(e.platform), err)
				code = 1
				continue
			}
		}
		p := "(none)"
		if e.desc.Platform != nil {
			p = oci.PlatformString(*e.desc.Platform)
		}
		fmt.Fprintf(w, "platform\t%s\tmanifest %s\n", p, e.desc.Digest)
		l, err := oci.Detect(e.body, format)
		if err != nil {
			fmt.Fprintf(w, "  format\terror: %v\n", err)
			code = 1
			continue
		}
		fmt.Fprintf(w, "  format\t%s\n", l.Format)
		if l.Title != "" || l.Version != "" {
			fmt.Fprintf(w, "  title\t%s %s\n", l.Title, l.Version)
		}
		file := func(what string, d ocispec.Descriptor) {
			fmt.Fprintf(w, "  %s\t%s\t%d bytes\n", what, d.Digest, d.Size)
		}
		if l.Kernel != nil {
			what := "kernel"
			if l.UKI {
				what = "uki"
			}
			file(what, *l.Kernel)
		}
		for i, d := range l.Initrds {
			file(fmt.Sprintf("initrd %d/%d", i+1, len(l.Initrds)), d)
		}
		for i, d := range l.Layers {
			file(fmt.Sprintf("layer %d/%d", i+1, len(l.Layers)), d)
		}
		if l.CmdlineText != "" {
			fmt.Fprintf(w, "  cmdline\t%q\n", l.CmdlineText)
		}
		if !*fetch {
			continue
		}
		plat := ocispec.Platform{OS: "linux"}
		if e.desc.Platform != nil {
			plat = *e.desc.Platform
		}
		a := &oci.HeapAllocator{}
		bs, err := oci.NewFetcher(c, a, oci.FetcherConfig{Platform: plat, Hint: format}).Fetch(ctx, ref)
		if err != nil {
			fmt.Fprintf(w, "  fetched\terror: %v\n", err)
			code = 1
			continue
		}
		initrd := 0
		if bs.Initrd != nil {
			initrd = len(bs.Initrd.Bytes())
		}
		fmt.Fprintf(w, "  fetched\t%s, %s kernel %d bytes (uki %v), initrd %d bytes, all verified\n", bs.Format, bs.Arch, len(bs.Kernel.Bytes()), bs.UKI, initrd)
		if bs.Cmdline != "" && bs.Cmdline != l.CmdlineText {
			fmt.Fprintf(w, "  cmdline\t%q\n", bs.Cmdline)
		}
		bs.Free()
	}
	return code
}
