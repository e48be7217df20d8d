package oci

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// fixture is go-containerregistry's in-memory registry, reachable
// unwrapped (for pushing with ggcr) and through test middleware (for the
// client under test).
type fixture struct {
	t    testing.TB
	reg  http.Handler
	push string
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	srv := httptest.NewServer(reg)
	t.Cleanup(srv.Close)
	return &fixture{t: t, reg: reg, push: srv.Listener.Addr().String()}
}

// serve starts a server for the client under test: the registry behind mw
// (nil for none). It returns host:port.
// serveFirstBlobGET serves the registry through rec and answers the first
// blob GET with first instead.
func (f *fixture) serveFirstBlobGET(rec *recorder, first func(w http.ResponseWriter)) string {
	var done atomic.Bool
	return f.serve(func(next http.Handler) http.Handler {
		return rec.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if isBlobGET(r) && done.CompareAndSwap(false, true) {
				first(w)
				return
			}
			next.ServeHTTP(w, r)
		}))
	})
}

func (f *fixture) serve(mw func(http.Handler) http.Handler) string {
	h := f.reg
	if mw != nil {
		h = mw(h)
	}
	srv := httptest.NewServer(h)
	f.t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

func (f *fixture) pushImage(repoTag string, img v1.Image) {
	f.t.Helper()
	ref, err := name.ParseReference(f.push + "/" + repoTag)
	if err != nil {
		f.t.Fatal(err)
	}
	if err := remote.Write(ref, img); err != nil {
		f.t.Fatalf("push %s: %v", repoTag, err)
	}
}

func (f *fixture) pushIndex(repoTag string, idx v1.ImageIndex) {
	f.t.Helper()
	ref, err := name.ParseReference(f.push + "/" + repoTag)
	if err != nil {
		f.t.Fatal(err)
	}
	if err := remote.WriteIndex(ref, idx); err != nil {
		f.t.Fatalf("push %s: %v", repoTag, err)
	}
}

// pushBlob uploads data monolithically (POST with ?digest=).
func (f *fixture) pushBlob(repo string, data []byte) ocispec.Descriptor {
	f.t.Helper()
	d := digest.FromBytes(data)
	resp, err := http.Post("http://"+f.push+"/v2/"+repo+"/blobs/uploads/?digest="+d.String(), "application/octet-stream", bytes.NewReader(data))
	if err != nil {
		f.t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		f.t.Fatalf("blob upload: HTTP %d", resp.StatusCode)
	}
	return ocispec.Descriptor{MediaType: "application/octet-stream", Digest: d, Size: int64(len(data))}
}

func testClient(host string, opts ...Option) *Client {
	return NewClient(&http.Client{}, append([]Option{WithPlainHTTP(host), WithRetry(3, time.Millisecond)}, opts...)...)
}

func mustRef(t testing.TB, s string) Reference {
	t.Helper()
	r, err := ParseReference(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func randomBytes(n int, seed uint64) []byte {
	b := make([]byte, n)
	r := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8)})
	_, _ = r.Read(b)
	return b
}

func isBlobGET(r *http.Request) bool {
	return r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/sha")
}

// recorder wraps a handler and remembers each request's method, path,
// Range and Authorization.
type recorder struct {
	mu   sync.Mutex
	reqs []seen
}

type seen struct{ method, path, rng, auth string }

func (rec *recorder) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec.mu.Lock()
		rec.reqs = append(rec.reqs, seen{r.Method, r.URL.Path, r.Header.Get("Range"), r.Header.Get("Authorization")})
		rec.mu.Unlock()
		next.ServeHTTP(w, r)
	})
}

func (rec *recorder) blobGETs() []seen {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	var out []seen
	for _, s := range rec.reqs {
		if s.method == http.MethodGet && strings.Contains(s.path, "/blobs/") {
			out = append(out, s)
		}
	}
	return out
}

func (rec *recorder) count() int {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return len(rec.reqs)
}

// writeLog is an io.WriterAt that records every write.
type writeLog struct {
	Buffer
	writes int
}

func (w *writeLog) WriteAt(p []byte, off int64) (int, error) {
	w.writes++
	return w.Buffer.WriteAt(p, off)
}

// cutAfter answers with a 200 for all of data but sends only its first n
// bytes, then drops the TCP connection.
func cutAfter(t *testing.T, w http.ResponseWriter, data []byte, n int) {
	conn, buf, err := http.NewResponseController(w).Hijack()
	if err != nil {
		t.Errorf("hijack: %v", err)
		return
	}
	defer conn.Close()
	fmt.Fprintf(buf, "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n", len(data))
	buf.Write(data[:n])
	buf.Flush()
}

func checkOCIError(t *testing.T, err error, sentinel error, ref Reference, status int) *Error {
	t.Helper()
	if !errors.Is(err, sentinel) {
		t.Fatalf("error %v is not %v", err, sentinel)
	}
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v is not an *Error", err)
	}
	if e.Registry != ref.Registry || e.Repository != ref.Repository {
		t.Errorf("error names %s/%s, want %s", e.Registry, e.Repository, ref.Name())
	}
	if !strings.Contains(err.Error(), ref.Name()) {
		t.Errorf("message %q does not name %s", err, ref.Name())
	}
	if e.Status != status {
		t.Errorf("Status %d, want %d (%v)", e.Status, status, err)
	}
	return e
}

func TestResolveImageAndFetchBlobs(t *testing.T) {
	f := newFixture(t)
	dockerImg, err := random.Image(3000, 2)
	if err != nil {
		t.Fatal(err)
	}
	ociImg := mutate.ConfigMediaType(mutate.MediaType(dockerImg, types.OCIManifestSchema1), types.OCIConfigJSON)
	f.pushImage("app/docker:v1", dockerImg)
	f.pushImage("app/oci:v1", ociImg)
	var rec recorder
	host := f.serve(rec.wrap)
	c := testClient(host)
	ctx := context.Background()

	for _, tc := range []struct {
		repo string
		img  v1.Image
		mt   string
	}{
		{"app/docker", dockerImg, MediaTypeDockerManifest},
		{"app/oci", ociImg, ocispec.MediaTypeImageManifest},
	} {
		raw, _ := tc.img.RawManifest()
		dg, _ := tc.img.Digest()
		for _, s := range []string{
			host + "/" + tc.repo + ":v1",
			host + "/" + tc.repo + "@" + dg.String(),
			host + "/" + tc.repo + ":v1@" + dg.String(),
		} {
			ref := mustRef(t, s)
			desc, body, err := c.Resolve(ctx, ref, ocispec.Platform{})
			if err != nil {
				t.Fatalf("Resolve %s: %v", s, err)
			}
			if desc.Digest.String() != dg.String() || desc.Size != int64(len(raw)) || desc.MediaType != tc.mt || !bytes.Equal(body, raw) {
				t.Errorf("Resolve %s: %+v, %d bytes; want %s, %d bytes, %s", s, desc, len(body), dg, len(raw), tc.mt)
			}
		}

		// Every blob the manifest names comes back verified.
		ref := mustRef(t, host+"/"+tc.repo+":v1")
		_, body, err := c.Resolve(ctx, ref, ocispec.Platform{})
		if err != nil {
			t.Fatal(err)
		}
		var m ocispec.Manifest
		if err := json.Unmarshal(body, &m); err != nil {
			t.Fatal(err)
		}
		if len(m.Layers) != 2 {
			t.Fatalf("%d layers", len(m.Layers))
		}
		cfg, _ := tc.img.RawConfigFile()
		wants := [][]byte{cfg}
		layers, _ := tc.img.Layers()
		for _, l := range layers {
			rc, _ := l.Compressed()
			b, _ := io.ReadAll(rc)
			wants = append(wants, b)
		}
		for i, d := range append([]ocispec.Descriptor{m.Config}, m.Layers...) {
			buf := make(Buffer, d.Size)
			if err := c.FetchBlob(ctx, ref, d, buf); err != nil {
				t.Fatalf("FetchBlob %s: %v", d.Digest, err)
			}
			if !bytes.Equal(buf, wants[i]) {
				t.Errorf("blob %d differs", i)
			}
		}
	}
	// The manifest requests asked for every type we accept.
	if n := rec.count(); n == 0 {
		t.Fatal("no requests recorded")
	}
}

