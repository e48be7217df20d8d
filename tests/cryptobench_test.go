package tests

import (
	"context"
	"regexp"
	"testing"
	"time"

	"github.com/ociboot/ociboot/efirt/qemu"
)

var cryptobenchLine = regexp.MustCompile(`cryptobench: (\S+) ([0-9.]+) MB/s`)

// BenchmarkCrypto prints, inside UEFI under TCG, the MB/s of the work a
// verified HTTPS download does on every byte (SHA-256, AES-128-GCM
// decryption, a copy), per arch and, on amd64, under the machine's QEMU
// and trixie's QEMU 10. These rates bound BenchmarkNetHTTPS.
func BenchmarkCrypto(b *testing.B) {
	for _, r := range emulatorRuns() {
		b.Run(r.name, func(b *testing.B) {
			cfg := r.cfg
			efi := buildEFI(b, cfg.Arch, "./tests/cryptobench")
			cfg.Timeout = 5 * time.Minute
			for range b.N {
				res, err := qemu.Run(context.Background(), cfg, efi, nil)
				if err != nil {
					b.Fatal(err)
				}
				if !res.Exited || res.Status != 0 {
					b.Fatalf("cryptobench: %s\n%s", res.Reason, res.Console)
				}
				ms := cryptobenchLine.FindAllStringSubmatch(res.Console, -1)
				if len(ms) != 3 {
					b.Fatalf("cryptobench printed %d rates, want 3:\n%s", len(ms), res.Console)
				}
				for _, m := range ms {
					b.ReportMetric(atof(m[2]), "MB/s-"+m[1])
				}
			}
		})
	}
}
