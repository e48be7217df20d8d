package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ociboot/ociboot/efirt/build"
	"github.com/ociboot/ociboot/efirt/qemu"
	"github.com/ociboot/ociboot/oci"
	"github.com/ociboot/ociboot/oci/publish"
	"github.com/ociboot/ociboot/plan"
	"github.com/ociboot/ociboot/tests/bed"
	"github.com/ociboot/ociboot/tests/payload"
)

// The demo's guest sees the registry at this address of QEMU's user
// network; each guest connection is forwarded to the registry on loopback.
const (
	demoGuestRegistry = "10.0.2.100:5000"
	demoRepo          = "ociboot/demo:latest"
	demoCmdline       = "console=ttyS0 ociboot.demo=1"
)

// cmdDemo shows the whole boot: Debian's kernel and an initramfs of ours
// pushed to a registry on loopback, bootd built with a plan pointing at it,
// booted in QEMU on user networking (restrict=on) up to the initramfs's
// marker.
func cmdDemo(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	arch := fs.String("arch", defaultArch(), "architecture of the machine (GOARCH)")
	timeout := fs.Duration("timeout", 5*time.Minute, "give up after this long")
	nicPath := fs.String("nic", "auto", "NIC path for the loader: auto, virtio, virtio-nooffload or snp")
	from := fs.String("qemu-from", qemu.Machine, qemuFromUsage)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if err := demo(ctx, *arch, *timeout, *nicPath, *from); err != nil {
		fmt.Fprintf(os.Stderr, "ociboot demo: %v\n", err)
		return 1
	}
	return 0
}

func demo(ctx context.Context, arch string, timeout time.Duration, nicPath, qemuFrom string) error {
	start := time.Now()
	step := func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, "demo [%5.1fs] %s\n", time.Since(start).Seconds(), fmt.Sprintf(format, args...))
	}
	work, err := os.MkdirTemp("", "ociboot-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)

	step("fetching Debian's kernel for %s and building the initramfs", arch)
	img := publish.BootImage{Platform: &ocispec.Platform{OS: "linux", Architecture: arch}, Title: "ociboot demo"}
	target := plan.Target{Name: "demo", Ref: demoGuestRegistry + "/" + demoRepo, PlainHTTP: true}
	marker, want, childExits := payload.Marker, payload.CmdlinePrefix+demoCmdline, 0
	if k, err := payload.FetchKernel(arch, os.Stderr); err != nil {
		// Where no Debian kernel can be had (loong64; riscv64 when the
		// mirror's index does not verify), show the same fetch, LoadImage
		// and StartImage with an EFI program that returns.
		step("no Debian kernel for %s here (%v); chain-loading tests/chainee instead", arch, err)
		out := filepath.Join(work, "chainee.efi")
		if _, err := build.Build(ctx, build.Options{Arch: arch, Package: "./tests/chainee", Output: out}); err != nil {
			return err
		}
		if img.Kernel, err = os.ReadFile(out); err != nil {
			return err
		}
		target.Kind, target.Cmdline = "efi", "chainee.efi "+demoCmdline
		marker, want, childExits = "ociboot-chainee: running", `load options "`+demoCmdline+`"`, 1
	} else {
		kernel, err := os.ReadFile(k.Path)
		if err != nil {
			return err
		}
		initrd, err := payload.Initrd(ctx, arch)
		if err != nil {
			return err
		}
		img.Kernel, img.Initrds, img.Cmdline = kernel, [][]byte{initrd}, demoCmdline
		step("kernel %s %s (%d bytes), initramfs %d bytes", k.Package, k.Version, len(kernel), len(initrd))
	}

	reg, err := bed.StartLoopbackRegistry(ctx, work, nil, os.Stderr)
	if err != nil {
		return err
	}
	defer reg.Close()
	step("registry (Debian's docker-registry) on %s", reg.Addr)

	ref, err := oci.ParseReference(reg.Addr + "/" + demoRepo)
	if err != nil {
		return err
	}
	c := oci.NewClient(http.DefaultClient, oci.WithPlainHTTP(reg.Addr))
	desc, err := publish.PushBoot(ctx, c, ref, []publish.BootImage{img})
	if err != nil {
		return fmt.Errorf("pushing the demo artifact: %w", err)
	}
	step("pushed %s@%s", ref, desc.Digest)

	p := &plan.Plan{NIC: nicPath, Timeout: plan.Duration(timeout), Targets: []plan.Target{target}}
	data, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return err
	}
	if _, err := plan.Parse(data); err != nil {
		return err
	}
	efi := filepath.Join(work, "bootd.efi")
	res, err := build.Build(ctx, build.Options{Arch: arch, Package: "./cmd/bootd", Output: efi,
		Files: map[string][]byte{"zz_plan.go": plan.GoSource(data)}})
	if err != nil {
		return err
	}
	step("built bootd with the plan embedded (%d bytes); booting QEMU (TCG, user networking, restrict=on)", res.Size)

	fwd, err := buildForwarder(ctx, work)
	if err != nil {
		return err
	}
	netdev := "user,id=n0,restrict=on,guestfwd=tcp:" + demoGuestRegistry + "-cmd:" + strings.ReplaceAll(fwd+" "+reg.Addr, ",", ",,")
	var console strings.Builder
	run, err := qemu.Run(ctx, qemu.Config{
		Arch: arch, QEMU: qemuFrom, Timeout: timeout, Stdout: io.MultiWriter(os.Stdout, &console), Log: os.Stderr, ScratchLog: true,
		FirstLineMarker: marker, ChildExits: childExits,
		QEMUArgs: []string{"-netdev", netdev, "-device", "virtio-net-pci,netdev=n0,romfile="},
	}, efi, nil)
	if err != nil {
		return err
	}
	text := console.String()
	if run.FirstOutput == 0 {
		return fmt.Errorf("%q never appeared (%s)", marker, run.Reason)
	}
	if !strings.Contains(text, want) {
		return fmt.Errorf("the console lacks %q: the command line did not arrive", want)
	}
	what := "Linux userspace"
	if target.Kind == "efi" {
		what = "the chain-loaded program"
	}
	fmt.Fprintf(os.Stderr, "\ndemo: OK — %s reached %.1fs after QEMU started (whole demo %.1fs); %s\n",
		what, run.FirstOutput.Seconds(), time.Since(start).Seconds(), firstLine(text, "starting demo"))
	return nil
}

func firstLine(text, sub string) string {
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, sub) {
			return strings.TrimSpace(l)
		}
	}
	return ""
}

// buildForwarder builds the relay QEMU runs per guest connection (a
// guestfwd chardev carries one connection only).
func buildForwarder(ctx context.Context, dir string) (string, error) {
	out := filepath.Join(dir, "fwd")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, "github.com/ociboot/ociboot/tests/bed/fwd")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building the forwarder: %w: %s", err, b)
	}
	return out, nil
}