func TestResolveSendsAccept(t *testing.T) {
	f := newFixture(t)
	img, _ := random.Image(100, 1)
	f.pushImage("a:v", img)
	var accept string
	host := f.serve(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.Contains(r.URL.Path, "/manifests/") {
				accept = r.Header.Get("Accept")
			}
			next.ServeHTTP(w, r)
		})
	})
	if _, _, err := testClient(host).Resolve(context.Background(), mustRef(t, host+"/a:v"), ocispec.Platform{}); err != nil {
		t.Fatal(err)
	}
	for _, mt := range []string{ocispec.MediaTypeImageIndex, ocispec.MediaTypeImageManifest, MediaTypeDockerManifestList, MediaTypeDockerManifest} {
		if !strings.Contains(accept, mt) {
			t.Errorf("Accept %q lacks %s", accept, mt)
		}
	}
}

type plat struct{ os, arch, variant string }

func buildIndex(t *testing.T, mt types.MediaType, plats []plat) (v1.ImageIndex, map[plat]v1.Image) {
	t.Helper()
	imgs := map[plat]v1.Image{}
	var adds []mutate.IndexAddendum
	for i, p := range plats {
		img, err := random.Image(int64(100+i), 1)
		if err != nil {
			t.Fatal(err)
		}
		if mt == types.OCIImageIndex {
			img = mutate.MediaType(img, types.OCIManifestSchema1)
		}
		imgs[p] = img
		adds = append(adds, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{
			Platform: &v1.Platform{OS: p.os, Architecture: p.arch, Variant: p.variant},
		}})
	}
	return mutate.IndexMediaType(mutate.AppendManifests(empty.Index, adds...), mt), imgs
}

func TestResolveIndexPlatforms(t *testing.T) {
	f := newFixture(t)
	ociIdx, ociImgs := buildIndex(t, types.OCIImageIndex, []plat{
		{"unknown", "unknown", ""}, // an attestation-like entry first
		{"linux", "amd64", ""},
		{"linux", "arm", "v7"},
		{"linux", "arm64", "v8"},
		{"linux", "riscv64", ""},
		{"linux", "loong64", ""},
		{"windows", "amd64", ""},
	})
	dockerIdx, dockerImgs := buildIndex(t, types.DockerManifestList, []plat{
		{"linux", "amd64", "v3"},
		{"linux", "amd64", ""},
		{"linux", "arm64", ""},
	})
	f.pushIndex("multi/oci:v1", ociIdx)
	f.pushIndex("multi/docker:v1", dockerIdx)
	host := f.serve(nil)
	c := testClient(host)
	ctx := context.Background()

	for _, tc := range []struct {
		repo string
		want ocispec.Platform
		got  plat
		imgs map[plat]v1.Image
	}{
		{"multi/oci", ocispec.Platform{OS: "linux", Architecture: "amd64"}, plat{"linux", "amd64", ""}, ociImgs},
		{"multi/oci", ocispec.Platform{OS: "linux", Architecture: "amd64", Variant: "v1"}, plat{"linux", "amd64", ""}, ociImgs},
		{"multi/oci", ocispec.Platform{Architecture: "amd64"}, plat{"linux", "amd64", ""}, ociImgs},
		{"multi/oci", ocispec.Platform{OS: "linux", Architecture: "arm64"}, plat{"linux", "arm64", "v8"}, ociImgs},
		{"multi/oci", ocispec.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}, plat{"linux", "arm64", "v8"}, ociImgs},
		{"multi/oci", ocispec.Platform{OS: "linux", Architecture: "riscv64"}, plat{"linux", "riscv64", ""}, ociImgs},
		{"multi/oci", ocispec.Platform{OS: "linux", Architecture: "loong64"}, plat{"linux", "loong64", ""}, ociImgs},
		{"multi/oci", ocispec.Platform{OS: "windows", Architecture: "amd64"}, plat{"windows", "amd64", ""}, ociImgs},
		{"multi/docker", ocispec.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}, plat{"linux", "arm64", ""}, dockerImgs},
		{"multi/docker", ocispec.Platform{OS: "linux", Architecture: "amd64"}, plat{"linux", "amd64", ""}, dockerImgs},
		{"multi/docker", ocispec.Platform{OS: "linux", Architecture: "amd64", Variant: "v3"}, plat{"linux", "amd64", "v3"}, dockerImgs},
	} {
		desc, body, err := c.Resolve(ctx, mustRef(t, host+"/"+tc.repo+":v1"), tc.want)
		if err != nil {
			t.Fatalf("%s %+v: %v", tc.repo, tc.want, err)
		}
		img := tc.imgs[tc.got]
		dg, _ := img.Digest()
		raw, _ := img.RawManifest()
		mt, _ := img.MediaType()
		if desc.Digest.String() != dg.String() || !bytes.Equal(body, raw) || desc.MediaType != string(mt) || desc.Size != int64(len(raw)) {
			t.Errorf("%s %+v: got %s (%s), want %s %v", tc.repo, tc.want, desc.Digest, desc.MediaType, dg, tc.got)
		}
		if desc.Platform == nil || desc.Platform.Architecture != tc.got.arch || desc.Platform.Variant != tc.got.variant {
			t.Errorf("%s %+v: descriptor platform %+v", tc.repo, tc.want, desc.Platform)
		}
	}

	// No platform at all means linux on the host's architecture.
	desc, _, err := c.Resolve(ctx, mustRef(t, host+"/multi/oci:v1"), ocispec.Platform{})
	if err != nil {
		t.Fatal(err)
	}
	if desc.Platform.OS != "linux" || desc.Platform.Architecture != wantPlatform(ocispec.Platform{}).Architecture {
		t.Errorf("default platform chose %+v", desc.Platform)
	}

	// Pinning the index by digest works the same way.
	idxDigest, _ := ociIdx.Digest()
	desc, _, err = c.Resolve(ctx, mustRef(t, host+"/multi/oci@"+idxDigest.String()), ocispec.Platform{OS: "linux", Architecture: "riscv64"})
	if err != nil {
		t.Fatal(err)
	}
	if want, _ := ociImgs[plat{"linux", "riscv64", ""}].Digest(); desc.Digest.String() != want.String() {
		t.Errorf("by index digest: got %s, want %s", desc.Digest, want)
	}
}

func TestResolveWrongPlatform(t *testing.T) {
	f := newFixture(t)
	idx, _ := buildIndex(t, types.OCIImageIndex, []plat{
		{"linux", "s390x", ""},
		{"windows", "amd64", ""},
		{"linux", "arm64", "v9"},
	})
	f.pushIndex("other:v1", idx)
	host := f.serve(nil)
	ref := mustRef(t, host+"/other:v1")
	for _, p := range []ocispec.Platform{
		{OS: "linux", Architecture: "amd64"},
		{OS: "linux", Architecture: "arm64"},
		{OS: "linux", Architecture: "arm64", Variant: "v8"},
	} {
		_, _, err := testClient(host).Resolve(context.Background(), ref, p)
		checkOCIError(t, err, ErrPlatform, ref, 0)
		for _, want := range []string{"linux/s390x", "windows/amd64", "linux/arm64/v9", platformString(wantPlatform(p))} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%v does not list %s", err, want)
			}
		}
	}
}

func TestFetchBlobMultiMiB(t *testing.T) {
	f := newFixture(t)
	data := randomBytes(9<<20+17, 1)
	desc := f.pushBlob("big/blob", data)
	var rec recorder
	host := f.serve(rec.wrap)
	buf := make(Buffer, desc.Size)
	if err := testClient(host).FetchBlob(context.Background(), mustRef(t, host+"/big/blob:x"), desc, buf); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf, data) {
		t.Fatal("blob differs")
	}
	if g := rec.blobGETs(); len(g) != 1 || g[0].rng != "" {
		t.Errorf("blob requests %+v, want one without Range", g)
	}
}

func TestFetchBlobEmpty(t *testing.T) {
	f := newFixture(t)
	desc := f.pushBlob("e/x", nil)
	host := f.serve(nil)
	if err := testClient(host).FetchBlob(context.Background(), mustRef(t, host+"/e/x:t"), desc, Buffer{}); err != nil {
		t.Fatal(err)
	}
}

// tokenServer is a Docker-style token endpoint issuing "tok-N".
type tokenServer struct {
	t        *testing.T
	url      string
	hits     atomic.Int32
	user     string // when set, require these basic credentials
	pass     string
	field    string // "token" or "access_token"
	lifetime int
}

