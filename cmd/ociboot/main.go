// Command ociboot is the host side of ociboot: it builds Go programs (the
// loader, cmd/bootd, by default) into EFI applications that run on efirt,
// boots them under QEMU, publishes and inspects boot artifacts in OCI
// registries, and reads the log the loader leaves on a scratch disk.
//
//	ociboot build [-arch amd64] [-o FILE] [-plan FILE] [PACKAGE]
//	ociboot run [-arch amd64] [-timeout DURATION] [-firmware PATH] FILE.efi [ARGS...]
//	ociboot vet [-arch amd64] PACKAGE...
//	ociboot demo | logs | push | inspect | sign ...
//
// 'ociboot <command> -h' prints each command's flags.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/ociboot/ociboot/efirt/build"
	"github.com/ociboot/ociboot/efirt/qemu"
	"github.com/ociboot/ociboot/plan"
)

const usage = `usage: ociboot <command> [flags] [arguments]

commands:
  build   build a Go main package into a PE32+ EFI application
  run     boot an EFI application in QEMU and exit with its status
  vet     run go vet on main packages as they are built for EFI
  demo    boot Debian's kernel from a registry on loopback, end to end
  logs    create a scratch disk for the loader's log, or print the log it holds
  push    push a kernel, initrds and command line (or a UKI) as a boot artifact
  inspect show a boot artifact's platforms, format, files, cmdline and signature
  sign    sign a boot artifact with an ECDSA P-256 key, as cosign does

Run 'ociboot <command> -h' for the flags of a command.
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var code int
	switch os.Args[1] {
	case "build":
		code = cmdBuild(ctx, os.Args[2:])
	case "run":
		code = cmdRun(ctx, os.Args[2:])
	case "vet":
		code = cmdVet(ctx, os.Args[2:])
	case "demo":
		code = cmdDemo(ctx, os.Args[2:])
	case "logs":
		code = cmdLogs(os.Args[2:])
	case "push":
		code = cmdPush(ctx, os.Args[2:], os.Stdout, os.Stderr)
	case "inspect":
		code = cmdInspect(ctx, os.Args[2:], os.Stdout, os.Stderr)
	case "sign":
		code = cmdSign(ctx, os.Args[2:], os.Stdout, os.Stderr)
	case "-h", "-help", "--help", "help":
		fmt.Print(usage)
	default:
		fmt.Fprintf(os.Stderr, "ociboot: unknown command %q\n\n%s", os.Args[1], usage)
		code = 2
	}
	stop()
	os.Exit(code)
}

func cmdBuild(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("build", flag.ContinueOnError)
	arch := fs.String("arch", defaultArch(), "target architecture (GOARCH)")
	out := fs.String("o", "", "output file (default: PACKAGE's name with .efi)")
	keepELF := fs.String("elf", "", "also keep the first link's ELF, with symbols, at this path")
	verbose := fs.Bool("v", false, "print what the build does")
	planFile := fs.String("plan", "", "embed this boot plan (JSON), validated first")
	var embeds stringList
	fs.Var(&embeds, "embed", "compile in an EFI program as NAME=FILE for plan targets that name it (repeatable)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: ociboot build [-arch ARCH] [-o FILE] [-plan FILE] [PACKAGE]\n\nPACKAGE defaults to ./cmd/bootd.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 1 {
		fs.Usage()
		return 2
	}
	pkg := "./cmd/bootd"
	if fs.NArg() == 1 {
		pkg = fs.Arg(0)
	}
	if *out == "" {
		*out = filepath.Base(strings.TrimSuffix(pkg, "/")) + ".efi"
	}
	logf := func(string, ...any) {}
	if *verbose {
		logf = func(f string, a ...any) { fmt.Fprintf(os.Stderr, "ociboot: "+f+"\n", a...) }
	}
	files := map[string][]byte{}
	if *planFile != "" {
		data, err := os.ReadFile(*planFile)
		if err != nil {
			fmt.Fprintf(os.Stderr, "ociboot build: %v\n", err)
			return 1
		}
		if _, err := plan.Parse(data); err != nil {
			fmt.Fprintf(os.Stderr, "ociboot build: %s: %v\n", *planFile, err)
			return 1
		}
		files["zz_plan.go"] = plan.GoSource(data)
		if err := addEmbeds(files, embeds, data); err != nil {
			fmt.Fprintf(os.Stderr, "ociboot build: %v\n", err)
			return 1
		}
	} else if len(embeds) > 0 {
		fmt.Fprintln(os.Stderr, "ociboot build: -embed needs a -plan whose targets name the programs")
		return 2
	}
	start := time.Now()
	res, err := build.Build(ctx, build.Options{Arch: *arch, Package: pkg, Output: *out, KeepELF: *keepELF, Log: logf, Files: files})
	if err != nil {
		fmt.Fprintf(os.Stderr, "ociboot build: %v\n", err)
		return 1
	}
	fmt.Fprintf(os.Stderr, "ociboot: built %s (%s, %d bytes, %d relocations) in %v\n",
		res.Output, *arch, res.Size, res.Relocs, time.Since(start).Round(time.Millisecond))
	return 0
}

// qemuFromUsage explains the -qemu-from choice of run and demo.
const qemuFromUsage = "which QEMU: " + qemu.Machine + " (installed with apt when missing) or " + qemu.Trixie +
	" (Debian trixie's QEMU 10, fetched into the cache; its TCG runs AES-NI and SHA-NI much faster on amd64; always used on loong64)"

func cmdRun(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	arch := fs.String("arch", defaultArch(), "architecture of the machine (GOARCH)")
	timeout := fs.Duration("timeout", 5*time.Minute, "give up after this long")
	firmware := fs.String("firmware", "", "firmware code image (default: edk2 2025.02 from Debian trixie, fetched and cached)")
	mem := fs.Int("m", 2048, "memory in MiB")
	quiet := fs.Bool("q", false, "do not print the runner's own messages")
	from := fs.String("qemu-from", qemu.Machine, qemuFromUsage)
	var extra stringList
	fs.Var(&extra, "qemu", "extra QEMU argument (repeatable), e.g. -qemu=-device -qemu=virtio-net-pci,netdev=n0")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: ociboot run [-arch ARCH] [-timeout DURATION] [-firmware PATH] FILE.efi [ARGS...]\n\n"+
			"Exits with the program's status, %d on timeout, %d when QEMU or the firmware fails.\n", qemu.StatusTimeout, qemu.StatusFirmwareFailure)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() < 1 {
		fs.Usage()
		return 2
	}
	var log *os.File
	if !*quiet {
		log = os.Stderr
	}
	cfg := qemu.Config{Arch: *arch, QEMU: *from, Firmware: *firmware, Timeout: *timeout, MemoryMiB: *mem, Stdout: os.Stdout, QEMUArgs: extra, ScratchLog: true}
	if log != nil {
		cfg.Log = log
	}
	res, err := qemu.Run(ctx, cfg, fs.Arg(0), fs.Args()[1:])
	if err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintf(os.Stderr, "ociboot run: %v\n", err)
		return qemu.StatusFirmwareFailure
	}
	if log != nil {
		fmt.Fprintf(log, "ociboot: %s after %v\n", res.Reason, res.Duration.Round(time.Millisecond))
	}
	return res.Status
}

func cmdVet(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("vet", flag.ContinueOnError)
	arch := fs.String("arch", defaultArch(), "target architecture (GOARCH)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: ociboot vet [-arch ARCH] PACKAGE...\n\nVets EFI main packages with the efirt overlay, which plain go vet cannot build.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return 2
	}
	code := 0
	for _, pkg := range fs.Args() {
		if err := build.Vet(ctx, build.Options{Arch: *arch, Package: pkg}); err != nil {
			fmt.Fprintf(os.Stderr, "ociboot vet: %v\n", err)
			code = 1
		}
	}
	return code
}

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, " ") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

func defaultArch() string {
	if a := os.Getenv("OCIBOOT_ARCH"); a != "" {
		return a
	}
	return runtime.GOARCH
}

// addEmbeds adds the -embed NAME=FILE programs to the build's files and
// checks they are exactly the ones the plan's targets name.
func addEmbeds(files map[string][]byte, embeds []string, planJSON []byte) error {
	p, err := plan.Parse(planJSON)
	if err != nil {
		return err
	}
	data := map[string][]byte{}
	var names []string
	for _, e := range embeds {
		name, file, ok := strings.Cut(e, "=")
		if !ok || name == "" || file == "" {
			return fmt.Errorf("-embed %q: want NAME=FILE", e)
		}
		b, err := os.ReadFile(file)
		if err != nil {
			return fmt.Errorf("-embed %s: %w", name, err)
		}
		if _, dup := data[name]; dup {
			return fmt.Errorf("-embed %s given twice", name)
		}
		data[name] = b
		names = append(names, name)
	}
	for _, n := range p.EmbeddedNames() {
		if data[n] == nil {
			return fmt.Errorf("the plan's targets name embedded program %q, but no -embed %s=FILE was given", n, n)
		}
	}
	if len(names) == 0 {
		return nil
	}
	src, names2files := plan.ImagesGoSource(names)
	files["zz_images.go"] = src
	for n, f := range names2files {
		files[f] = data[n]
	}
	return nil
}
