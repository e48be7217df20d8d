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
// returns its console.
func runNetcheck(t testing.TB, b *bed.Bed, arch string, p *plan.Plan, args ...string) (string, qemu.Result) {
	t.Helper()
	efi := buildBootd(t, arch, p)
	run := runInBed(t, b, qemu.Config{Arch: arch, Timeout: 5 * time.Minute, FirstLineMarker: "ociboot bootd"}, efi, args...)
	return run.console.text.String(), run.res
}

const netFileSize = 64 << 20

// TestNetHTTPS fetches a 64 MiB file over HTTPS from Linux's TCP on the far
// end of the tap, through our NIC driver, stack, DHCP lease and DNS, and
// checks its SHA-256.
func TestNetHTTPS(t *testing.T) {
	for _, arch := range arches {
		t.Run(arch, func(t *testing.T) {
			b := bed.New(t, bed.Options{FileSize: netFileSize})
			text, res := runNetcheck(t, b, arch, netcheckPlan(string(b.Certs.CAPEM)),
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
		})
	}
}

// TestNetFailures runs netcheck where it must fail, and checks that the
// console says why in words an operator can act on.
func TestNetFailures(t *testing.T) {
	cases := []struct {
		name string
		opts bed.Options
		plan func(b *bed.Bed) *plan.Plan
		url  func(b *bed.Bed) string
		want []string
	}{{
		// Only an unrelated CA is trusted.
		name: "unknown-ca",
		plan: func(b *bed.Bed) *plan.Plan { return netcheckPlan(string(b.Certs.OtherCAPEM)) },
		url:  func(b *bed.Bed) string { return b.FileHTTPSURL(bed.RandomFile) },
		want: []string{"certificate signed by unknown authority", "not trusted"},
	}, {
		// The server's certificate names another host.
		name: "wrong-name",
		url: func(b *bed.Bed) string {
			return fmt.Sprintf("https://%s:%d/%s", b.ServerName(), bed.WrongNamePort, bed.RandomFile)
		},
		want: []string{"certificate is valid for", "registry.test"},
	}, {
		// DNS but no DHCP server: the DHCP timeout must end it, not a hang.
		name: "no-dhcp",
		opts: bed.Options{NoDHCP: true},
		plan: func(b *bed.Bed) *plan.Plan {
			p := netcheckPlan(string(b.Certs.CAPEM))
			p.Timeout = plan.Duration(12 * time.Second)
			return p
		},
		url:  func(b *bed.Bed) string { return b.FileHTTPSURL(bed.RandomFile) },
		want: []string{"dhcp: no answer from any DHCP server after"},
	}, {
		// An on-link address outside the DHCP range that nobody owns: the
		// connect fails when ARP gives up, not when the dial times out.
		name: "dead-host",
		url:  func(b *bed.Bed) string { return "https://10.77.0.9/" + bed.RandomFile },
		want: []string{"no ARP reply from 10.77.0.9 (host unreachable)"},
	}}
	for _, arch := range arches {
		t.Run(arch, func(t *testing.T) {
			for _, c := range cases {
				t.Run(c.name, func(t *testing.T) {
					b := bed.New(t, c.opts)
					p := netcheckPlan(string(b.Certs.CAPEM))
					if c.plan != nil {
						p = c.plan(b)
					}
					text, res := runNetcheck(t, b, arch, p, "netcheck="+c.url(b))
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
		})
	}
}

var (
	dhcpTook = regexp.MustCompile(`dhcp: lease .*, ([0-9.]+)s\s*$`)
	tlsTook  = regexp.MustCompile(`TLS handshake .* \+([0-9.]+)s`)
	fetchMBs = regexp.MustCompile(`netcheck: \d+ bytes in [0-9.]+s, ([0-9.]+) MB/s`)
	actorMBs = regexp.MustCompile(`\] (nic|frames|ip|tcp) +\d+ +\d+ +\d+ +([0-9.]+) +\d+ +(\d+)%`)
)

// BenchmarkNetHTTPS prints, for one run in the namespace bed: DHCP time,
// TLS handshake time, HTTPS + SHA-256 MB/s of a 64 MiB file from Linux's
// TCP, each network actor's MB/s and busy share, and — the reference —
// iPXE fetching the same size over plain HTTP in a bed of its own.
func BenchmarkNetHTTPS(b *testing.B) {
	for range b.N {
		bd := bed.New(b, bed.Options{FileSize: netFileSize})
		text, res := runNetcheck(b, bd, "amd64", netcheckPlan(string(bd.Certs.CAPEM)),
			"netcheck="+bd.FileHTTPSURL(bed.RandomFile), "sha256="+bd.FileSHA256)
		if res.Status != 0 {
			b.Fatalf("netcheck: %s", res.Reason)
		}
		bd.Close()
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
			if m := actorMBs.FindStringSubmatch(line); m != nil {
				b.ReportMetric(atof(m[2]), "MB/s-"+m[1])
				b.ReportMetric(atof(m[3]), "busy%-"+m[1])
			}
		}
		f := bootIPXE(b, "amd64", netFileSize, false)
		b.ReportMetric(f.fileMBps, "MB/s-ipxe-http")
	}
}

func atof(s string) float64 {
	v, _ := strconv.ParseFloat(s, 64)
	return v
}