func newTokenServer(t *testing.T, field string) *tokenServer {
	ts := &tokenServer{t: t, field: field, lifetime: 300}
	srv := httptest.NewServer(http.HandlerFunc(ts.serve))
	t.Cleanup(srv.Close)
	ts.url = srv.URL + "/token"
	return ts
}

func (ts *tokenServer) serve(w http.ResponseWriter, r *http.Request) {
	if got := r.URL.Query().Get("service"); got != "test-registry" {
		ts.t.Errorf("token request service %q", got)
	}
	if scopes := r.URL.Query()["scope"]; len(scopes) != 1 || !strings.HasPrefix(scopes[0], "repository:") || !strings.HasSuffix(scopes[0], ":pull") {
		ts.t.Errorf("token request scopes %q", scopes)
	}
	if ts.user != "" {
		if u, p, ok := r.BasicAuth(); !ok || u != ts.user || p != ts.pass {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
	}
	n := ts.hits.Add(1)
	json.NewEncoder(w).Encode(map[string]any{ts.field: fmt.Sprintf("tok-%d", n), "expires_in": ts.lifetime})
}

// bearerGate lets requests through only with a token ts issued.
func bearerGate(ts *tokenServer, unauth *atomic.Int32) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			auth := r.Header.Get("Authorization")
			if !strings.HasPrefix(auth, "Bearer tok-") {
				if unauth != nil {
					unauth.Add(1)
				}
				repo := strings.TrimPrefix(r.URL.Path, "/v2/")
				if i := strings.LastIndex(repo, "/manifests/"); i >= 0 {
					repo = repo[:i]
				} else if i := strings.LastIndex(repo, "/blobs/"); i >= 0 {
					repo = repo[:i]
				}
				w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm="%s",service="test-registry",scope="repository:%s:pull"`, ts.url, repo))
				w.WriteHeader(http.StatusUnauthorized)
				fmt.Fprint(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

func TestTokenAuth(t *testing.T) {
	for _, tc := range []struct {
		name, field string
		basic       bool
	}{
		{"anonymous token", "token", false},
		{"anonymous access_token", "access_token", false},
		{"basic-authenticated token", "token", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			img, _ := random.Image(500, 1)
			f.pushImage("sec/app:v1", img)
			ts := newTokenServer(t, tc.field)
			var opts []Option
			var unauth atomic.Int32
			host := f.serve(bearerGate(ts, &unauth))
			if tc.basic {
				ts.user, ts.pass = "alice", "s3cret"
				opts = append(opts, WithBasicAuth(host, "alice", "s3cret"))
			}
			c := testClient(host, opts...)
			clock := time.Unix(1_000_000, 0)
			c.now = func() time.Time { return clock }
			ctx := context.Background()
			ref := mustRef(t, host+"/sec/app:v1")

			desc, body, err := c.Resolve(ctx, ref, ocispec.Platform{})
			if err != nil {
				t.Fatal(err)
			}
			var m ocispec.Manifest
			json.Unmarshal(body, &m)
			buf := make(Buffer, m.Layers[0].Size)
			if err := c.FetchBlob(ctx, ref, m.Layers[0], buf); err != nil {
				t.Fatal(err)
			}
			if _, _, err := c.Resolve(ctx, mustRef(t, host+"/sec/app@"+desc.Digest.String()), ocispec.Platform{}); err != nil {
				t.Fatal(err)
			}
			if n := ts.hits.Load(); n != 1 {
				t.Errorf("token fetched %d times, want 1 (cached)", n)
			}
			if n := unauth.Load(); n != 1 {
				t.Errorf("%d unauthenticated requests, want 1", n)
			}

			// Past its lifetime the token is fetched again.
			clock = clock.Add(301 * time.Second)
			if err := c.FetchBlob(ctx, ref, m.Layers[0], buf); err != nil {
				t.Fatal(err)
			}
			if n := ts.hits.Load(); n != 2 {
				t.Errorf("token fetched %d times after expiry, want 2", n)
			}
		})
	}
}

func TestTokenAuthFailures(t *testing.T) {
	f := newFixture(t)
	img, _ := random.Image(500, 1)
	f.pushImage("sec/app:v1", img)
	ctx := context.Background()

	// The token realm wants credentials we do not have.
	ts := newTokenServer(t, "token")
	ts.user, ts.pass = "alice", "s3cret"
	host := f.serve(bearerGate(ts, nil))
	ref := mustRef(t, host+"/sec/app:v1")
	_, _, err := testClient(host).Resolve(ctx, ref, ocispec.Platform{})
	checkOCIError(t, err, ErrUnauthorized, ref, http.StatusUnauthorized)

	// Wrong credentials for the realm.
	_, _, err = testClient(host, WithBasicAuth(host, "alice", "wrong")).Resolve(ctx, ref, ocispec.Platform{})
	checkOCIError(t, err, ErrUnauthorized, ref, http.StatusUnauthorized)

	// The registry keeps refusing even a fresh token: one retry, then a clear error.
	ts2 := newTokenServer(t, "token")
	var tries atomic.Int32
	host2 := f.serve(func(http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			tries.Add(1)
			w.Header().Set("WWW-Authenticate", `Bearer realm="`+ts2.url+`",service="test-registry"`)
			w.WriteHeader(http.StatusUnauthorized)
		})
	})
	ref2 := mustRef(t, host2+"/sec/app:v1")
	_, _, err = testClient(host2).Resolve(ctx, ref2, ocispec.Platform{})
	checkOCIError(t, err, ErrUnauthorized, ref2, http.StatusUnauthorized)
	if n := tries.Load(); n != 2 {
		t.Errorf("%d requests, want 2 (one retry with the token)", n)
	}

	// 401 without any challenge.
	host3 := f.serve(func(http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusUnauthorized) })
	})
	ref3 := mustRef(t, host3+"/sec/app:v1")
	_, _, err = testClient(host3).Resolve(ctx, ref3, ocispec.Platform{})
	checkOCIError(t, err, ErrUnauthorized, ref3, http.StatusUnauthorized)

	// 403 on a blob.
	host4 := f.serve(func(http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusForbidden)
			fmt.Fprint(w, `{"errors":[{"code":"DENIED","message":"requested access to the resource is denied"}]}`)
		})
	})
	ref4 := mustRef(t, host4+"/sec/app:v1")
	err = testClient(host4).FetchBlob(ctx, ref4, ocispec.Descriptor{Digest: testDigest, Size: 1}, make(Buffer, 1))
	checkOCIError(t, err, ErrUnauthorized, ref4, http.StatusForbidden)
	if !strings.Contains(err.Error(), "DENIED requested access to the resource is denied") {
		t.Errorf("message %q lacks the registry's explanation", err)
	}
}

func TestBasicAuth(t *testing.T) {
	f := newFixture(t)
	img, _ := random.Image(500, 1)
	f.pushImage("priv/app:v1", img)
	var challenges atomic.Int32
	var password atomic.Value
	password.Store("hunter2")
	host := f.serve(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if u, p, ok := r.BasicAuth(); !ok || u != "bob" || p != password.Load() {
				challenges.Add(1)
				w.Header().Set("WWW-Authenticate", `Basic realm="test registry", charset="UTF-8"`)
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
			next.ServeHTTP(w, r)
		})
	})
	ctx := context.Background()
	ref := mustRef(t, host+"/priv/app:v1")

	c := testClient(host, WithBasicAuth(host, "bob", "hunter2"))
	_, body, err := c.Resolve(ctx, ref, ocispec.Platform{})
	if err != nil {
		t.Fatal(err)
	}
	var m ocispec.Manifest
	json.Unmarshal(body, &m)
	if err := c.FetchBlob(ctx, ref, m.Config, make(Buffer, m.Config.Size)); err != nil {
		t.Fatal(err)
	}
	if n := challenges.Load(); n != 1 {
		t.Errorf("%d challenges, want 1 (credentials sent up front afterwards)", n)
	}
	// The password changes: the credentials sent up front are refused, and
	// there is no point in a second try.
	password.Store("changed")
	_, _, err = c.Resolve(ctx, ref, ocispec.Platform{})
	checkOCIError(t, err, ErrUnauthorized, ref, http.StatusUnauthorized)
	if n := challenges.Load(); n != 2 || !strings.Contains(err.Error(), "rejected the basic credentials") {
		t.Errorf("%d challenges, error %v", n, err)
	}

	_, _, err = testClient(host).Resolve(ctx, ref, ocispec.Platform{})
	checkOCIError(t, err, ErrUnauthorized, ref, http.StatusUnauthorized)
	if !strings.Contains(err.Error(), "none are configured") {
		t.Errorf("message %q", err)
	}
	_, _, err = testClient(host, WithBasicAuth(host, "bob", "nope")).Resolve(ctx, ref, ocispec.Platform{})
	checkOCIError(t, err, ErrUnauthorized, ref, http.StatusUnauthorized)
	if !strings.Contains(err.Error(), "rejected") {
		t.Errorf("message %q", err)
	}
}

func TestBearerTokenOption(t *testing.T) {
	f := newFixture(t)
	img, _ := random.Image(500, 1)
	f.pushImage("tok/app:v1", img)
	host := f.serve(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Authorization") != "Bearer static-token" {
				w.Header().Set("WWW-Authenticate", `Bearer realm="http://127.0.0.1:1/never",service="x"`)
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
			next.ServeHTTP(w, r)
		})
	})
	ref := mustRef(t, host+"/tok/app:v1")
	if _, _, err := testClient(host, WithBearerToken(host, "static-token")).Resolve(context.Background(), ref, ocispec.Platform{}); err != nil {
		t.Fatal(err)
	}
	_, _, err := testClient(host, WithBearerToken(host, "stale")).Resolve(context.Background(), ref, ocispec.Platform{})
	checkOCIError(t, err, ErrUnauthorized, ref, http.StatusUnauthorized)
}

func TestRedirectKeepsAuthFromOtherOrigins(t *testing.T) {
	f := newFixture(t)
	data := randomBytes(3<<20, 2)
	desc := f.pushBlob("redir/app", data)
	small := randomBytes(1000, 3)
	smallDesc := f.pushBlob("redir/app", small)

	var storageHits atomic.Int32
	storage := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		storageHits.Add(1)
		if a := r.Header.Get("Authorization"); a != "" {
			t.Errorf("blob storage on another origin received Authorization %q", a)
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		if r.URL.Query().Get("sig") != "presigned" {
			t.Errorf("storage query %q", r.URL.RawQuery)
		}
		if r.Host != r.Context().Value(http.LocalAddrContextKey).(net.Addr).String() {
			t.Errorf("storage got Host %q, the registry's name", r.Host)
		}
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(data))
	}))
	t.Cleanup(storage.Close)

	ts := newTokenServer(t, "token")
	var authedBlobGETs, localHits atomic.Int32
	gate := bearerGate(ts, nil)
	host := f.serve(func(next http.Handler) http.Handler {
		return gate(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch {
			case strings.HasPrefix(r.URL.Path, "/local/"):
				// A same-origin redirect target keeps the credentials.
				localHits.Add(1)
				if !strings.HasPrefix(r.Header.Get("Authorization"), "Bearer tok-") {
					t.Errorf("same-origin redirect lost Authorization")
				}
				http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(small))
			case isBlobGET(r) && strings.HasSuffix(r.URL.Path, desc.Digest.String()):
				authedBlobGETs.Add(1)
				http.Redirect(w, r, storage.URL+"/bucket/"+desc.Digest.Encoded()+"?sig=presigned", http.StatusTemporaryRedirect)
			case isBlobGET(r) && strings.HasSuffix(r.URL.Path, smallDesc.Digest.String()):
				http.Redirect(w, r, "/local/"+smallDesc.Digest.Encoded(), http.StatusFound)
			default:
				next.ServeHTTP(w, r)
			}
		}))
	})
	c := testClient(host)
	ref := mustRef(t, host+"/redir/app:x")
	buf := make(Buffer, desc.Size)
	if err := c.FetchBlob(context.Background(), ref, desc, buf); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf, data) {
		t.Fatal("blob differs")
	}
	if authedBlobGETs.Load() != 1 || storageHits.Load() != 1 || ts.hits.Load() != 1 {
		t.Errorf("registry blob GETs with token %d, storage hits %d, tokens %d; want 1 each", authedBlobGETs.Load(), storageHits.Load(), ts.hits.Load())
	}
	sbuf := make(Buffer, smallDesc.Size)
	if err := c.FetchBlob(context.Background(), ref, smallDesc, sbuf); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(sbuf, small) || localHits.Load() != 1 {
		t.Errorf("same-origin redirect: %d hits", localHits.Load())
	}
}

func TestRedirectErrorsHideQuery(t *testing.T) {
	dead := httptest.NewServer(http.NotFoundHandler())
	deadURL := dead.URL
	dead.Close()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, deadURL+"/bucket/x?sig=TOPSECRET", http.StatusTemporaryRedirect)
	}))
	t.Cleanup(srv.Close)
	host := srv.Listener.Addr().String()
	err := testClient(host, WithRetry(0, 0)).FetchBlob(context.Background(), mustRef(t, host+"/x:y"), ocispec.Descriptor{Digest: testDigest, Size: 3}, make(Buffer, 3))
	if err == nil || strings.Contains(err.Error(), "TOPSECRET") || !strings.Contains(err.Error(), "/bucket/x") {
		t.Errorf("got %v", err)
	}
}

func TestRedirectLoop(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		http.Redirect(w, r, r.URL.Path, http.StatusFound)
	}))
	t.Cleanup(srv.Close)
	host := srv.Listener.Addr().String()
	err := testClient(host).FetchBlob(context.Background(), mustRef(t, host+"/x:y"), ocispec.Descriptor{Digest: testDigest, Size: 3}, make(Buffer, 3))
	if err == nil || !strings.Contains(err.Error(), "redirects") {
		t.Fatalf("got %v", err)
	}
	if n := hits.Load(); n != maxRedirects+1 {
		t.Errorf("%d requests, want %d", n, maxRedirects+1)
	}
}

// flipByte corrupts byte n of every blob response body.
type flipWriter struct {
	http.ResponseWriter
	at, pos int
}

func (fw *flipWriter) Write(p []byte) (int, error) {
	if fw.at >= fw.pos && fw.at < fw.pos+len(p) {
		q := bytes.Clone(p)
		q[fw.at-fw.pos] ^= 0x01
		p = q
	}
	fw.pos += len(p)
	return fw.ResponseWriter.Write(p)
}

func TestFetchBlobFlippedByte(t *testing.T) {
	f := newFixture(t)
	data := randomBytes(2<<20, 4)
	desc := f.pushBlob("flip/app", data)
	host := f.serve(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if isBlobGET(r) {
				w = &flipWriter{ResponseWriter: w, at: 1 << 20}
			}
			next.ServeHTTP(w, r)
		})
	})
	ref := mustRef(t, host+"/flip/app:x")
	err := testClient(host).FetchBlob(context.Background(), ref, desc, make(Buffer, desc.Size))
	e := checkOCIError(t, err, ErrDigestMismatch, ref, 0)
	if e.Digest != desc.Digest.String() || !strings.Contains(err.Error(), "expected "+desc.Digest.String()) || !strings.Contains(err.Error(), "got sha256:") {
		t.Errorf("message %q should name expected and got digests", err)
	}
}

func TestFetchBlobTruncatedThenResumed(t *testing.T) {
	f := newFixture(t)
	data := randomBytes(5<<20, 5)
	desc := f.pushBlob("trunc/app", data)
	const cut = 1<<20 + 5
	var rec recorder
	host := f.serveFirstBlobGET(&rec, func(w http.ResponseWriter) {
		// Content-Length is the full size; the body stops short, so the
		// server closes the connection.
		w.Header().Set("Content-Length", fmt.Sprint(len(data)))
		w.Write(data[:cut])
	})
	requireResumedFetch(t, host, "/trunc/app:x", desc, data, cut, &rec)
}

func TestFetchBlobShortForever(t *testing.T) {
	data := randomBytes(1<<20, 6)
	desc := ocispec.Descriptor{Digest: digest.FromBytes(data), Size: int64(len(data))}
	const have = 300_000
	var gets atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gets.Add(1)
		if r.Header.Get("Range") != "" {
			w.WriteHeader(http.StatusRequestedRangeNotSatisfiable)
			return
		}
		// Chunked, so the short body ends cleanly.
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		w.Write(data[:have])
	}))
	t.Cleanup(srv.Close)
	host := srv.Listener.Addr().String()
	ref := mustRef(t, host+"/short/app:x")
	err := testClient(host).FetchBlob(context.Background(), ref, desc, make(Buffer, desc.Size))
	checkOCIError(t, err, ErrSizeMismatch, ref, 0)
	if !strings.Contains(err.Error(), fmt.Sprintf("after %d of %d bytes", have, len(data))) {
		t.Errorf("message %q should say expected vs got", err)
	}
	// First GET, one ranged GET (416), then whole GETs until the retries run out.
	if n := gets.Load(); n != 2+3 {
		t.Errorf("%d requests, want 5", n)
	}
}

func TestFetchBlobConnectionCut(t *testing.T) {
	f := newFixture(t)
	data := randomBytes(8<<20, 7)
	desc := f.pushBlob("cut/app", data)
	const cut = 3<<20 + 123
	var rec recorder
	host := f.serveFirstBlobGET(&rec, func(w http.ResponseWriter) { cutAfter(t, w, data, cut) })
	requireResumedFetch(t, host, "/cut/app:x", desc, data, cut, &rec)
}

func TestFetchBlobRangeNotHonoured(t *testing.T) {
	for _, mode := range []string{"ignore", "416", "wrong-start"} {
		t.Run(mode, func(t *testing.T) {
			f := newFixture(t)
			data := randomBytes(4<<20, 8)
			desc := f.pushBlob("norange/app", data)
			const cut = 1<<20 + 1
			// The first response is cut short and carries a corrupted byte:
			// only a real restart from 0 (data and hash) verifies.
			bad := bytes.Clone(data)
			bad[100] ^= 0xff
			var first atomic.Bool
			var rec recorder
			host := f.serve(func(next http.Handler) http.Handler {
				return rec.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					if !isBlobGET(r) {
						next.ServeHTTP(w, r)
						return
					}
					if first.CompareAndSwap(false, true) {
						cutAfter(t, w, bad, cut)
						return
					}
					if r.Header.Get("Range") != "" {
						switch mode {
						case "ignore":
							r.Header.Del("Range")
						case "416":
							w.WriteHeader(http.StatusRequestedRangeNotSatisfiable)
							return
						case "wrong-start":
							w.Header().Set("Content-Range", fmt.Sprintf("bytes 0-%d/%d", len(data)-1, len(data)))
							w.WriteHeader(http.StatusPartialContent)
							w.Write(data)
							return
						}
					}
					next.ServeHTTP(w, r)
				}))
			})
			buf := make(Buffer, desc.Size)
			if err := testClient(host).FetchBlob(context.Background(), mustRef(t, host+"/norange/app:x"), desc, buf); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(buf, data) {
				t.Fatal("blob differs")
			}
			g := rec.blobGETs()
			if len(g) < 2 || g[1].rng == "" || g[len(g)-1].rng != "" && mode != "ignore" {
				t.Errorf("requests %+v: want a resume attempt, then a whole read", g)
			}
		})
	}
}

func TestFetchBlobContentRangeTotal(t *testing.T) {
	f := newFixture(t)
	data := randomBytes(1<<20, 14)
	desc := f.pushBlob("crt/app", data)
	var first atomic.Bool
	host := f.serve(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !isBlobGET(r) {
				next.ServeHTTP(w, r)
				return
			}
			if first.CompareAndSwap(false, true) {
				cutAfter(t, w, data, 1000)
				return
			}
			// The resumed range claims the blob has another size.
			w.Header().Set("Content-Range", fmt.Sprintf("bytes 1000-%d/%d", len(data)-1, len(data)+1))
			w.WriteHeader(http.StatusPartialContent)
			w.Write(data[1000:])
		})
	})
	ref := mustRef(t, host+"/crt/app:x")
	err := testClient(host).FetchBlob(context.Background(), ref, desc, make(Buffer, desc.Size))
	checkOCIError(t, err, ErrSizeMismatch, ref, 0)
	if !strings.Contains(err.Error(), fmt.Sprintf("blob is %d bytes", len(data)+1)) {
		t.Errorf("message %q", err)
	}
}

// TestNetworkErrorsRetried counts connections to a server that hangs up on
// every one before answering.
func TestNetworkErrorsRetried(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var accepts atomic.Int32
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			accepts.Add(1)
			conn.Close()
		}
	}()
	host := ln.Addr().String()
	ref := mustRef(t, host+"/n/e:t")
	_, _, err = testClient(host, WithRetry(2, time.Millisecond)).Resolve(context.Background(), ref, ocispec.Platform{})
	ln.Close()
	<-done
	var e *Error
	if !errors.As(err, &e) || e.Status != 0 || e.Registry != host {
		t.Fatalf("got %v", err)
	}
	if n := accepts.Load(); n != 3 {
		t.Errorf("%d connections, want 3 (2 retries)", n)
	}
}

func TestFetchBlobCutAfterLastByte(t *testing.T) {
	data := randomBytes(50_000, 15)
	desc := ocispec.Descriptor{Digest: digest.FromBytes(data), Size: int64(len(data))}
	var gets atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gets.Add(1)
		conn, buf, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close()
		// Every byte arrives, but the chunked body never ends properly.
		fmt.Fprintf(buf, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n", len(data))
		buf.Write(data)
		buf.WriteString("\r\n")
		buf.Flush()
	}))
	t.Cleanup(srv.Close)
	host := srv.Listener.Addr().String()
	buf := make(Buffer, desc.Size)
	if err := testClient(host).FetchBlob(context.Background(), mustRef(t, host+"/a/b:c"), desc, buf); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf, data) || gets.Load() != 1 {
		t.Errorf("%d requests", gets.Load())
	}
}

func TestFetchBlobTooLarge(t *testing.T) {
	f := newFixture(t)
	data := randomBytes(2<<20, 9)
	desc := f.pushBlob("big/app", data)
	var rec recorder
	host := f.serve(rec.wrap)
	ref := mustRef(t, host+"/big/app:x")
	w := &writeLog{Buffer: make(Buffer, desc.Size)}
	err := testClient(host, WithMaxBlobSize(1<<20)).FetchBlob(context.Background(), ref, desc, w)
	checkOCIError(t, err, ErrTooLarge, ref, 0)
	if w.writes != 0 || rec.count() != 0 {
		t.Errorf("%d writes, %d requests before refusing", w.writes, rec.count())
	}
	// At the limit it is fine.
	if err := testClient(host, WithMaxBlobSize(desc.Size)).FetchBlob(context.Background(), ref, desc, w); err != nil {
		t.Fatal(err)
	}
}

func TestFetchBlobSizeDisagrees(t *testing.T) {
	f := newFixture(t)
	data := randomBytes(100_000, 10)
	desc := f.pushBlob("size/app", data)
	host := f.serve(nil)
	ref := mustRef(t, host+"/size/app:x")
	for _, size := range []int64{desc.Size - 1, desc.Size + 1, 0} {
		d := desc
		d.Size = size
		w := &writeLog{Buffer: make(Buffer, size)}
		err := testClient(host).FetchBlob(context.Background(), ref, d, w)
		checkOCIError(t, err, ErrSizeMismatch, ref, 0)
		if w.writes != 0 {
			t.Errorf("size %d: %d writes before the mismatch was noticed", size, w.writes)
		}
		if !strings.Contains(err.Error(), fmt.Sprintf("announces %d bytes, descriptor says %d", desc.Size, size)) {
			t.Errorf("message %q", err)
		}
	}
	d := desc
	d.Size = -1
	checkOCIError(t, testClient(host).FetchBlob(context.Background(), ref, d, Buffer{}), ErrSizeMismatch, ref, 0)
	d = desc
	d.Digest = "sha256:nothex"
	if err := testClient(host).FetchBlob(context.Background(), ref, d, Buffer{}); err == nil || !strings.Contains(err.Error(), "descriptor digest") {
		t.Errorf("bad descriptor digest: %v", err)
	}
}

func TestFetchBlobExtraBytes(t *testing.T) {
	data := randomBytes(70_000, 11)
	desc := ocispec.Descriptor{Digest: digest.FromBytes(data), Size: int64(len(data))}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush() // chunked: no length to check up front
		w.Write(data)
		w.Write([]byte("trailing junk"))
	}))
	t.Cleanup(srv.Close)
	host := srv.Listener.Addr().String()
	ref := mustRef(t, host+"/x/y:z")
	err := testClient(host).FetchBlob(context.Background(), ref, desc, make(Buffer, desc.Size))
	checkOCIError(t, err, ErrSizeMismatch, ref, 0)
}

func TestFetchBlobSHA512(t *testing.T) {
	data := randomBytes(300_000, 12)
	d := digest.SHA512.FromBytes(data)
	desc := ocispec.Descriptor{Digest: d, Size: int64(len(data))}
	var flip atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v2/x/y/blobs/"+d.String() {
			http.NotFound(w, r)
			return
		}
		body := data
		if flip.Load() {
			body = bytes.Clone(data)
			body[7] ^= 1
		}
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(body))
	}))
	t.Cleanup(srv.Close)
	host := srv.Listener.Addr().String()
	ref := mustRef(t, host+"/x/y:z")
	buf := make(Buffer, desc.Size)
	if err := testClient(host).FetchBlob(context.Background(), ref, desc, buf); err != nil || !bytes.Equal(buf, data) {
		t.Fatalf("sha512 blob: %v", err)
	}
	flip.Store(true)
	checkOCIError(t, testClient(host).FetchBlob(context.Background(), ref, desc, buf), ErrDigestMismatch, ref, 0)
}

func TestStatusErrors(t *testing.T) {
	f := newFixture(t)
	img, _ := random.Image(500, 1)
	f.pushImage("st/app:v1", img)
	data := randomBytes(200_000, 13)
	desc := f.pushBlob("st/app", data)
	ctx := context.Background()

	host := f.serve(nil)
	ref := mustRef(t, host+"/st/app:nope")
	_, _, err := testClient(host).Resolve(ctx, ref, ocispec.Platform{})
	checkOCIError(t, err, ErrNotFound, ref, http.StatusNotFound)
	if !strings.Contains(err.Error(), ":nope") || !strings.Contains(err.Error(), "MANIFEST_UNKNOWN") {
		t.Errorf("message %q should name the tag and the registry's code", err)
	}
	missing := ocispec.Descriptor{Digest: digest.FromString("missing"), Size: 7}
	err = testClient(host).FetchBlob(ctx, ref, missing, make(Buffer, 7))
	checkOCIError(t, err, ErrNotFound, ref, http.StatusNotFound)

	// 500s are retried, then reported.
	var fails atomic.Int32
	alwaysBroken := f.serve(func(http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fails.Add(1)
			w.WriteHeader(http.StatusInternalServerError)
		})
	})
	ref = mustRef(t, alwaysBroken+"/st/app:v1")
	_, _, err = testClient(alwaysBroken).Resolve(ctx, ref, ocispec.Platform{})
	var e *Error
	if !errors.As(err, &e) || e.Status != http.StatusInternalServerError || !strings.Contains(err.Error(), "Internal Server Error") {
		t.Fatalf("got %v", err)
	}
	if n := fails.Load(); n != 4 {
		t.Errorf("%d requests, want 4 (3 retries)", n)
	}
	fails.Store(0)
	err = testClient(alwaysBroken, WithRetry(1, time.Millisecond)).FetchBlob(ctx, ref, desc, make(Buffer, desc.Size))
	if !errors.As(err, &e) || e.Status != http.StatusInternalServerError {
		t.Fatalf("got %v", err)
	}
	if n := fails.Load(); n != 2 {
		t.Errorf("%d requests, want 2 (1 retry)", n)
	}

	// A 503 and a 429 then success.
	var n atomic.Int32
	flaky := f.serve(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch n.Add(1) {
			case 1:
				w.WriteHeader(http.StatusServiceUnavailable)
			case 2:
				w.Header().Set("Retry-After", "0")
				w.WriteHeader(http.StatusTooManyRequests)
			default:
				next.ServeHTTP(w, r)
			}
		})
	})
	ref = mustRef(t, flaky+"/st/app:v1")
	if _, _, err := testClient(flaky).Resolve(ctx, ref, ocispec.Platform{}); err != nil {
		t.Fatal(err)
	}
	n.Store(0)
	buf := make(Buffer, desc.Size)
	if err := testClient(flaky).FetchBlob(ctx, ref, desc, buf); err != nil || !bytes.Equal(buf, data) {
		t.Fatalf("flaky blob: %v", err)
	}

	// A 400 is not retried.
	fails.Store(0)
	bad := f.serve(func(http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fails.Add(1)
			w.WriteHeader(http.StatusBadRequest)
		})
	})
	ref = mustRef(t, bad+"/st/app:v1")
	if _, _, err := testClient(bad).Resolve(ctx, ref, ocispec.Platform{}); err == nil || fails.Load() != 1 {
		t.Errorf("400: %v after %d requests", err, fails.Load())
	}

	// Nothing listening: network errors are retried, then reported.
	dead := httptest.NewServer(http.NotFoundHandler())
	deadHost := dead.Listener.Addr().String()
	dead.Close()
	ref = mustRef(t, deadHost+"/st/app:v1")
	_, _, err = testClient(deadHost).Resolve(ctx, ref, ocispec.Platform{})
	if !errors.As(err, &e) || e.Status != 0 || !strings.Contains(err.Error(), "connect") {
		t.Errorf("dead registry: %v", err)
	}
}

// manifestServer serves body for any manifest request of repository x/y.
func manifestServer(t *testing.T, body []byte, hdr map[string]string, chunked bool) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, "/v2/x/y/manifests/") {
			http.NotFound(w, r)
			return
		}
		for k, v := range hdr {
			w.Header().Set(k, v)
		}
		if !chunked {
			w.Header().Set("Content-Length", fmt.Sprint(len(body)))
		}
		w.WriteHeader(http.StatusOK)
		if chunked {
			w.(http.Flusher).Flush()
		}
		w.Write(body)
	}))
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

// bigManifest is a valid OCI manifest of exactly size bytes.
func bigManifest(size int) []byte {
	head := `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[],"annotations":{"pad":"`
	tail := `"}}`
	return []byte(head + strings.Repeat("x", size-len(head)-len(tail)) + tail)
}

func TestResolveManifestSizeLimit(t *testing.T) {
	ctx := context.Background()
	ok := bigManifest(MaxManifestSize)
	for _, chunked := range []bool{false, true} {
		host := manifestServer(t, ok, nil, chunked)
		if desc, _, err := testClient(host).Resolve(ctx, mustRef(t, host+"/x/y:z"), ocispec.Platform{}); err != nil || desc.Size != MaxManifestSize {
			t.Errorf("chunked=%v: a manifest of exactly %d bytes: %v", chunked, MaxManifestSize, err)
		}
		big := bigManifest(MaxManifestSize + 1)
		host = manifestServer(t, big, map[string]string{"Docker-Content-Digest": digest.FromBytes(big).String()}, chunked)
		ref := mustRef(t, host+"/x/y:z")
		_, _, err := testClient(host).Resolve(ctx, ref, ocispec.Platform{})
		checkOCIError(t, err, ErrTooLarge, ref, 0)
	}
}

func TestResolveVerifiesManifests(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	idx, imgs := buildIndex(t, types.OCIImageIndex, []plat{{"linux", "amd64", ""}, {"linux", "arm64", ""}})
	f.pushIndex("v/idx:v1", idx)
	img := imgs[plat{"linux", "amd64", ""}]
	imgDigest, _ := img.Digest()
	raw, _ := img.RawManifest()
	tampered := bytes.Replace(raw, []byte(`"schemaVersion":2`), []byte(`"schemaVersion": 2`), 1)
	if bytes.Equal(raw, tampered) {
		t.Fatal("could not tamper")
	}

	// Pinned digest, tampered body, truthful-looking header.
	host := manifestServer(t, tampered, map[string]string{"Content-Type": ocispec.MediaTypeImageManifest}, false)
	ref := mustRef(t, host+"/x/y@"+imgDigest.String())
	_, _, err := testClient(host).Resolve(ctx, ref, ocispec.Platform{})
	checkOCIError(t, err, ErrDigestMismatch, ref, 0)

	// By tag, Docker-Content-Digest says something else than the body.
	host = manifestServer(t, tampered, map[string]string{"Docker-Content-Digest": imgDigest.String()}, false)
	ref = mustRef(t, host+"/x/y:v1")
	_, _, err = testClient(host).Resolve(ctx, ref, ocispec.Platform{})
	checkOCIError(t, err, ErrDigestMismatch, ref, 0)

	// By tag with no header: the digest is computed.
	host = manifestServer(t, raw, nil, false)
	desc, _, err := testClient(host).Resolve(ctx, mustRef(t, host+"/x/y:v1"), ocispec.Platform{})
	if err != nil || desc.Digest.String() != imgDigest.String() {
		t.Errorf("computed digest %s, %v; want %s", desc.Digest, err, imgDigest)
	}

	// Garbage in Docker-Content-Digest is an error, not ignored.
	host = manifestServer(t, raw, map[string]string{"Docker-Content-Digest": "sha256:zzz"}, false)
	if _, _, err := testClient(host).Resolve(ctx, mustRef(t, host+"/x/y:v1"), ocispec.Platform{}); err == nil {
		t.Error("bad Docker-Content-Digest accepted")
	}

	// A child manifest that does not match its index entry.
	tamperChild := f.serve(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.HasSuffix(r.URL.Path, "/manifests/"+imgDigest.String()) {
				w.Header().Set("Content-Type", ocispec.MediaTypeImageManifest)
				w.Write(tampered)
				return
			}
			next.ServeHTTP(w, r)
		})
	})
	ref = mustRef(t, tamperChild+"/v/idx:v1")
	_, _, err = testClient(tamperChild).Resolve(ctx, ref, ocispec.Platform{OS: "linux", Architecture: "amd64"})
	checkOCIError(t, err, ErrSizeMismatch, ref, 0) // one byte longer: caught by size first
	sameLen := bytes.Replace(raw, []byte(`"schemaVersion":2`), []byte(`"schemaVersion":3`), 1)
	tamperChild = f.serve(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.HasSuffix(r.URL.Path, "/manifests/"+imgDigest.String()) {
				w.Write(sameLen)
				return
			}
			next.ServeHTTP(w, r)
		})
	})
	ref = mustRef(t, tamperChild+"/v/idx:v1")
	_, _, err = testClient(tamperChild).Resolve(ctx, ref, ocispec.Platform{OS: "linux", Architecture: "amd64"})
	e := checkOCIError(t, err, ErrDigestMismatch, ref, 0)
	if e.Digest != imgDigest.String() {
		t.Errorf("error digest %q, want the child's %s", e.Digest, imgDigest)
	}
}

