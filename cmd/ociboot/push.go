package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"

	"github.com/ociboot/ociboot/oci"
	"github.com/ociboot/ociboot/oci/publish"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// parseRefFirst parses args with fs, letting the REF argument come before
// the flags as well as after them (flag stops at the first non-flag).
func parseRefFirst(fs *flag.FlagSet, args []string) error {
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		args = append(append([]string(nil), args[1:]...), args[0])
	}
	return fs.Parse(args)
}

// registryFlags are the connection flags push, inspect and sign share.
type registryFlags struct {
	plainHTTP    bool
	ca           string
	dockerConfig string
}

func (r *registryFlags) register(fs *flag.FlagSet) {
	fs.BoolVar(&r.plainHTTP, "plain-http", false, "speak plain HTTP to the registry (loopback test registries)")
	fs.StringVar(&r.ca, "ca", "", "PEM file of CA certificates to trust for the registry instead of the system's")
	fs.StringVar(&r.dockerConfig, "docker-config", "", "docker config file with credentials (default $DOCKER_CONFIG/config.json or ~/.docker/config.json)")
}

// client builds a registry client for ref with credentials from the docker
// config file.
func (r *registryFlags) client(ref oci.Reference) (*oci.Client, error) {
	hc := &http.Client{}
	if r.ca != "" {
		pem, err := os.ReadFile(r.ca)
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s: no PEM certificates", r.ca)
		}
		hc.Transport = &http.Transport{Proxy: http.ProxyFromEnvironment, TLSClientConfig: &tls.Config{RootCAs: pool}}
	}
	var opts []oci.Option
	if r.plainHTTP {
		opts = append(opts, oci.WithPlainHTTP(ref.Registry))
	}
	cfg, err := publish.LoadDockerConfig(r.dockerConfig)
	if err != nil {
		return nil, err
	}
	o, err := cfg.ClientOption(ref.Registry)
	if err != nil {
		return nil, err
	}
	if o != nil {
		opts = append(opts, o)
	}
	return oci.NewClient(hc, opts...), nil
}

// bootGroups collects push's per-platform flags: each -platform starts a
// group, and -kernel, -initrd, -cmdline and -uki fill the latest one.
type bootGroups struct {
	groups []*bootGroup
}

type bootGroup struct {
	platform *ocispec.Platform
	kernel   string
	uki      string
	initrds  []string
	cmdline  *string
}

func (g *bootGroups) cur() *bootGroup {
	if len(g.groups) == 0 {
		g.groups = append(g.groups, &bootGroup{})
	}
	return g.groups[len(g.groups)-1]
}

type groupFlag struct {
	g   *bootGroups
	set func(*bootGroups, string) error
}

func (f groupFlag) String() string     { return "" }
func (f groupFlag) Set(v string) error { return f.set(f.g, v) }

// parsePlatform reads os/arch[/variant].
func parsePlatform(s string) (*ocispec.Platform, error) {
	parts := strings.Split(s, "/")
	if len(parts) < 2 || len(parts) > 3 || parts[0] == "" || parts[1] == "" {
		return nil, fmt.Errorf("platform %q is not os/arch[/variant]", s)
	}
	p := &ocispec.Platform{OS: parts[0], Architecture: parts[1]}
	if len(parts) == 3 {
		p.Variant = parts[2]
	}
	return p, nil
}

const pushUsage = `usage: ociboot push [flags] REF [-platform OS/ARCH[/VARIANT]] -kernel FILE [-initrd FILE]... [-cmdline S] ...
       ociboot push [flags] REF -uki FILE [-cmdline S]

Pushes an ociboot boot artifact. Each -platform starts a new group and the
-kernel, -initrd, -cmdline and -uki flags after it belong to that platform;
several groups make one multi-platform index:

  ociboot push reg.example/os:1 \
    -platform linux/amd64 -kernel vmlinuz-amd64 -initrd initrd-amd64.img -cmdline console=ttyS0 \
    -platform linux/arm64 -kernel Image-arm64.gz -initrd initrd-arm64.img -cmdline console=ttyAMA0

Without -platform a single manifest (no index) is pushed. Initrds are
concatenated in the order given. Credentials come from the docker config
file (docker login, or an "auths" entry with base64 user:password).
`

