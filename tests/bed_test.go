package tests

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ociboot/ociboot/efirt/qemu"
	"github.com/ociboot/ociboot/tests/bed"
	"github.com/ociboot/ociboot/tests/payload"
)

// These tests prove the test beds and the boot payload with boot loaders
// we did not write (iPXE, the EFI shell), and give the reference figures
// ociboot's own loader is measured against.

// trixieEFI returns a file from one of trixie's EFI packages, fetched once
// into the cache.
func trixieEFI(t testing.TB, pkg, file string) string {
	t.Helper()
	dir, err := qemu.CachedDebs(nil, pkg+"-trixie", "trixie", "", pkg)
	if err != nil {
		t.Fatalf("fetching trixie's %s: %v", pkg, err)
	}
	p := filepath.Join(dir, file)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("trixie's %s: %v", pkg, err)
	}
	return p
}

// stampedConsole keeps the guest's console with the arrival time of each
// line, so the test can time events the guest prints.
type stampedConsole struct {
	mu    sync.Mutex
	text  bytes.Buffer
	lines []stampedLine
	part  []byte
}

type stampedLine struct {
	at   time.Time
	text string
}

func (c *stampedConsole) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	c.text.Write(p)
	c.part = append(c.part, p...)
	for {
		i := bytes.IndexByte(c.part, '\n')
		if i < 0 {
			break
		}
		c.lines = append(c.lines, stampedLine{now, string(c.part[:i])})
		c.part = c.part[i+1:]
	}
	return len(p), nil
}

// when returns the arrival time of the first line containing s.
func (c *stampedConsole) when(s string) (time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, l := range c.lines {
		if strings.Contains(l.text, s) {
			return l.at, true
		}
	}
	return time.Time{}, false
}

// line returns the first line containing s.
func (c *stampedConsole) line(s string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, l := range c.lines {
		if strings.Contains(l.text, s) {
			return l.text
		}
	}
	return ""
}

// bootRun is one boot of the payload by a foreign loader.
type bootRun struct {
	res     qemu.Result
	console *stampedConsole
	start   time.Time // QEMU's start, derived from the marker's arrival
}

// since returns the time from QEMU's start to the first line with s.
func (r *bootRun) since(s string) (time.Duration, bool) {
	at, ok := r.console.when(s)
	if !ok || r.start.IsZero() {
		return 0, false
	}
	return at.Sub(r.start), true
}

// runPayload boots an ESP that populate fills in and checks that the
// initramfs reached userspace with the expected command-line token.
func runPayload(t testing.TB, cfg qemu.Config, populate func(esp string) error, token string) *bootRun {
	t.Helper()
	con := &stampedConsole{}
	cfg.Stdout = con
	cfg.FirstLineMarker = payload.Marker
	if cfg.Timeout == 0 {
		cfg.Timeout = 5 * time.Minute
	}
	res, err := qemu.RunESP(context.Background(), cfg, populate)
	run := &bootRun{res: res, console: con}
	if at, ok := con.when(payload.Marker); ok && res.FirstOutput > 0 {
		run.start = at.Add(-res.FirstOutput)
	}
	if err != nil {
		t.Fatalf("qemu: %v\nconsole:\n%s", err, con.text.String())
	}
	if res.FirstOutput == 0 {
		t.Fatalf("no %q on the console (%s)\nconsole:\n%s", payload.Marker, res.Reason, con.text.String())
	}
	cmdline := con.line(payload.CmdlinePrefix)
	for _, want := range []string{"console=ttyS0", token} {
		if !strings.Contains(cmdline, want) {
			t.Errorf("kernel command line %q lacks %q", cmdline, want)
		}
	}
	return run
}