func TestResolveMediaTypes(t *testing.T) {
	ctx := context.Background()
	cfg := `"config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]`
	for _, tc := range []struct {
		name, body, contentType, want, errText string
	}{
		{"no mediaType, manifest shape", `{"schemaVersion":2,` + cfg + `}`, "application/json", ocispec.MediaTypeImageManifest, ""},
		{"no mediaType, Content-Type decides", `{"schemaVersion":2,` + cfg + `}`, MediaTypeDockerManifest + "; charset=utf-8", MediaTypeDockerManifest, ""},
		{"body wins over Content-Type", `{"schemaVersion":2,"mediaType":"` + ocispec.MediaTypeImageManifest + `",` + cfg + `}`, MediaTypeDockerManifest, ocispec.MediaTypeImageManifest, ""},
		{"artifact", `{"schemaVersion":2,"mediaType":"` + ocispec.MediaTypeImageManifest + `","artifactType":"application/vnd.example",` + cfg + `}`, "", ocispec.MediaTypeImageManifest, ""},
		{"schema 1", `{"schemaVersion":1,"name":"x/y","fsLayers":[]}`, "application/vnd.docker.distribution.manifest.v1+prettyjws", "", "schemaVersion 1"},
		{"unknown type", `{"schemaVersion":2,"mediaType":"application/vnd.example+json"}`, "", "", "unsupported media type"},
		{"not json", `<html>`, "text/html", "", "decoding"},
	} {
		host := manifestServer(t, []byte(tc.body), map[string]string{"Content-Type": tc.contentType}, false)
		desc, body, err := testClient(host).Resolve(ctx, mustRef(t, host+"/x/y:z"), ocispec.Platform{})
		if tc.errText != "" {
			if err == nil || !strings.Contains(err.Error(), tc.errText) {
				t.Errorf("%s: got %v, want an error about %q", tc.name, err, tc.errText)
			}
			continue
		}
		if err != nil || desc.MediaType != tc.want || string(body) != tc.body {
			t.Errorf("%s: %+v, %v; want %s", tc.name, desc, err, tc.want)
		}
		if tc.name == "artifact" && desc.ArtifactType != "application/vnd.example" {
			t.Errorf("artifactType %q", desc.ArtifactType)
		}
	}

	// An index with no mediaType whose shape tells it is one; its entry for
	// us is itself an index, which we do not descend into.
	inner := `{"schemaVersion":2,"manifests":[]}`
	innerDigest := digest.FromString(inner)
	outer := fmt.Sprintf(`{"schemaVersion":2,"manifests":[{"mediaType":%q,"digest":%q,"size":%d,"platform":{"os":"linux","architecture":"amd64"}}]}`,
		ocispec.MediaTypeImageIndex, innerDigest, len(inner))
	host := manifestServer(t, []byte(outer), nil, false)
	_, _, err := testClient(host).Resolve(ctx, mustRef(t, host+"/x/y:z"), ocispec.Platform{OS: "linux", Architecture: "amd64"})
	if !errors.Is(err, ErrPlatform) || !strings.Contains(err.Error(), "linux/amd64") {
		t.Errorf("nested index: %v", err)
	}

	// An index entry pointing at a manifest that turns out to be an index.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, innerDigest.String()) {
			w.Write([]byte(inner))
			return
		}
		fmt.Fprintf(w, `{"schemaVersion":2,"manifests":[{"mediaType":%q,"digest":%q,"size":%d,"platform":{"os":"linux","architecture":"amd64"}}]}`,
			ocispec.MediaTypeImageManifest, innerDigest, len(inner))
	}))
	t.Cleanup(srv.Close)
	host = srv.Listener.Addr().String()
	_, _, err = testClient(host).Resolve(ctx, mustRef(t, host+"/x/y:z"), ocispec.Platform{OS: "linux", Architecture: "amd64"})
	if err == nil || !strings.Contains(err.Error(), "not an image manifest") {
		t.Errorf("index posing as manifest: %v", err)
	}

	// A Reference not from ParseReference is checked before use.
	for _, r := range []Reference{
		{Registry: host},
		{Registry: host, Repository: "x/y"},
		{Registry: host, Repository: "../y", Tag: "t"},
		{Registry: host + "/evil", Repository: "y", Tag: "t"},
		{Registry: "Docker.io", Repository: "y", Tag: "t"},
		{Registry: host, Repository: "x/y", Tag: "a/b"},
		{Registry: host, Repository: "x/y", Digest: "junk"},
		{Registry: host, Repository: "x/y", Digest: "md5:d41d8cd98f00b204e9800998ecf8427e"},
	} {
		if _, _, err := testClient(host).Resolve(ctx, r, ocispec.Platform{}); !errors.Is(err, ErrInvalidReference) {
			t.Errorf("Resolve(%#v): %v", r, err)
		}
	}
	err = testClient(host).FetchBlob(ctx, Reference{Registry: host, Repository: "x/../y"}, ocispec.Descriptor{Digest: testDigest}, Buffer{})
	if !errors.Is(err, ErrInvalidReference) {
		t.Errorf("FetchBlob with a bad repository: %v", err)
	}
}

