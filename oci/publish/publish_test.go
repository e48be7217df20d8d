package publish

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ociboot/ociboot/oci/ocitest"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/ociboot/ociboot/oci"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

var peMachine = map[string]uint16{"amd64": 0x8664, "arm64": 0xaa64, "riscv64": 0x5064, "loong64": 0x6264}

// testKernel is a PE image for arch, size bytes, distinct per seed.
func testKernel(arch string, size int, seed byte) []byte {
	b := make([]byte, size)
	for i := range b {
		b[i] = byte(i*7) ^ seed
	}
	copy(b, "MZ")
	binary.LittleEndian.PutUint32(b[0x3c:], 0x80)
	copy(b[0x80:], "PE\x00\x00")
	binary.LittleEndian.PutUint16(b[0x84:], peMachine[arch])
	binary.LittleEndian.PutUint16(b[0x86:], 0)
	return b
}

// bed is go-containerregistry's in-memory registry behind an anonymous
// token server (pull and push scopes) with blob GETs redirected to a
// separate storage origin, which must never see Authorization.
type bed struct {
	host       string
	raw        string // the registry without auth or redirects
	tokens     atomic.Int32
	storageGET atomic.Int32
	mu         sync.Mutex
	scopes     []string
}

func newBed(t *testing.T, referrers bool) *bed {
	b := &bed{}
	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)), registry.WithReferrersSupport(referrers))
	storage := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a := r.Header.Get("Authorization"); a != "" {
			t.Errorf("blob storage received Authorization %q", a)
		}
		b.storageGET.Add(1)
		// Storage serves the registry's bytes for the path it was given.
		r2 := r.Clone(r.Context())
		r2.URL.Path = strings.TrimPrefix(r.URL.Path, "/storage")
		r2.Header.Del("Authorization")
		reg.ServeHTTP(w, r2)
	}))
	t.Cleanup(storage.Close)
	raw := httptest.NewServer(reg)
	t.Cleanup(raw.Close)
	b.raw = raw.Listener.Addr().String()
	auth := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.mu.Lock()
		b.scopes = append(b.scopes, r.URL.Query()["scope"]...)
		b.mu.Unlock()
		n := b.tokens.Add(1)
		json.NewEncoder(w).Encode(map[string]any{"token": fmt.Sprintf("tok-%d", n), "expires_in": 300})
	}))
	t.Cleanup(auth.Close)
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.Header.Get("Authorization"), "Bearer tok-") {
			repo := strings.TrimPrefix(r.URL.Path, "/v2/")
			for _, sep := range []string{"/manifests/", "/blobs/", "/referrers/"} {
				if i := strings.LastIndex(repo, sep); i >= 0 {
					repo = repo[:i]
				}
			}
			actions := "pull"
			if r.Method != http.MethodGet && r.Method != http.MethodHead {
				actions = "pull,push"
			}
			w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm="%s/token",service="bed",scope="repository:%s:%s"`, auth.URL, repo, actions))
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/sha256:") {
			http.Redirect(w, r, storage.URL+"/storage"+r.URL.Path+"?X-Signature=abc", http.StatusTemporaryRedirect)
			return
		}
		reg.ServeHTTP(w, r)
	}))
	t.Cleanup(front.Close)
	b.host = front.Listener.Addr().String()
	return b
}

func client(host string, opts ...oci.Option) *oci.Client {
	return oci.NewClient(&http.Client{}, append([]oci.Option{oci.WithPlainHTTP(host), oci.WithRetry(2, time.Millisecond)}, opts...)...)
}

func mustRef(t *testing.T, s string) oci.Reference {
	t.Helper()
	r, err := oci.ParseReference(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func fetch(t *testing.T, c *oci.Client, ref oci.Reference, cfg oci.FetcherConfig) (*oci.BootSet, *oci.HeapAllocator, error) {
	t.Helper()
	a := &oci.HeapAllocator{}
	bs, err := oci.NewFetcher(c, a, cfg).Fetch(context.Background(), ref)
	return bs, a, err
}

func twoPlatforms() []BootImage {
	return []BootImage{
		{Platform: &ocispec.Platform{OS: "linux", Architecture: "amd64"}, Kernel: testKernel("amd64", 3<<20, 1),
			Initrds: [][]byte{[]byte("initrd-a;"), []byte("initrd-b")}, Cmdline: "console=ttyS0", Title: "Test", Version: "7"},
		{Platform: &ocispec.Platform{OS: "linux", Architecture: "arm64"}, Kernel: testKernel("arm64", 1<<20, 2),
			Cmdline: "console=ttyAMA0"},
	}
}

func TestPushPullInMemory(t *testing.T) {
	b := newBed(t, true)
	ctx := context.Background()
	c := client(b.host)
	ref := mustRef(t, b.host+"/boot/os:v7")
	imgs := twoPlatforms()
	top, err := PushBoot(ctx, c, ref, imgs)
	if err != nil {
		t.Fatal(err)
	}
	if top.MediaType != ocispec.MediaTypeImageIndex {
		t.Errorf("pushed a %s", top.MediaType)
	}
	for i, arch := range []string{"amd64", "arm64"} {
		bs, a, err := fetch(t, client(b.host), ref, oci.FetcherConfig{Platform: ocispec.Platform{Architecture: arch}})
		if err != nil {
			t.Fatalf("%s: %v", arch, err)
		}
		wantInitrd := string(bytes.Join(imgs[i].Initrds, nil))
		gotInitrd := ""
		if bs.Initrd != nil {
			gotInitrd = string(bs.Initrd.Bytes())
		}
		if !bytes.Equal(bs.Kernel.Bytes(), imgs[i].Kernel) || gotInitrd != wantInitrd || bs.Cmdline != imgs[i].Cmdline ||
			bs.Format != oci.FormatOCIBoot || bs.Digest != top.Digest || bs.Arch != arch {
			t.Errorf("%s: set %+v", arch, bs)
		}
		bs.Free()
		if a.Live() != 0 {
			t.Errorf("%d live", a.Live())
		}
	}
	if b.storageGET.Load() == 0 || b.tokens.Load() == 0 {
		t.Errorf("storage GETs %d, tokens %d: the bed was bypassed", b.storageGET.Load(), b.tokens.Load())
	}
	b.mu.Lock()
	if !strings.Contains(strings.Join(b.scopes, " "), ":pull,push") {
		t.Errorf("no push scope asked for: %q", b.scopes)
	}
	b.mu.Unlock()

	// Interop: go-containerregistry reads what we pushed (directly: it
	// refuses token realms on private addresses).
	r, err := name.ParseReference(b.raw+"/boot/os:v7", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := remote.Index(r, remote.WithAuth(authn.Anonymous))
	if err != nil {
		t.Fatal(err)
	}
	im, _ := idx.IndexManifest()
	if len(im.Manifests) != 2 || im.Manifests[1].Platform.Architecture != "arm64" {
		t.Fatalf("ggcr index %+v", im)
	}
	img, err := idx.Image(im.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	m, _ := img.Manifest()
	if m.Config.MediaType != ocispec.MediaTypeEmptyJSON || len(m.Layers) != 4 || string(m.Layers[0].MediaType) != oci.MediaTypeKernel {
		t.Errorf("ggcr manifest %+v", m)
	}
	l, _ := img.LayerByDigest(m.Layers[0].Digest)
	rc, _ := l.Compressed()
	got, _ := io.ReadAll(rc)
	if !bytes.Equal(got, imgs[0].Kernel) {
		t.Error("ggcr read a different kernel")
	}
}

func TestPushSingleManifestAndUKI(t *testing.T) {
	b := newBed(t, false)
	ctx := context.Background()
	c := client(b.host)
	ref := mustRef(t, b.host+"/boot/one:v1")
	k := testKernel(hostArch(), 10_000, 3)
	d, err := PushBoot(ctx, c, ref, []BootImage{{Kernel: k, Cmdline: "quiet"}})
	if err != nil || d.MediaType != ocispec.MediaTypeImageManifest {
		t.Fatalf("%v %+v", err, d)
	}
	bs, _, err := fetch(t, c, ref, oci.FetcherConfig{})
	if err != nil || !bytes.Equal(bs.Kernel.Bytes(), k) || bs.Initrd != nil || bs.Cmdline != "quiet" {
		t.Fatalf("%v %+v", err, bs)
	}
	bs.Free()
	for _, bad := range [][]BootImage{
		nil,
		{{Kernel: k, UKI: k}},
		{{UKI: k, Initrds: [][]byte{{1}}}},
		{{Kernel: k}, {Kernel: k}},
		{{Platform: &ocispec.Platform{OS: "linux", Architecture: "amd64"}, Kernel: k}, {Platform: &ocispec.Platform{OS: "linux", Architecture: "amd64"}, Kernel: k}},
	} {
		if _, err := PushBoot(ctx, c, ref, bad); err == nil {
			t.Errorf("pushed %d bad images", len(bad))
		}
	}
}

func hostArch() string { return runtime.GOARCH }

func genKey(t *testing.T) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestSignaturePolicies(t *testing.T) {
	for _, referrers := range []bool{true, false} {
		t.Run(fmt.Sprintf("referrers API %v", referrers), func(t *testing.T) {
			b := newBed(t, referrers)
			ctx := context.Background()
			c := client(b.host)
			key, other := genKey(t), genKey(t)
			signed := mustRef(t, b.host+"/boot/signed:v1")
			bundled := mustRef(t, b.host+"/boot/bundled:v1")
			unsigned := mustRef(t, b.host+"/boot/unsigned:v1")
			wrong := mustRef(t, b.host+"/boot/wrong:v1")
			for _, r := range []oci.Reference{signed, bundled, unsigned, wrong} {
				if _, err := PushBoot(ctx, c, r, twoPlatforms()); err != nil {
					t.Fatal(err)
				}
			}
			if _, _, err := Sign(ctx, c, signed, key); err != nil {
				t.Fatal(err)
			}
			if _, err := AttachBundle(ctx, c, bundled, key); err != nil {
				t.Fatal(err)
			}
			if _, _, err := Sign(ctx, c, wrong, other); err != nil {
				t.Fatal(err)
			}
			if _, err := AttachBundle(ctx, c, wrong, other); err != nil {
				t.Fatal(err)
			}
			cfg := oci.FetcherConfig{Platform: ocispec.Platform{Architecture: "amd64"}, Policy: oci.PolicyRequire, PublicKey: &key.PublicKey}
			for r, scheme := range map[oci.Reference]string{signed: "cosign .sig tag", bundled: "sigstore bundle"} {
				bs, _, err := fetch(t, c, r, cfg)
				if err != nil {
					t.Fatalf("%s: %v", r, err)
				}
				if !bs.Signature.Verified || bs.Signature.Scheme != scheme {
					t.Errorf("%s: %v", r, bs.Signature)
				}
				bs.Free()
			}
			for r, want := range map[oci.Reference]error{unsigned: oci.ErrUnsigned, wrong: oci.ErrBadSignature} {
				bs, a, err := fetch(t, c, r, cfg)
				if !errors.Is(err, want) || bs != nil || a.Allocs() != 0 {
					t.Errorf("%s under require: %v (%d allocations)", r, err, a.Allocs())
				}
				if err != nil && !strings.Contains(err.Error(), r.Name()) {
					t.Errorf("error does not name %s: %v", r.Name(), err)
				}
			}
			// warn boots the unsigned artifact and says so.
			var warned string
			wcfg := cfg
			wcfg.Policy = oci.PolicyWarn
			wcfg.Logf = func(f string, a ...any) { warned = fmt.Sprintf(f, a...) }
			bs, _, err := fetch(t, c, wrong, wcfg)
			if err != nil || bs.Signature.Verified || !strings.Contains(warned, "WARNING") {
				t.Errorf("warn: %v, %v, %q", err, bs.Signature, warned)
			}
			bs.Free()
			// off does not look.
			ocfg := cfg
			ocfg.Policy = oci.PolicyOff
			bs, _, err = fetch(t, c, unsigned, ocfg)
			if err != nil || bs.Signature.Checked {
				t.Errorf("off: %v %v", err, bs.Signature)
			}
			bs.Free()
		})
	}
}

func TestSignedPayloadForAnotherDigest(t *testing.T) {
	b := newBed(t, false)
	ctx := context.Background()
	c := client(b.host)
	key := genKey(t)
	a := mustRef(t, b.host+"/boot/a:v1")
	bref := mustRef(t, b.host+"/boot/a:v2")
	PushBoot(ctx, c, a, twoPlatforms()[:1])
	imgs := twoPlatforms()[:1]
	imgs[0].Cmdline = "other"
	PushBoot(ctx, c, bref, imgs)
	da, _, err := Sign(ctx, c, a, key)
	if err != nil {
		t.Fatal(err)
	}
	// Copy a's valid signature manifest to b's .sig tag: it verifies with
	// the key but names another digest.
	db, _, _ := c.FetchManifest(ctx, bref)
	_, body, err := c.FetchManifest(ctx, oci.Reference{Registry: a.Registry, Repository: a.Repository, Tag: oci.SigTag(da) + ".sig"})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := PushManifest(ctx, c, oci.Reference{Registry: a.Registry, Repository: a.Repository, Tag: oci.SigTag(db.Digest) + ".sig"}, ocispec.MediaTypeImageManifest, body); err != nil {
		t.Fatal(err)
	}
	st := c.VerifySignature(ctx, bref, db.Digest, &key.PublicKey)
	if st.Verified || !errors.Is(st.Err, oci.ErrBadSignature) || !strings.Contains(st.Err.Error(), "not this artifact") {
		t.Errorf("replayed signature: %v", st)
	}
}

func TestDockerConfigCredentials(t *testing.T) {
	// Basic auth in front, credentials from a docker config file.
	host := ocitest.BasicAuthRegistry(t, "carol", "pa:ss")
	dir := t.TempDir()
	t.Setenv("DOCKER_CONFIG", dir)
	cfgJSON := fmt.Sprintf(`{"auths":{"%s":{"auth":"%s"},"https://index.docker.io/v1/":{"username":"hub","password":"pw"}}}`,
		host, base64.StdEncoding.EncodeToString([]byte("carol:pa:ss")))
	os.WriteFile(filepath.Join(dir, "config.json"), []byte(cfgJSON), 0o600)
	cfg, err := LoadDockerConfig("")
	if err != nil {
		t.Fatal(err)
	}
	opt, err := cfg.ClientOption(host)
	if err != nil || opt == nil {
		t.Fatalf("%v %v", opt, err)
	}
	if o, _ := cfg.ClientOption("docker.io"); o == nil {
		t.Error("no Docker Hub credentials from index.docker.io/v1/")
	}
	if o, _ := cfg.ClientOption("other.example"); o != nil {
		t.Error("credentials for an unconfigured registry")
	}
	ctx := context.Background()
	ref := mustRef(t, host+"/priv/os:v1")
	if _, err := PushBoot(ctx, client(host), ref, twoPlatforms()); !errors.Is(err, oci.ErrUnauthorized) {
		t.Errorf("push without credentials: %v", err)
	}
	if _, err := PushBoot(ctx, client(host, opt), ref, twoPlatforms()); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "config.json"), []byte(`{"auths":{"x":{"auth":"!!"}}}`), 0o600)
	cfg, _ = LoadDockerConfig("")
	if _, err := cfg.ClientOption("x"); err == nil {
		t.Error("bad base64 accepted")
	}
	if cfg, err := LoadDockerConfig(filepath.Join(dir, "missing.json")); err != nil || len(cfg.Auths) != 0 {
		t.Errorf("missing file: %v", err)
	}
}

func TestParseKeys(t *testing.T) {
	k := genKey(t)
	der, _ := x509.MarshalECPrivateKey(k)
	p8, _ := x509.MarshalPKCS8PrivateKey(k)
	for _, pemText := range [][]byte{
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: p8}),
	} {
		got, err := ParsePrivateKey(pemText)
		if err != nil || !got.Equal(k) {
			t.Errorf("ParsePrivateKey: %v", err)
		}
	}
	if _, err := ParsePrivateKey(pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED SIGSTORE PRIVATE KEY", Bytes: []byte{1}})); err == nil {
		t.Error("accepted an encrypted cosign key")
	}
	pub, _ := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if got, err := oci.ParsePublicKey(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub})); err != nil || !got.Equal(&k.PublicKey) {
		t.Errorf("ParsePublicKey: %v", err)
	}
	k384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	pub384, _ := x509.MarshalPKIXPublicKey(&k384.PublicKey)
	if _, err := oci.ParsePublicKey(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub384})); err == nil {
		t.Error("accepted a P-384 key")
	}
}
