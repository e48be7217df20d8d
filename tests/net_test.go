package tests

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ociboot/ociboot/efirt/qemu"
	"github.com/ociboot/ociboot/plan"
	"github.com/ociboot/ociboot/tests/bed"
)

// netcheckPlan is a plan whose only job is to carry trust settings for
// bootd's netcheck mode.
func netcheckPlan(ca string) *plan.Plan {
	t := plan.Target{Name: "none", Ref: "registry.test/unused:1"}
	if ca != "" {
		t.CA, t.OnlyCA = []string{ca}, true
	}
	return &plan.Plan{Timeout: plan.Duration(3 * time.Minute), Targets: []plan.Target{t}}
}

// runNetcheck boots bootd in the bed with netcheck load options and
// returns its console. cfg gives the arch and the QEMU.
func runNetcheck(t testing.TB, b *bed.Bed, cfg qemu.Config, p *plan.Plan, args ...string) (string, qemu.Result) {
	t.Helper()
	efi := buildBootd(t, cfg.Arch, p)
	cfg.Timeout, cfg.FirstLineMarker = 5*time.Minute, "ociboot bootd"
	run := runInBed(t, b, cfg, efi, args...)
	return run.console.text.String(), run.res
}

const netFileSize = 64 << 20

// TestNetHTTPS fetches a 64 MiB file over HTTPS from Linux's TCP on the far
// end of the tap, through our NIC driver, stack, DHCP lease and DNS, and
// checks its SHA-256.
//
// amd64-qemu10 runs the amd64 case under trixie's QEMU 10, the emulator
// BenchmarkNetHTTPS measures beside the machine's.
func TestNetHTTPS(t *testing.T) {
	for _, r := range emulatorRuns() {
		t.Run(r.name, func(t *testing.T) {
			b := bed.New(t, bed.Options{FileSize: netFileSize})
			text, res := runNetcheck(t, b, r.cfg, netcheckPlan(string(b.Certs.CAPEM)),
				"netcheck="+b.FileHTTPSURL(bed.RandomFile), "sha256="+b.FileSHA256)
			if !res.Exited || res.Status != 0 {
				t.Fatalf("netcheck failed: %s", res.Reason)
			}
			for _, want := range []string{"dhcp: lease 10.77.0.", "netcheck: sha256 matches", fmt.Sprintf("netcheck: %d bytes", netFileSize)} {
				if !strings.Contains(text, want) {
					t.Errorf("console lacks %q", want)
				}
			}
			if m := regexp.MustCompile(`netcheck: \d+ bytes in ([0-9.]+s), ([0-9.]+ MB/s)`).FindStringSubmatch(text); m != nil {
				t.Logf("HTTPS + SHA-256 of 64 MiB: %s, %s", m[1], m[2])
			}
			// Linux hands the tap segments larger than the MTU, and the
			// driver's receive offloads take them whole.
			if m := nicMerged.FindStringSubmatch(text); m == nil || m[1] == "0" {
				t.Errorf("no segment came merged from several buffers (receive offloads unused): %q", m)
			}
		})
	}
}

// netFailure is a netcheck run that must fail, and what its console must
// say so an operator can act on it.
type netFailure struct {
	opts bed.Options
	plan func(b *bed.Bed) *plan.Plan // nil: trust the bed's CA
	url  func(b *bed.Bed) string
	want []string
}

// runNetFailure runs c on every arch and checks that netcheck fails with
// an exit status and the console carries c.want and the way out.
func runNetFailure(t *testing.T, c netFailure) {
	for _, arch := range arches {
		t.Run(arch, func(t *testing.T) {
			b := bed.New(t, c.opts)
			p := netcheckPlan(string(b.Certs.CAPEM))
			if c.plan != nil {
				p = c.plan(b)
			}
			text, res := runNetcheck(t, b, qemu.Config{Arch: arch}, p, "netcheck="+c.url(b))
			if !res.Exited || res.Status == 0 {
				t.Fatalf("netcheck did not fail with an exit status: %s", res.Reason)
			}
			for _, want := range append(c.want, "returning to the firmware") {
				if !strings.Contains(text, want) {
					t.Errorf("console lacks %q", want)
				}
			}
		})
	}
}

// TestNetUnknownCA: only an unrelated CA is trusted, so the server's
// certificate is refused, and the console says so.
func TestNetUnknownCA(t *testing.T) {
	runNetFailure(t, netFailure{
		plan: func(b *bed.Bed) *plan.Plan { return netcheckPlan(string(b.Certs.OtherCAPEM)) },
		url:  func(b *bed.Bed) string { return b.FileHTTPSURL(bed.RandomFile) },
		want: []string{"certificate signed by unknown authority", "not trusted"},
	})
}

// TestNetWrongName: the server's certificate names another host.
func TestNetWrongName(t *testing.T) {
	runNetFailure(t, netFailure{
		url: func(b *bed.Bed) string {
			return fmt.Sprintf("https://%s:%d/%s", b.ServerName(), bed.WrongNamePort, bed.RandomFile)
		},
		want: []string{"certificate is valid for", "registry.test"},
	})
}