func TestTLSRegistry(t *testing.T) {
	f := newFixture(t)
	img, _ := random.Image(2000, 1)
	f.pushImage("tls/app:v1", img)
	plainStorage := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("plain-HTTP storage was contacted")
	}))
	t.Cleanup(plainStorage.Close)
	ts := newTokenServer(t, "token") // http realm
	var mode atomic.Value
	mode.Store("open")
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case mode.Load() == "downgrade" && isBlobGET(r):
			http.Redirect(w, r, plainStorage.URL+"/b", http.StatusTemporaryRedirect)
		case mode.Load() == "http-realm":
			bearerGate(ts, nil)(f.reg).ServeHTTP(w, r)
		default:
			f.reg.ServeHTTP(w, r)
		}
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the plain-HTTP probe below is expected to fail
	srv.StartTLS()
	t.Cleanup(srv.Close)
	host := srv.Listener.Addr().String()
	c := NewClient(srv.Client(), WithRetry(0, 0)) // https by default
	ctx := context.Background()
	ref := mustRef(t, host+"/tls/app:v1")
	_, body, err := c.Resolve(ctx, ref, ocispec.Platform{})
	if err != nil {
		t.Fatal(err)
	}
	var m ocispec.Manifest
	json.Unmarshal(body, &m)
	if err := c.FetchBlob(ctx, ref, m.Layers[0], make(Buffer, m.Layers[0].Size)); err != nil {
		t.Fatal(err)
	}

	mode.Store("downgrade")
	err = c.FetchBlob(ctx, ref, m.Layers[0], make(Buffer, m.Layers[0].Size))
	if err == nil || !strings.Contains(err.Error(), "from https to http") {
		t.Errorf("downgrade redirect: %v", err)
	}

	mode.Store("http-realm")
	_, _, err = c.Resolve(ctx, ref, ocispec.Platform{})
	checkOCIError(t, err, ErrUnauthorized, ref, http.StatusUnauthorized)
	if !strings.Contains(err.Error(), "not https") || ts.hits.Load() != 0 {
		t.Errorf("http realm for an https registry: %v (%d token requests)", err, ts.hits.Load())
	}

	// The plain-HTTP option really switches the scheme: https server, http client.
	_, _, err = NewClient(srv.Client(), WithPlainHTTP(host), WithRetry(0, 0)).Resolve(ctx, ref, ocispec.Platform{})
	if err == nil {
		t.Error("plain HTTP against a TLS server succeeded")
	}
}