// writeFiles writes name -> content into dir.
func writeFiles(dir string, files map[string][]byte) error {
	for name, data := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// payloadFiles returns the kernel and the initramfs for arch.
func payloadFiles(t testing.TB, arch string) (kernel, initrd []byte) {
	t.Helper()
	k, err := payload.FetchKernel(arch, nil)
	if err != nil {
		t.Fatal(err)
	}
	if kernel, err = os.ReadFile(k.Path); err != nil {
		t.Fatal(err)
	}
	if initrd, err = payload.Initrd(context.Background(), arch); err != nil {
		t.Fatal(err)
	}
	t.Logf("payload: %s %s (%d bytes), initramfs %d bytes", k.Package, k.Version, len(kernel), len(initrd))
	return kernel, initrd
}

// checkBedGone fails the test if anything of b is left after its teardown.
func checkBedGone(t testing.TB, b *bed.Bed) {
	t.Helper()
	if err := b.Close(); err != nil {
		t.Error(err)
	}
	if left := b.Gone(); len(left) > 0 {
		t.Errorf("left behind after the bed's teardown: %v", left)
	}
}

// Lines the iPXE script prints, for timing.
const (
	ipxeScriptStart = "ociboot-bed: ipxe script"
	ipxeDHCPDone    = "ociboot-bed: dhcp done"
	ipxeFileStart   = "ociboot-bed: fetch file"
	ipxeFileDone    = "ociboot-bed: fetched file"
	ipxeKernelStart = "ociboot-bed: fetch kernel"
	ipxeBootStart   = "ociboot-bed: booting"
	// ipxeBanner is the first line iPXE prints once the firmware started it.
	ipxeBanner = "iPXE initialising devices"
)

// ipxeFigures are the timings of one iPXE boot, from QEMU's start.
type ipxeFigures struct {
	banner, script, dhcp, fileStart, fileDone, kernelStart, boot, marker time.Duration
	fileMBps                                                             float64
}

// bootIPXE boots iPXE in a namespace bed of its own; its script
// (autoexec.ipxe on the ESP) gets a lease from dnsmasq, fetches the random
// file, the kernel and the initramfs over HTTP from registry.test, and
// boots them.
//
// With userNet the bed is QEMU's user network instead (restrict=on, guest
// forwards to loopback): slirp's DHCP, no DNS, servers by address.
func bootIPXE(t testing.TB, cfg qemu.Config, fileSize int64, userNet bool) ipxeFigures {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("fetching the kernel and the namespace bed need root (CI runs as root)")
	}
	kernel, initrd := payloadFiles(t, cfg.Arch)
	b := bed.New(t, bed.Options{FileSize: fileSize, ForceUser: userNet})
	if b.UserNet != userNet {
		t.Fatalf("bed: user network %v, want %v", b.UserNet, userNet)
	}
	f := bootIPXEIn(t, b, cfg, kernel, initrd, true)
	checkBedGone(t, b)
	return f
}

// bootIPXEIn boots kernel and initrd with iPXE over HTTP from bed b, after
// fetching the bed's random file when withFile is set. cfg gives the arch
// and the QEMU.
func bootIPXEIn(t testing.TB, b *bed.Bed, cfg qemu.Config, kernel, initrd []byte, withFile bool) ipxeFigures {
	t.Helper()
	ipxe := trixieEFI(t, "ipxe", "usr/lib/ipxe/ipxe-"+cfg.Arch+".efi")
	if err := writeFiles(b.WWW, map[string][]byte{"vmlinuz": kernel, "initrd.gz": initrd}); err != nil {
		t.Fatal(err)
	}
	const token = "ociboot.bed=ipxe"
	file := ""
	if withFile {
		file = fmt.Sprintf("echo %s\nimgfetch --name file %s\necho %s\nimgfree file\n",
			ipxeFileStart, b.FileURL(bed.RandomFile), ipxeFileDone)
	}
	script := fmt.Sprintf(`#!ipxe
echo %s
ifconf -c dhcp net0 || dhcp net0
echo %s ${net0/ip}
%secho %s
kernel %s console=ttyS0 %s
initrd %s
echo %s
boot
`, ipxeScriptStart, ipxeDHCPDone, file, ipxeKernelStart,
		b.FileURL("vmlinuz"), token, b.FileURL("initrd.gz"), ipxeBootStart)
	ipxeBin, err := os.ReadFile(ipxe)
	if err != nil {
		t.Fatal(err)
	}
	cfg = b.Config(cfg)
	run := runPayload(t, cfg, func(esp string) error {
		return writeFiles(esp, map[string][]byte{
			"EFI/BOOT/BOOTX64.EFI": ipxeBin,
			"autoexec.ipxe":        []byte(script),
		})
	}, token)
	if !b.UserNet && !strings.Contains(b.Leases(), "10.77.0.") {
		t.Errorf("dnsmasq gave no lease:\n%s", b.DnsmasqLog())
	}
	if !b.UserNet && !strings.Contains(b.DnsmasqLog(), "query[A] "+bed.Hostname) {
		t.Errorf("the guest did not ask dnsmasq for %s:\n%s", bed.Hostname, b.DnsmasqLog())
	}
	var f ipxeFigures
	f.marker = run.res.FirstOutput
	type mark struct {
		line string
		d    *time.Duration
	}
	lines := []mark{{ipxeBanner, &f.banner}, {ipxeScriptStart, &f.script}, {ipxeDHCPDone, &f.dhcp}, {ipxeKernelStart, &f.kernelStart}, {ipxeBootStart, &f.boot}}
	if withFile {
		lines = append(lines, mark{ipxeFileStart, &f.fileStart}, mark{ipxeFileDone, &f.fileDone})
	}
	for _, e := range lines {
		d, ok := run.since(e.line)
		if !ok {
			t.Errorf("no %q on the console", e.line)
		}
		*e.d = d
	}
	if fetch := f.fileDone - f.fileStart; withFile && fetch > 0 {
		f.fileMBps = float64(b.FileSize) / 1e6 / fetch.Seconds()
	}
	return f
}