// TestNetNoDHCP: DNS but no DHCP server; the DHCP timeout must end it,
// not a hang.
func TestNetNoDHCP(t *testing.T) {
	runNetFailure(t, netFailure{
		opts: bed.Options{NoDHCP: true},
		plan: func(b *bed.Bed) *plan.Plan {
			p := netcheckPlan(string(b.Certs.CAPEM))
			p.Timeout = plan.Duration(12 * time.Second)
			return p
		},
		url:  func(b *bed.Bed) string { return b.FileHTTPSURL(bed.RandomFile) },
		want: []string{"dhcp: no answer from any DHCP server after"},
	})
}

// TestNetDeadHost: an on-link address outside the DHCP range that nobody
// owns; the connect fails when ARP gives up, not when the dial times out.
func TestNetDeadHost(t *testing.T) {
	runNetFailure(t, netFailure{
		url:  func(b *bed.Bed) string { return "https://10.77.0.9/" + bed.RandomFile },
		want: []string{"no ARP reply from 10.77.0.9 (host unreachable)"},
	})
}

var (
	nicMerged = regexp.MustCompile(`nic: virtio-net received \d+ frames .*: (\d+) merged from several buffers`)
	dhcpTook  = regexp.MustCompile(`dhcp: lease .*, ([0-9.]+)s\s*$`)
	tlsTook   = regexp.MustCompile(`TLS handshake .* \+([0-9.]+)s`)
	fetchMBs  = regexp.MustCompile(`netcheck: \d+ bytes in [0-9.]+s, ([0-9.]+) MB/s`)
	cpuIdle   = regexp.MustCompile(`netcheck: \d+ bytes in .* CPU idle (\d+)%`)
	actorMBs  = regexp.MustCompile(`\] (nic|frames|ip|tcp) +\d+ +\d+ +\d+ +([0-9.]+) +\d+ +(\d+)%`)
)

// BenchmarkNetHTTPS prints, for one run in the namespace bed: DHCP time,
// TLS handshake time, HTTPS + SHA-256 MB/s of a 64 MiB file from Linux's
// TCP, each network actor's MB/s and busy share, the same download with
// the NIC's receive offloads declined (nic=virtio-nooffload: every frame
// cut to the MTU), and — the reference — iPXE fetching the same file over
// plain HTTP from the same bed, under the same QEMU. It runs under the
// machine's QEMU and under trixie's QEMU 10: the TLS and hash rates depend
// on how fast the emulator runs AES-NI and SHA-NI, and 10's TCG runs them
// several times faster.
func BenchmarkNetHTTPS(b *testing.B) {
	for _, q := range []struct{ name, choice string }{{"qemu=machine", qemu.Machine}, {"qemu=trixie", qemu.Trixie}} {
		b.Run(q.name, func(b *testing.B) {
			cfg := qemu.Config{Arch: "amd64", QEMU: q.choice}
			for range b.N {
				netBench(b, cfg)
			}
		})
	}
}

func netBench(b *testing.B, cfg qemu.Config) {
	bd := bed.New(b, bed.Options{FileSize: netFileSize})
	netcheck := func(args ...string) string {
		text, res := runNetcheck(b, bd, cfg, netcheckPlan(string(bd.Certs.CAPEM)),
			append([]string{"netcheck=" + bd.FileHTTPSURL(bed.RandomFile), "sha256=" + bd.FileSHA256}, args...)...)
		if res.Status != 0 {
			b.Fatalf("netcheck %v: %s", args, res.Reason)
		}
		return text
	}
	text := netcheck()
	plain := netcheck("nic=virtio-nooffload")
	// iPXE fetches the same file from the same server in the same bed.
	kernel, initrd := payloadFiles(b, cfg.Arch)
	f := bootIPXEIn(b, bd, cfg, kernel, initrd, true)
	checkBedGone(b, bd)
	b.ReportMetric(f.fileMBps, "MB/s-ipxe-http")
	if m := fetchMBs.FindStringSubmatch(plain); m != nil {
		b.ReportMetric(atof(m[1]), "MB/s-https+sha256-nooffload")
	}
	for _, line := range strings.Split(text, "\n") {
		if m := dhcpTook.FindStringSubmatch(strings.TrimRight(line, "\r")); m != nil {
			b.ReportMetric(atof(m[1]), "s-dhcp")
		}
		if m := tlsTook.FindStringSubmatch(line); m != nil {
			b.ReportMetric(atof(m[1]), "s-tls-handshake")
		}
		if m := fetchMBs.FindStringSubmatch(line); m != nil {
			b.ReportMetric(atof(m[1]), "MB/s-https+sha256")
		}
		if m := cpuIdle.FindStringSubmatch(line); m != nil {
			b.ReportMetric(atof(m[1]), "idle%-cpu")
		}
		if m := actorMBs.FindStringSubmatch(line); m != nil {
			b.ReportMetric(atof(m[2]), "MB/s-"+m[1])
			b.ReportMetric(atof(m[3]), "busy%-"+m[1])
		}
	}
}

func atof(s string) float64 {
	v, _ := strconv.ParseFloat(s, 64)
	return v
}