func TestContextCanceled(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "1000")
		w.WriteHeader(http.StatusOK)
		w.Write(make([]byte, 10))
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(srv.Close)
	defer close(release)
	host := srv.Listener.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	start := time.Now()
	err := testClient(host, WithRetry(5, time.Second)).FetchBlob(ctx, mustRef(t, host+"/a/b:c"), ocispec.Descriptor{Digest: testDigest, Size: 1000}, make(Buffer, 1000))
	if !errors.Is(err, context.Canceled) {
		t.Errorf("got %v, want context.Canceled", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v to notice", d)
	}
}

func TestBuffer(t *testing.T) {
	b := make(Buffer, 10)
	if n, err := b.WriteAt([]byte("abc"), 7); n != 3 || err != nil || string(b[7:]) != "abc" {
		t.Errorf("WriteAt at the end: %d %v", n, err)
	}
	for _, tc := range []struct {
		p   string
		off int64
	}{{"abcd", 7}, {"a", 11}, {"a", -1}, {"", 11}} {
		if n, err := b.WriteAt([]byte(tc.p), tc.off); err == nil || n != 0 {
			t.Errorf("WriteAt(%q, %d) = %d, %v; want an error", tc.p, tc.off, n, err)
		}
	}
	if n, err := b.WriteAt(nil, 10); n != 0 || err != nil {
		t.Errorf("empty write at the end: %d %v", n, err)
	}
}