func TestBedIPXE(t *testing.T) {
	for _, arch := range []string{"amd64"} {
		t.Run(arch, func(t *testing.T) {
			f := bootIPXE(t, qemu.Config{Arch: arch}, 64<<20, false)
			logIPXE(t, arch+", namespace bed", f)
		})
		t.Run(arch+"-usernet", func(t *testing.T) {
			f := bootIPXE(t, qemu.Config{Arch: arch}, 16<<20, true)
			logIPXE(t, arch+", user network", f)
		})
	}
}

func logIPXE(t *testing.T, what string, f ipxeFigures) {
	t.Logf("iPXE figures (%s, TCG, seconds from QEMU start): script %.2f, DHCP done %.2f, file %.2f-%.2f (%.1f MB/s incl. iPXE's image handling), boot %.2f, userspace marker %.2f",
		what, f.script.Seconds(), f.dhcp.Seconds(), f.fileStart.Seconds(), f.fileDone.Seconds(), f.fileMBps, f.boot.Seconds(), f.marker.Seconds())
}

// BenchmarkIPXE reports iPXE's figures in the namespace bed: the reference
// ociboot is measured against. One boot per iteration.
func BenchmarkIPXE(b *testing.B) {
	var sum ipxeFigures
	for b.Loop() {
		f := bootIPXE(b, qemu.Config{Arch: "amd64"}, 256<<20, false)
		sum.dhcp += f.dhcp
		sum.marker += f.marker
		sum.fileMBps += f.fileMBps
		sum.boot += f.boot
	}
	n := float64(b.N)
	b.ReportMetric(sum.dhcp.Seconds()/n, "s-to-dhcp")
	b.ReportMetric(sum.boot.Seconds()/n, "s-to-boot")
	b.ReportMetric(sum.marker.Seconds()/n, "s-to-userspace")
	b.ReportMetric(sum.fileMBps/n, "MB/s-http")
}

// TestPayloadESP boots the kernel and initramfs straight from the ESP with
// trixie's EFI shell running startup.nsh: the payload works without any
// network loader.
func TestPayloadESP(t *testing.T) {
	for _, arch := range []string{"amd64"} {
		t.Run(arch, func(t *testing.T) {
			if os.Geteuid() != 0 {
				t.Skip("fetching the kernel with apt needs root here")
			}
			kernel, initrd := payloadFiles(t, arch)
			run, countdown := bootESP(t, arch, kernel, initrd)
			t.Logf("ESP figures (%s, TCG): userspace marker %.2f s from QEMU start, %.2f s of it the shell's startup.nsh countdown",
				arch, run.res.FirstOutput.Seconds(), countdown.Seconds())
		})
	}
}

// Lines trixie's EFI shell prints around its startup.nsh countdown.
const (
	shellCountdown = "Press ESC in "
	shellStartup   = "ociboot-bed: startup.nsh"
)

// bootESP boots kernel and initrd straight from the ESP: trixie's EFI shell
// runs a startup.nsh that starts the kernel with initrd=. It returns the
// run and how long the shell's startup.nsh countdown took (the shell counts
// 5 s before running startup.nsh, and nothing on the ESP can shorten it:
// -delay and -nointerrupt are command-line options only, and the firmware
// starts BOOTX64.EFI without load options).
func bootESP(t testing.TB, arch string, kernel, initrd []byte) (*bootRun, time.Duration) {
	t.Helper()
	shell, err := os.ReadFile(trixieEFI(t, "efi-shell-x64", "usr/share/efi-shell-x64/shellx64.efi"))
	if err != nil {
		t.Fatal(err)
	}
	const token = "ociboot.bed=esp"
	startup := "@echo -off\r\necho " + shellStartup + "\r\nfs0:\r\n\\vmlinuz initrd=\\initrd.gz console=ttyS0 " + token + "\r\n"
	run := runPayload(t, qemu.Config{Arch: arch}, func(esp string) error {
		return writeFiles(esp, map[string][]byte{
			"EFI/BOOT/BOOTX64.EFI": shell,
			"startup.nsh":          []byte(startup),
			"vmlinuz":              kernel,
			"initrd.gz":            initrd,
		})
	}, token)
	var countdown time.Duration
	from, ok1 := run.console.when(shellCountdown)
	to, ok2 := run.console.when(shellStartup)
	if ok1 && ok2 && to.After(from) {
		countdown = to.Sub(from)
	}
	return run, countdown
}
