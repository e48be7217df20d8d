package publish

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/ociboot/ociboot/efirt/qemu"
	"github.com/ociboot/ociboot/oci"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// installRegistry makes sure Debian's docker-registry (distribution 2.8)
// is installed, through efirt/qemu's installer and its lock.
func installRegistry(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("docker-registry"); err == nil {
		return p
	}
	if err := qemu.AptInstall(nil, "docker-registry"); err != nil {
		t.Fatal(err)
	}
	p, err := exec.LookPath("docker-registry")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// testCA makes a CA and a server certificate for 127.0.0.1, written to dir.
func testCA(t *testing.T, dir string) *x509.CertPool {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ociboot test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "registry"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(key)
	os.WriteFile(filepath.Join(dir, "cert.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(filepath.Join(dir, "key.pem"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600)
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return pool
}

// startDistribution runs docker-registry over TLS on a loopback port and
// returns host:port and an http.Client trusting the test CA.
func startDistribution(t *testing.T) (string, *http.Client) {
	bin := installRegistry(t)
	dir := t.TempDir()
	pool := testCA(t, dir)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	cfg := fmt.Sprintf(`version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: %s/data
http:
  addr: %s
  secret: ociboot-test
  tls:
    certificate: %s/cert.pem
    key: %s/key.pem
`, dir, addr, dir, dir)
	os.WriteFile(filepath.Join(dir, "config.yml"), []byte(cfg), 0o600)
	var logs bytes.Buffer
	cmd := exec.Command(bin, "serve", filepath.Join(dir, "config.yml"))
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill() // by PID: only the registry this test started
		cmd.Wait()
	})
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	for deadline := time.Now().Add(20 * time.Second); ; {
		resp, err := hc.Get("https://" + addr + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("docker-registry did not come up on %s: %v\n%s", addr, err, logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return addr, hc
}

func TestDistributionRegistry(t *testing.T) {
	host, hc := startDistribution(t)
	ctx := context.Background()
	c := oci.NewClient(hc, oci.WithRetry(2, time.Millisecond)) // https
	ref := mustRef(t, host+"/ociboot/test:v1")
	imgs := twoPlatforms()
	top, err := PushBoot(ctx, c, ref, imgs)
	if err != nil {
		t.Fatal(err)
	}
	key := genKey(t)
	if _, _, err := Sign(ctx, c, ref, key); err != nil {
		t.Fatal(err)
	}
	bundled := mustRef(t, host+"/ociboot/test:bundled")
	imgs2 := twoPlatforms()
	imgs2[0].Cmdline = "bundled"
	if _, err := PushBoot(ctx, c, bundled, imgs2); err != nil {
		t.Fatal(err)
	}
	if _, err := AttachBundle(ctx, c, bundled, key); err != nil {
		t.Fatal(err)
	}
	for r, want := range map[oci.Reference]string{ref: "cosign .sig tag", bundled: "sigstore bundle"} {
		bs, a, err := fetch(t, oci.NewClient(hc), r, oci.FetcherConfig{Platform: ocispec.Platform{Architecture: "amd64"}, Policy: oci.PolicyRequire, PublicKey: &key.PublicKey})
		if err != nil {
			t.Fatalf("%s: %v", r, err)
		}
		if !bytes.Equal(bs.Kernel.Bytes(), imgs[0].Kernel) || string(bs.Initrd.Bytes()) != "initrd-a;initrd-b" || bs.Signature.Scheme != want {
			t.Errorf("%s: set %+v", r, bs)
		}
		bs.Free()
		if a.Live() != 0 {
			t.Error("pages not freed")
		}
	}
	// A key that did not sign: refused under require.
	other := genKey(t)
	bs, a, err := fetch(t, oci.NewClient(hc), ref, oci.FetcherConfig{Policy: oci.PolicyRequire, PublicKey: &other.PublicKey})
	if err == nil || bs != nil || a.Allocs() != 0 {
		t.Errorf("wrong key accepted: %v", err)
	}

	// Interop: go-containerregistry reads our index and the signature.
	r, _ := name.ParseReference(ref.String())
	desc, err := remote.Get(r, remote.WithTransport(hc.Transport))
	if err != nil {
		t.Fatal(err)
	}
	if desc.Digest.String() != top.Digest.String() {
		t.Errorf("ggcr sees %s, we pushed %s", desc.Digest, top.Digest)
	}
	idx, err := desc.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	im, _ := idx.IndexManifest()
	if len(im.Manifests) != 2 || string(im.Manifests[0].ArtifactType) != oci.ArtifactType {
		t.Errorf("ggcr index %+v", im)
	}
	sig, _ := name.ParseReference(host + "/ociboot/test:" + oci.SigTag(top.Digest) + ".sig")
	simg, err := remote.Image(sig, remote.WithTransport(hc.Transport))
	if err != nil {
		t.Fatal(err)
	}
	sm, _ := simg.Manifest()
	if len(sm.Layers) != 1 || sm.Layers[0].Annotations[oci.AnnotationSignature] == "" {
		t.Errorf("ggcr signature manifest %+v", sm)
	}
}