func TestParseChallenges(t *testing.T) {
	got := parseChallenges([]string{
		`Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push"`,
		`Basic realm="x, y \"z\"", charset=UTF-8, Newauth realm=apps, type=1`,
		`Negotiate abc==`,
		``,
	})
	want := []challenge{
		{"bearer", map[string]string{"realm": "https://auth.example/token", "service": "registry.example", "scope": "repository:a/b:pull,push"}},
		{"basic", map[string]string{"realm": `x, y "z"`, "charset": "UTF-8"}},
		{"newauth", map[string]string{"realm": "apps", "type": "1"}},
		{"negotiate", map[string]string{"abc": ""}},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d challenges %+v", len(got), got)
	}
	for i := range want {
		if got[i].scheme != want[i].scheme || fmt.Sprint(got[i].params) != fmt.Sprint(want[i].params) {
			t.Errorf("challenge %d: %+v, want %+v", i, got[i], want[i])
		}
	}
	// Unterminated quotes and junk must not hang or panic.
	for _, s := range []string{`Bearer realm="open`, `"`, `,,,`, `Bearer =x`, `Bearer realm=`, `a b c d`} {
		parseChallenges([]string{s})
	}
}

func TestParseContentRange(t *testing.T) {
	for _, tc := range []struct {
		in           string
		start, total int64
		ok           bool
	}{
		{"bytes 100-199/200", 100, 200, true},
		{"bytes 0-0/*", 0, -1, true},
		{"bytes 5-4/10", 0, -1, false},
		{"bytes 5-10/10", 0, -1, false},
		{"bytes */10", 0, -1, false},
		{"items 1-2/3", 0, -1, false},
		{"bytes 1-2", 0, -1, false},
		{"", 0, -1, false},
	} {
		start, total, ok := parseContentRange(tc.in)
		if ok != tc.ok || (ok && (start != tc.start || total != tc.total)) {
			t.Errorf("%q: %d %d %v", tc.in, start, total, ok)
		}
	}
}

