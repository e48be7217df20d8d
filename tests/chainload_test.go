package tests

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ociboot/ociboot/efirt/qemu"
	"github.com/ociboot/ociboot/plan"
	"github.com/ociboot/ociboot/tests/bed"
	"github.com/ociboot/ociboot/tests/payload"
)

// efiShell is trixie's UEFI shell per architecture: the program bootd
// chain-loads in TestChainLoad. It runs the command its load options name
// and returns that command's status to its parent.
var efiShell = map[string][2]string{
	"amd64":   {"efi-shell-x64", "usr/share/efi-shell-x64/shellx64.efi"},
	"arm64":   {"efi-shell-aa64", "usr/share/efi-shell-aa64/shellaa64.efi"},
	"loong64": {"efi-shell-loongarch64", "usr/share/efi-shell-loongarch64/shellloongarch64.efi"},
	"riscv64": {"efi-shell-riscv64", "usr/share/efi-shell-riscv64/shellriscv64.efi"},
}

// chainMarker is what the chain-loaded shell echoes.
const chainMarker = "ociboot-chain: shell ran"

// TestChainee runs tests/chainee, the Go program TestGoChainLoad has bootd
// chain-load, on its own: it reports its load options and exits with the
// status they name.
func TestChainee(t *testing.T) {
	for _, arch := range arches {
		t.Run(arch, func(t *testing.T) {
			efi := buildEFI(t, arch, "./tests/chainee")
			var con strings.Builder
			res, err := qemu.Run(context.Background(), qemu.Config{Arch: arch, Timeout: 3 * time.Minute, Stdout: &con}, efi, []string{"hello=world", "exit=3"})
			if err != nil {
				t.Fatalf("qemu: %v", err)
			}
			if !res.Exited || res.Status != 3 {
				t.Errorf("chainee: %s, want exit status 3\n%s", res.Reason, con.String())
			}
			if want := chaineeMarker + ` running, load options "hello=world exit=3"`; !strings.Contains(con.String(), want) {
				t.Errorf("console lacks %q:\n%s", want, con.String())
			}
		})
	}
}

// chaineeMarker starts every line tests/chainee prints.
const chaineeMarker = "ociboot-chainee:"

// TestChainLoad has bootd chain-load an EFI program from the registry
// twice — once running a command that succeeds, once exiting with status 3
// — and then boot Linux: each child returns to bootd, which reports how it
// ended and goes on with the plan's next target.
//
// The child here is the EDK2 shell, a program that is not ours;
// TestGoChainLoad does the same with tests/chainee, a Go program on its own
// efirt nested inside bootd's.
func TestChainLoad(t *testing.T) {
	for _, arch := range arches {
		t.Run(arch, func(t *testing.T) {
			b := bed.New(t, bed.Options{Registry: true})
			sh := efiShell[arch]
			shell, err := os.ReadFile(trixieEFI(t, sh[0], sh[1]))
			if err != nil {
				t.Fatal(err)
			}
			prog := pushBoot(t, b, arch, "ociboot/shell:1", shell, nil, "")
			ca := []string{string(b.Certs.CAPEM)}
			// The shell reads its options after its own name, as from a
			// command line: no startup script, no mapping table, no banner;
			// -exit ends it after the command. Its exit command returns the
			// status it is given, as an EFI warning.
			const shellOpts = "shell.efi -nostartup -nomap -noversion "
			targets := []plan.Target{
				{Name: "shell-ok", Ref: prog, Kind: "efi", Cmdline: shellOpts + "-exit echo " + chainMarker, CA: ca},
				{Name: "shell-fail", Ref: prog, Kind: "efi", Cmdline: shellOpts + "exit 3", CA: ca},
			}
			if noLinux[arch] {
				// No kernel to end with (see noLinux): the shells alone
				// prove the handoff, and bootd returns to the firmware
				// after the second.
				efi := buildBootd(t, arch, &plan.Plan{Timeout: plan.Duration(4 * time.Minute), Targets: targets})
				run := bootInBed(t, b, arch, efi, "")
				if !run.res.Exited || run.res.Status != 1 {
					t.Errorf("bootd: %s, want exit status 1 after the last target", run.res.Reason)
				}
				if err := run.console.inOrder(`bootd: starting shell-ok`, chainMarker,
					`bootd: target "shell-ok" returned successfully; trying the next target, "shell-fail"`,
					`bootd: starting shell-fail`, `what failed:  running shell-fail`, `EFI warning 3`,
					`next:         returning to the firmware`); err != nil {
					t.Error(err)
				}
				if n := run.console.count(chainMarker); n < 2 {
					t.Errorf("the shell's echo is missing: %q appears %d time(s), want bootd's log and the shell's output", chainMarker, n)
				}
				return
			}
			kernel, initrd := payloadFiles(t, arch)
			linux := pushBoot(t, b, arch, "ociboot/debian:12", kernel, initrd, "console=ttyS0")
			targets = append(targets, plan.Target{Name: "debian", Ref: linux, Cmdline: "console=ttyS0 ociboot.test=after-chain", CA: ca})
			efi := buildBootd(t, arch, &plan.Plan{Timeout: plan.Duration(4 * time.Minute), Targets: targets})
			run := bootInBed(t, b, arch, efi, payload.Marker)
			con := run.console
			if run.res.FirstOutput == 0 {
				t.Fatalf("no userspace marker after the chain-loaded programs (%s)", run.res.Reason)
			}
			if !strings.Contains(con.line(payload.CmdlinePrefix), "ociboot.test=after-chain") {
				t.Errorf("kernel command line %q: want the third target's", con.line(payload.CmdlinePrefix))
			}
			// In order: the first child runs and returns success, bootd moves
			// on; the second returns status 3, bootd reports it and moves on;
			// then Linux.
			seq := []string{
				`bootd: starting shell-ok`,
				chainMarker,
				`bootd: target "shell-ok" returned successfully; trying the next target, "shell-fail"`,
				`bootd: starting shell-fail`,
				`what failed:  running shell-fail`,
				`EFI warning 3`,
				`next:         trying the next target, "debian"`,
				`bootd: starting debian`,
				"EFI stub:",
				payload.Marker,
			}
			if err := con.inOrder(seq...); err != nil {
				t.Error(err)
			}
			// The echo's own line, not the command line bootd logged.
			if n := con.count(chainMarker); n < 2 {
				t.Errorf("the shell's echo is missing: %q appears %d time(s), want bootd's log and the shell's output", chainMarker, n)
			}
		})
	}
}