func cmdPush(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("push", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var rf registryFlags
	rf.register(fs)
	var g bootGroups
	title := fs.String("title", "", "org.opencontainers.image.title annotation")
	version := fs.String("version", "", "org.opencontainers.image.version annotation")
	fs.Var(groupFlag{&g, func(g *bootGroups, v string) error {
		p, err := parsePlatform(v)
		if err != nil {
			return err
		}
		if len(g.groups) == 1 && g.groups[0].platform == nil && g.groups[0].kernel == "" && g.groups[0].uki == "" {
			g.groups[0].platform = p
			return nil
		}
		g.groups = append(g.groups, &bootGroup{platform: p})
		return nil
	}}, "platform", "start the files of platform OS/ARCH[/VARIANT] (repeatable)")
	fs.Var(groupFlag{&g, func(g *bootGroups, v string) error {
		if g.cur().kernel != "" {
			return errors.New("a second -kernel for the same platform")
		}
		g.cur().kernel = v
		return nil
	}}, "kernel", "kernel image FILE")
	fs.Var(groupFlag{&g, func(g *bootGroups, v string) error { g.cur().initrds = append(g.cur().initrds, v); return nil }}, "initrd", "initrd FILE (repeatable, concatenated in order)")
	fs.Var(groupFlag{&g, func(g *bootGroups, v string) error { g.cur().cmdline = &v; return nil }}, "cmdline", "kernel command line")
	fs.Var(groupFlag{&g, func(g *bootGroups, v string) error { g.cur().uki = v; return nil }}, "uki", "unified kernel image FILE instead of -kernel and -initrd")
	fs.Usage = func() { fmt.Fprint(fs.Output(), pushUsage, "\n"); fs.PrintDefaults() }

	// The reference may come first, with the flags after it.
	if err := parseRefFirst(fs, args); err != nil {
		return 2
	}
	if fs.NArg() != 1 || len(g.groups) == 0 {
		fs.Usage()
		return 2
	}
	ref, err := oci.ParseReference(fs.Arg(0))
	if err != nil {
		fmt.Fprintf(stderr, "ociboot push: %v\n", err)
		return 2
	}
	var imgs []publish.BootImage
	for _, grp := range g.groups {
		img := publish.BootImage{Platform: grp.platform, Title: *title, Version: *version}
		read := func(path string) []byte {
			if err != nil || path == "" {
				return nil
			}
			var b []byte
			b, err = os.ReadFile(path)
			return b
		}
		img.Kernel, img.UKI = read(grp.kernel), read(grp.uki)
		for _, p := range grp.initrds {
			img.Initrds = append(img.Initrds, read(p))
		}
		if grp.cmdline != nil {
			img.Cmdline = *grp.cmdline
		}
		if err != nil {
			fmt.Fprintf(stderr, "ociboot push: %v\n", err)
			return 1
		}
		// A kernel for another platform than its group is a mistake worth
		// stopping for; one we cannot identify only merits a warning.
		blob, file := img.Kernel, grp.kernel
		if blob == nil {
			blob, file = img.UKI, grp.uki
		}
		if a, _, aerr := oci.KernelArch(blob); aerr != nil {
			fmt.Fprintf(stderr, "ociboot push: warning: %s: %v\n", file, aerr)
		} else if grp.platform != nil && a != grp.platform.Architecture {
			fmt.Fprintf(stderr, "ociboot push: %s is a kernel for %s, not %s\n", file, a, grp.platform.Architecture)
			return 1
		}
		imgs = append(imgs, img)
	}
	c, err := rf.client(ref)
	if err != nil {
		fmt.Fprintf(stderr, "ociboot push: %v\n", err)
		return 1
	}
	d, err := publish.PushBoot(ctx, c, ref, imgs)
	if err != nil {
		fmt.Fprintf(stderr, "ociboot push: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "%s@%s\n", ref.Name(), d.Digest)
	return 0
}
