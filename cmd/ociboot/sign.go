package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/ociboot/ociboot/oci"
	"github.com/ociboot/ociboot/oci/publish"
)

func cmdSign(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("sign", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var rf registryFlags
	rf.register(fs)
	keyFile := fs.String("key", "", "PEM ECDSA P-256 private key (EC PRIVATE KEY or PKCS#8)")
	bundle := fs.Bool("bundle", false, "also attach a sigstore bundle (message signature) as a referrer")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: ociboot sign --key KEY.pem [flags] REF\n\nSigns what REF names (an index as a whole) the way cosign's keyed signing does,\nunder the sha256-<hex>.sig tag. No transparency log entry is made.")
		fs.PrintDefaults()
	}
	if err := parseRefFirst(fs, args); err != nil {
		return 2
	}
	if fs.NArg() != 1 || *keyFile == "" {
		fs.Usage()
		return 2
	}
	ref, err := oci.ParseReference(fs.Arg(0))
	if err != nil {
		fmt.Fprintf(stderr, "ociboot sign: %v\n", err)
		return 2
	}
	pemData, err := os.ReadFile(*keyFile)
	if err != nil {
		fmt.Fprintf(stderr, "ociboot sign: %v\n", err)
		return 1
	}
	key, err := publish.ParsePrivateKey(pemData)
	if err != nil {
		fmt.Fprintf(stderr, "ociboot sign: %s: %v\n", *keyFile, err)
		return 1
	}
	c, err := rf.client(ref)
	if err != nil {
		fmt.Fprintf(stderr, "ociboot sign: %v\n", err)
		return 1
	}
	dgst, sigRef, err := publish.Sign(ctx, c, ref, key)
	if err != nil {
		fmt.Fprintf(stderr, "ociboot sign: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "signed %s@%s as %s\n", ref.Name(), dgst, sigRef)
	if *bundle {
		if _, err := publish.AttachBundle(ctx, c, ref, key); err != nil {
			fmt.Fprintf(stderr, "ociboot sign: bundle: %v\n", err)
			return 1
		}
		fmt.Fprintf(stdout, "attached a sigstore bundle referrer to %s@%s\n", ref.Name(), dgst)
	}
	return 0
}
