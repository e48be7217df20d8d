package publish

import (
	"bytes"
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/ociboot/ociboot/oci"
	testbed "github.com/ociboot/ociboot/tests/bed"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// startDistribution runs Debian's docker-registry over TLS on a loopback
// port with a fresh test CA and returns host:port and an http.Client
// trusting that CA.
func startDistribution(t *testing.T) (string, *http.Client) {
	certs, err := testbed.NewCerts([]string{"localhost"}, []net.IP{net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	reg, err := testbed.StartLoopbackRegistry(t.Context(), t.TempDir(), certs, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(reg.Close)
	return reg.Addr, &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: certs.Pool()}}}
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