func TestErrorMessage(t *testing.T) {
	e := &Error{Op: "fetch blob", Registry: "r.example", Repository: "a/b", Digest: testDigest, Status: 500, Err: errors.New("boom")}
	if got, want := e.Error(), "oci: fetch blob r.example/a/b@"+testDigest+": HTTP 500: boom"; got != want {
		t.Errorf("%q, want %q", got, want)
	}
	e = &Error{Op: "resolve", Registry: "r.example", Repository: "a/b", Tag: "v1", Err: ErrNotFound}
	if got, want := e.Error(), "oci: resolve r.example/a/b:v1: not found"; got != want {
		t.Errorf("%q, want %q", got, want)
	}
	if !errors.Is(e, ErrNotFound) {
		t.Error("Unwrap")
	}
}

func BenchmarkFetchBlob(b *testing.B) {
	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	srv := httptest.NewServer(reg)
	defer srv.Close()
	host := srv.Listener.Addr().String()
	data := randomBytes(64<<20, 99)
	d := digest.FromBytes(data)
	resp, err := http.Post(srv.URL+"/v2/bench/blob/blobs/uploads/?digest="+d.String(), "application/octet-stream", bytes.NewReader(data))
	if err != nil || resp.StatusCode != http.StatusCreated {
		b.Fatalf("upload: %v %v", err, resp)
	}
	resp.Body.Close()
	desc := ocispec.Descriptor{Digest: d, Size: int64(len(data))}
	c := NewClient(&http.Client{}, WithPlainHTTP(host))
	ref := mustRef(b, host+"/bench/blob:x")
	buf := make(Buffer, desc.Size)
	b.SetBytes(desc.Size)
	b.ResetTimer()
	for b.Loop() {
		if err := c.FetchBlob(context.Background(), ref, desc, buf); err != nil {
			b.Fatal(err)
		}
	}
}

func TestHelpers(t *testing.T) {
	parse := func(s string) *url.URL {
		u, err := url.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	if origin(parse("https://Reg.Example/v2/")) != origin(parse("https://reg.example:443/x")) ||
		origin(parse("http://h/")) != origin(parse("http://h:80/")) ||
		origin(parse("http://h/")) == origin(parse("https://h/")) ||
		origin(parse("https://h:5000/")) == origin(parse("https://h/")) {
		t.Error("origin comparison")
	}
	if registryKey("Index.Docker.IO") != "docker.io" || registryKey("LOCALHOST:5000") != "localhost:5000" || registryKey("not a host") != "not a host" {
		t.Error("registryKey")
	}
	if retryAfter("5") != 5*time.Second || retryAfter("999999") != maxBackoff || retryAfter("soon") != 0 || retryAfter("") != 0 {
		t.Error("retryAfter")
	}

	c := NewClient(nil, WithRetry(-1, -time.Second))
	if c.retries != 0 || c.backoff != 0 {
		t.Errorf("negative retry settings kept: %d %v", c.retries, c.backoff)
	}
	start := time.Now()
	if err := c.pause(context.Background(), 0, transient{err: errors.New("x"), after: 30 * time.Millisecond}); err != nil || time.Since(start) < 30*time.Millisecond {
		t.Errorf("Retry-After not honoured: %v after %v", err, time.Since(start))
	}
	c = NewClient(nil, WithRetry(3, time.Hour))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := c.pause(ctx, 0, errors.New("x")); !errors.Is(err, context.Canceled) {
		t.Errorf("pause ignored cancellation: %v", err)
	}
}

// requireResumedFetch fetches the blob at host+path and requires the
// verified bytes after exactly one ranged request that resumes at cut.
func requireResumedFetch(t *testing.T, host, path string, desc ocispec.Descriptor, data []byte, cut int, rec *recorder) {
	t.Helper()
	buf := make(Buffer, desc.Size)
	if err := testClient(host).FetchBlob(context.Background(), mustRef(t, host+path), desc, buf); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf, data) {
		t.Fatal("blob differs")
	}
	g := rec.blobGETs()
	if len(g) != 2 || g[1].rng != fmt.Sprintf("bytes=%d-%d", cut, len(data)-1) {
		t.Errorf("requests %+v, want a resume from %d", g, cut)
	}
}
