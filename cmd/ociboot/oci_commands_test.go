package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ociboot/ociboot/tests/bed"

	"github.com/ociboot/ociboot/oci/ocitest"

	"github.com/ociboot/ociboot/oci"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func peKernel(machine uint16, size int, seed byte) []byte {
	b := make([]byte, size)
	for i := range b {
		b[i] = byte(i) ^ seed
	}
	copy(b, "MZ")
	binary.LittleEndian.PutUint32(b[0x3c:], 0x80)
	copy(b[0x80:], "PE\x00\x00")
	binary.LittleEndian.PutUint16(b[0x84:], machine)
	binary.LittleEndian.PutUint16(b[0x86:], 0)
	return b
}

func run(t *testing.T, cmd func(context.Context, []string, io.Writer, io.Writer) int, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := cmd(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestPushInspectSign(t *testing.T) {
	// Basic auth in front, credentials from a docker config file.
	host := ocitest.BasicAuthRegistry(t, "dave", "secret")
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cfg := write("docker/config.json", []byte(fmt.Sprintf(`{"auths":{"%s":{"auth":"%s"}}}`, host, base64.StdEncoding.EncodeToString([]byte("dave:secret")))))
	t.Setenv("DOCKER_CONFIG", filepath.Dir(cfg))

	kAMD := write("vmlinuz-amd64", peKernel(0x8664, 100_000, 1))
	kARM := write("Image-arm64", peKernel(0xaa64, 90_000, 2))
	rd1 := write("rd1", []byte("one;"))
	rd2 := write("rd2", []byte("two"))
	ref := host + "/os/boot:1"

	code, out, errs := run(t, cmdPush, ref, "-plain-http", "-title", "Test OS",
		"-platform", "linux/amd64", "-kernel", kAMD, "-initrd", rd1, "-initrd", rd2, "-cmdline", "console=ttyS0",
		"--platform", "linux/arm64", "--kernel", kARM, "--cmdline", "console=ttyAMA0")
	if code != 0 || !strings.Contains(out, "@sha256:") {
		t.Fatalf("push: %d %q %q", code, out, errs)
	}

	// The loader's fetcher boots what push wrote.
	c := oci.NewClient(nil, oci.WithPlainHTTP(host), oci.WithBasicAuth(host, "dave", "secret"))
	r, _ := oci.ParseReference(ref)
	bs, err := oci.NewFetcher(c, &oci.HeapAllocator{}, oci.FetcherConfig{Platform: ocispec.Platform{Architecture: "amd64"}}).Fetch(context.Background(), r)
	if err != nil {
		t.Fatal(err)
	}
	if string(bs.Initrd.Bytes()) != "one;two" || bs.Cmdline != "console=ttyS0" || bs.Title != "Test OS" {
		t.Errorf("fetched %+v", bs)
	}
	bs.Free()

	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.MarshalECPrivateKey(key)
	keyFile := write("key.pem", pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}))
	pub, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	pubFile := write("key.pub", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}))

	code, out, errs = run(t, cmdInspect, ref, "-plain-http")
	for _, want := range []string{"linux/amd64", "linux/arm64", "format", "ociboot", "initrd 2/2", `"console=ttyS0"`, `"console=ttyAMA0"`, "no cosign .sig signature", "100000 bytes"} {
		if !strings.Contains(out, want) {
			t.Errorf("inspect output lacks %q:\n%s%s", want, out, errs)
		}
	}
	if code != 0 {
		t.Errorf("inspect: %d", code)
	}

	code, out, errs = run(t, cmdSign, ref, "-plain-http", "-key", keyFile, "-bundle")
	if code != 0 || !strings.Contains(out, ".sig") || !strings.Contains(out, "bundle") {
		t.Fatalf("sign: %d %q %q", code, out, errs)
	}
	code, out, _ = run(t, cmdInspect, "-plain-http", "-key", pubFile, "-fetch", ref)
	if code != 0 || !strings.Contains(out, "verified (cosign .sig tag)") || !strings.Contains(out, "all verified") || !strings.Contains(out, "arm64 kernel 90000 bytes") {
		t.Errorf("inspect after signing: %d\n%s", code, out)
	}
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	opub, _ := x509.MarshalPKIXPublicKey(&other.PublicKey)
	otherFile := write("other.pub", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: opub}))
	_, out, _ = run(t, cmdInspect, "-plain-http", "-key", otherFile, ref)
	if !strings.Contains(out, "NOT verified: bad signature") {
		t.Errorf("inspect with the wrong key:\n%s", out)
	}

	// Mistakes are caught before anything is pushed.
	for _, args := range [][]string{
		{ref, "-plain-http"},
		{ref, "-plain-http", "-platform", "linux/arm64", "-kernel", kAMD},
		{ref, "-plain-http", "-platform", "linux", "-kernel", kAMD},
		{ref, "-plain-http", "-kernel", kAMD, "-kernel", kARM},
		{ref, "-plain-http", "-kernel", filepath.Join(dir, "missing")},
		{"Bad Ref", "-kernel", kAMD},
	} {
		if code, _, _ := run(t, cmdPush, args...); code == 0 {
			t.Errorf("push %q succeeded", args)
		}
	}
	if code, _, _ := run(t, cmdSign, ref, "-plain-http"); code != 2 {
		t.Error("sign without -key")
	}
	if code, _, _ := run(t, cmdInspect, host+"/os/none:1", "-plain-http"); code != 1 {
		t.Error("inspect of a missing tag")
	}
	// Without credentials the registry refuses.
	t.Setenv("DOCKER_CONFIG", t.TempDir())
	if code, _, errs := run(t, cmdPush, ref, "-plain-http", "-kernel", kAMD); code != 1 || !strings.Contains(errs, "unauthorized") {
		t.Errorf("push without credentials: %d %q", code, errs)
	}
}

// TestPushToDistribution pushes with `ociboot push` to Debian's
// docker-registry over TLS (trusting the test CA with -ca) and reads the
// artifact back with the loader's fetcher.
func TestPushToDistribution(t *testing.T) {
	certs, err := bed.NewCerts([]string{"localhost"}, []net.IP{net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	reg, err := bed.StartLoopbackRegistry(t.Context(), t.TempDir(), certs, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(reg.Close)
	dir := t.TempDir()
	caFile := filepath.Join(dir, "ca.pem")
	kernel := peKernel(0x8664, 200_000, 3)
	kFile := filepath.Join(dir, "vmlinuz")
	rdFile := filepath.Join(dir, "initrd")
	for f, b := range map[string][]byte{caFile: certs.CAPEM, kFile: kernel, rdFile: []byte("initramfs")} {
		if err := os.WriteFile(f, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	ref := reg.Addr + "/os/boot:2"
	code, out, errs := run(t, cmdPush, ref, "-ca", caFile, "-platform", "linux/amd64", "-kernel", kFile, "-initrd", rdFile, "-cmdline", "quiet")
	if code != 0 || !strings.Contains(out, "@sha256:") {
		t.Fatalf("push: %d %q %q", code, out, errs)
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: certs.Pool()}}}
	r, _ := oci.ParseReference(ref)
	bs, err := oci.NewFetcher(oci.NewClient(hc), &oci.HeapAllocator{}, oci.FetcherConfig{Platform: ocispec.Platform{Architecture: "amd64"}}).Fetch(context.Background(), r)
	if err != nil {
		t.Fatal(err)
	}
	defer bs.Free()
	if !bytes.Equal(bs.Kernel.Bytes(), kernel) || string(bs.Initrd.Bytes()) != "initramfs" || bs.Cmdline != "quiet" {
		t.Errorf("fetched %+v", bs)
	}
}
