package tests

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/binary"
	"encoding/pem"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"

	"github.com/ociboot/ociboot/oci"
	"github.com/ociboot/ociboot/oci/publish"
	"github.com/ociboot/ociboot/plan"
	"github.com/ociboot/ociboot/tests/bed"
	"github.com/ociboot/ociboot/tests/payload"
)

// The lines bootd prints that these tests follow.
const (
	lineStarting = "bootd: starting "
	lineStub     = "EFI stub:"
)

// restamped returns a copy of the PE image pe with another COFF time stamp:
// a kernel that loads the same but is a blob of its own in the registry.
func restamped(t testing.TB, pe []byte) []byte {
	t.Helper()
	if len(pe) < 0x40 {
		t.Fatal("kernel: not a PE image")
	}
	off := int(binary.LittleEndian.Uint32(pe[0x3c:]))
	if off+12 > len(pe) || string(pe[off:off+4]) != "PE\x00\x00" {
		t.Fatal("kernel: no PE signature")
	}
	out := append([]byte(nil), pe...)
	stamp := out[off+8 : off+12] // after the signature, Machine and NumberOfSections
	binary.LittleEndian.PutUint32(stamp, binary.LittleEndian.Uint32(stamp)^0x5a5a5a5a)
	return out
}

// corruptBlob flips one byte in the middle of blob d in the bed registry's
// filesystem storage, behind the registry's back: it keeps serving the
// blob under its digest, with the wrong bytes.
func corruptBlob(t testing.TB, b *bed.Bed, d digest.Digest) {
	t.Helper()
	want := filepath.Join("blobs", d.Algorithm().String(), d.Encoded()[:2], d.Encoded(), "data")
	var found string
	err := filepath.WalkDir(b.Dir, func(p string, e fs.DirEntry, err error) error {
		if err == nil && !e.IsDir() && strings.HasSuffix(p, string(filepath.Separator)+want) {
			found = p
			return fs.SkipAll
		}
		return err
	})
	if err != nil || found == "" {
		t.Fatalf("blob %s not in the registry's storage under %s (%v)", d, b.Dir, err)
	}
	f, err := os.OpenFile(found, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	at := st.Size() / 2
	var c [1]byte
	if _, err := f.ReadAt(c[:], at); err != nil {
		t.Fatal(err)
	}
	c[0] ^= 0x01
	if _, err := f.WriteAt(c[:], at); err != nil {
		t.Fatal(err)
	}
	t.Logf("flipped byte %d of %s (%s)", at, d, found)
}

// checkNoKernelBefore fails the test if anything was started, or a kernel
// ran, before the first line containing fallback.
func checkNoKernelBefore(t *testing.T, con *stampedConsole, fallback string) {
	t.Helper()
	before := con.before(fallback)
	for _, bad := range []string{lineStarting, lineStub, "Linux version"} {
		if strings.Contains(before, bad) {
			t.Errorf("%q on the console before %q: something was started", bad, fallback)
		}
	}
}

func TestBootCorruptKernel(t *testing.T) {
	// Linux kernels only: see noLinux.
	for _, arch := range linuxArches() {
		t.Run(arch, func(t *testing.T) {
			b := bed.New(t, bed.Options{Registry: true})
			kernel, initrd := payloadFiles(t, arch)
			bad := restamped(t, kernel)
			corrupt := pushBoot(t, b, arch, "ociboot/corrupt:12", bad, initrd, "console=ttyS0")
			good := pushBoot(t, b, arch, "ociboot/debian:12", kernel, initrd, "console=ttyS0")
			d := digest.FromBytes(bad)
			corruptBlob(t, b, d)
			ca := []string{string(b.Certs.CAPEM)}
			target := plan.Target{Name: "corrupt", Ref: corrupt, Cmdline: "console=ttyS0 ociboot.test=corrupt", CA: ca}

			t.Run("fallback", func(t *testing.T) {
				efi := buildBootd(t, arch, &plan.Plan{Timeout: plan.Duration(4 * time.Minute), Targets: []plan.Target{
					target, {Name: "good", Ref: good, Cmdline: "console=ttyS0 ociboot.test=fallback", CA: ca},
				}})
				run := bootInBed(t, b, arch, efi, payload.Marker)
				con := run.console
				if run.res.FirstOutput == 0 {
					t.Fatalf("the fallback target did not reach userspace (%s)", run.res.Reason)
				}
				if cl := con.line(payload.CmdlinePrefix); !strings.Contains(cl, "ociboot.test=fallback") {
					t.Errorf("kernel command line %q: want the fallback target's", cl)
				}
				const next = `next:         trying the next target, "good"`
				if err := con.inOrder(`bootd: target "corrupt"`, "what failed:  fetching "+corrupt, "digest mismatch", "likely cause: the registry served bytes that do not match", next,
					lineStarting+"good", lineStub, payload.Marker); err != nil {
					t.Error(err)
				}
				if l := con.line("digest mismatch"); !strings.Contains(l, d.String()) {
					t.Errorf("the error %q does not name the blob %s", l, d)
				}
				checkNoKernelBefore(t, con, next)
			})

			t.Run("firmware", func(t *testing.T) {
				efi := buildBootd(t, arch, &plan.Plan{Timeout: plan.Duration(2 * time.Minute), Targets: []plan.Target{target}})
				run := bootInBed(t, b, arch, efi, payload.Marker)
				con := run.console
				if !run.res.Exited || run.res.Status != 1 {
					t.Errorf("bootd did not return to the firmware with status 1: %s", run.res.Reason)
				}
				const next = "next:         returning to the firmware"
				if err := con.inOrder("digest mismatch", next, "boot timeline"); err != nil {
					t.Error(err)
				}
				checkNoKernelBefore(t, con, "efirt: exit_group(")
			})
		})
	}
}

func TestBootUnsignedRequired(t *testing.T) {
	// Linux kernels only: see noLinux.
	for _, arch := range linuxArches() {
		t.Run(arch, func(t *testing.T) {
			b := bed.New(t, bed.Options{Registry: true})
			kernel, initrd := payloadFiles(t, arch)
			key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
			if err != nil {
				t.Fatal(err)
			}
			pub := string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
			// The same files in two repositories; only the second is signed.
			unsigned := pushBoot(t, b, arch, "ociboot/unsigned:12", kernel, initrd, "console=ttyS0")
			signed := pushBoot(t, b, arch, "ociboot/signed:12", kernel, initrd, "console=ttyS0")
			ref, err := oci.ParseReference(signed)
			if err != nil {
				t.Fatal(err)
			}
			d, sig, err := publish.Sign(context.Background(), oci.NewClient(b.HTTPClient()), ref, key)
			if err != nil {
				t.Fatalf("signing %s: %v", signed, err)
			}
			t.Logf("signed %s@%s as %s", signed, d, sig)

			ca := []string{string(b.Certs.CAPEM)}
			efi := buildBootd(t, arch, &plan.Plan{Timeout: plan.Duration(4 * time.Minute), Targets: []plan.Target{
				{Name: "unsigned", Ref: unsigned, Policy: "require", PublicKey: pub, Cmdline: "console=ttyS0 ociboot.test=unsigned", CA: ca},
				{Name: "signed", Ref: signed, Policy: "require", PublicKey: pub, Cmdline: "console=ttyS0 ociboot.test=signed", CA: ca},
			}})
			run := bootInBed(t, b, arch, efi, payload.Marker)
			con := run.console
			if run.res.FirstOutput == 0 {
				t.Fatalf("the signed target did not reach userspace (%s)", run.res.Reason)
			}
			if cl := con.line(payload.CmdlinePrefix); !strings.Contains(cl, "ociboot.test=signed") {
				t.Errorf("kernel command line %q: want the signed target's", cl)
			}
			const next = `next:         trying the next target, "signed"`
			if err := con.inOrder(`bootd: target "unsigned"`, "what failed:  fetching "+unsigned, "no signature", "likely cause: the artifact's signature", next,
				"signature verified", lineStarting+"signed", lineStub, payload.Marker); err != nil {
				t.Error(err)
			}
			if l := con.line("no signature"); !strings.Contains(l, "verify signature") || !strings.Contains(l, d.String()) {
				t.Errorf("the error %q does not say the signature check of %s failed", l, d)
			}
			// The policy is applied before any blob is fetched: nothing of
			// the unsigned artifact reached memory.
			checkNoKernelBefore(t, con, next)
			if before := con.before(next); strings.Contains(before, " verified: ") || strings.Contains(before, "kernel: ") {
				t.Errorf("blobs of the unsigned artifact were fetched before the policy refused it")
			}
		})
	}
}
