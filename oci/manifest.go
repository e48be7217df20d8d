package oci

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strings"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// MaxManifestSize is the largest manifest or index Resolve accepts, the
// limit the distribution spec suggests registries enforce.
const MaxManifestSize = 4 << 20

// Docker's media types, which registries still serve for most images.
const (
	MediaTypeDockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json"
	MediaTypeDockerManifest     = "application/vnd.docker.distribution.manifest.v2+json"
)

var manifestAccept = strings.Join([]string{
	ocispec.MediaTypeImageIndex,
	ocispec.MediaTypeImageManifest,
	MediaTypeDockerManifestList,
	MediaTypeDockerManifest,
}, ", ")

func isIndex(mt string) bool {
	return mt == ocispec.MediaTypeImageIndex || mt == MediaTypeDockerManifestList
}

func isManifest(mt string) bool {
	return mt == ocispec.MediaTypeImageManifest || mt == MediaTypeDockerManifest
}

// Resolve fetches the manifest ref names and verifies it against ref's
// digest when pinned, else against the registry's Docker-Content-Digest.
// When that is an index (or Docker manifest list) it picks the first entry
// for platform and fetches and verifies that manifest. An empty platform OS
// means linux, an empty architecture runtime.GOARCH.
//
// The returned descriptor has the manifest's media type, digest and size
// (and, when chosen from an index, the index entry's platform and
// annotations); the bytes are exactly those the digest covers.
func (c *Client) Resolve(ctx context.Context, ref Reference, platform ocispec.Platform) (ocispec.Descriptor, []byte, error) {
	desc, body, err := c.FetchManifest(ctx, ref)
	if err != nil {
		return ocispec.Descriptor{}, nil, err
	}
	if !isIndex(desc.MediaType) {
		return desc, body, nil
	}
	return c.ResolveIndex(ctx, ref, desc, body, platform)
}

// FetchManifest fetches the manifest or index ref names, verified as
// Resolve does, without choosing a platform.
func (c *Client) FetchManifest(ctx context.Context, ref Reference) (ocispec.Descriptor, []byte, error) {
	if err := ref.check(true); err != nil {
		return ocispec.Descriptor{}, nil, wrap(err, "resolve", ref, "")
	}
	desc, body, err := c.fetchManifest(ctx, ref, ref.identifier(), ref.Digest, -1)
	if err != nil {
		return ocispec.Descriptor{}, nil, wrap(err, "resolve", ref, ref.Digest.String())
	}
	return desc, body, nil
}

// ResolveIndex picks platform's entry from the verified index body (whose
// descriptor is idxDesc) and fetches and verifies that manifest.
func (c *Client) ResolveIndex(ctx context.Context, ref Reference, idxDesc ocispec.Descriptor, body []byte, platform ocispec.Platform) (ocispec.Descriptor, []byte, error) {
	pick, err := SelectPlatform(body, platform)
	if err != nil {
		return ocispec.Descriptor{}, nil, wrap(err, "resolve", ref, idxDesc.Digest.String())
	}
	want := wantPlatform(platform)
	child, body, err := c.fetchManifest(ctx, ref, pick.Digest.String(), pick.Digest, pick.Size)
	if err != nil {
		return ocispec.Descriptor{}, nil, wrap(err, "resolve", ref, pick.Digest.String())
	}
	if !isManifest(child.MediaType) {
		return ocispec.Descriptor{}, nil, wrap(fmt.Errorf("index entry for %s is a %s, not an image manifest", platformString(want), child.MediaType), "resolve", ref, pick.Digest.String())
	}
	out := pick
	out.MediaType = child.MediaType
	if out.ArtifactType == "" {
		out.ArtifactType = child.ArtifactType
	}
	return out, body, nil
}

// SelectPlatform returns the first image-manifest entry of an index for
// platform (empty OS: linux; empty architecture: runtime.GOARCH). The error
// wraps ErrPlatform and lists the platforms the index has.
func SelectPlatform(index []byte, platform ocispec.Platform) (ocispec.Descriptor, error) {
	var idx ocispec.Index
	if err := json.Unmarshal(index, &idx); err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("decoding index: %w", err)
	}
	want := wantPlatform(platform)
	for _, m := range idx.Manifests {
		if isManifest(m.MediaType) && m.Platform != nil && platformMatches(want, *m.Platform) {
			if err := m.Digest.Validate(); err != nil {
				return ocispec.Descriptor{}, fmt.Errorf("index entry for %s has digest %q: %w", platformString(want), m.Digest, err)
			}
			return m, nil
		}
	}
	return ocispec.Descriptor{}, fmt.Errorf("%w %s: the index has %s", ErrPlatform, platformString(want), listPlatforms(idx.Manifests))
}

// PlatformString formats p as os/arch[/variant].
func PlatformString(p ocispec.Platform) string { return platformString(p) }

// IsIndex tells whether a media type is an OCI index or Docker manifest list.
func IsIndex(mediaType string) bool { return isIndex(mediaType) }

// fetchManifest GETs one manifest and verifies it against want (if set),
// the Docker-Content-Digest header (if sent) and wantSize (if >= 0). Without
// either digest the returned one is computed with the canonical algorithm.
func (c *Client) fetchManifest(ctx context.Context, ref Reference, ident string, want digest.Digest, wantSize int64) (ocispec.Descriptor, []byte, error) {
	var body []byte
	var header, contentType string
	err := c.retry(ctx, func() error {
		resp, err := c.get(ctx, ref, "/v2/"+ref.Repository+"/manifests/"+ident, http.Header{"Accept": {manifestAccept}})
		if err != nil {
			return err
		}
		if resp.StatusCode != http.StatusOK {
			return statusError(resp)
		}
		defer resp.Body.Close()
		if resp.ContentLength > MaxManifestSize {
			return fmt.Errorf("%w: manifest is %d bytes, limit %d", ErrTooLarge, resp.ContentLength, MaxManifestSize)
		}
		// Read one byte past the limit to tell "at the limit" from "over".
		body, err = io.ReadAll(io.LimitReader(resp.Body, MaxManifestSize+1))
		if err != nil {
			return transient{err: fmt.Errorf("reading manifest: %w", err)}
		}
		if len(body) > MaxManifestSize {
			return fmt.Errorf("%w: manifest is over %d bytes", ErrTooLarge, MaxManifestSize)
		}
		header = resp.Header.Get("Docker-Content-Digest")
		contentType = resp.Header.Get("Content-Type")
		return nil
	})
	if err != nil {
		return ocispec.Descriptor{}, nil, err
	}

	if wantSize >= 0 && int64(len(body)) != wantSize {
		return ocispec.Descriptor{}, nil, fmt.Errorf("%w: manifest: expected %d bytes, got %d", ErrSizeMismatch, wantSize, len(body))
	}
	dgst := want
	if header != "" {
		hd, err := digest.Parse(header)
		if err != nil {
			return ocispec.Descriptor{}, nil, fmt.Errorf("Docker-Content-Digest %q: %w", header, err)
		}
		if got := hd.Algorithm().FromBytes(body); got != hd {
			return ocispec.Descriptor{}, nil, fmt.Errorf("%w: manifest: Docker-Content-Digest says %s, body is %s", ErrDigestMismatch, hd, got)
		}
		if dgst == "" {
			dgst = hd
		}
	}
	if want != "" {
		if got := want.Algorithm().FromBytes(body); got != want {
			return ocispec.Descriptor{}, nil, fmt.Errorf("%w: manifest: expected %s, got %s", ErrDigestMismatch, want, got)
		}
	}
	if dgst == "" {
		dgst = digest.FromBytes(body)
	}

	mt, artifactType, err := manifestMediaType(body, contentType)
	if err != nil {
		return ocispec.Descriptor{}, nil, fmt.Errorf("manifest %s: %w", dgst, err)
	}
	return ocispec.Descriptor{MediaType: mt, ArtifactType: artifactType, Digest: dgst, Size: int64(len(body))}, body, nil
}

// manifestMediaType decides what a verified manifest body is. The body's own
// mediaType wins over Content-Type: the digest covers the body, not headers.
func manifestMediaType(body []byte, contentType string) (mt, artifactType string, err error) {
	var probe struct {
		SchemaVersion int             `json:"schemaVersion"`
		MediaType     string          `json:"mediaType"`
		ArtifactType  string          `json:"artifactType"`
		Manifests     json.RawMessage `json:"manifests"`
		Config        json.RawMessage `json:"config"`
	}
	if err := json.Unmarshal(body, &probe); err != nil {
		return "", "", fmt.Errorf("decoding: %w", err)
	}
	if probe.SchemaVersion != 2 {
		return "", "", fmt.Errorf("schemaVersion %d, want 2", probe.SchemaVersion)
	}
	mt = probe.MediaType
	if mt == "" {
		ct, _, _ := strings.Cut(contentType, ";")
		if ct = strings.ToLower(strings.TrimSpace(ct)); isIndex(ct) || isManifest(ct) {
			mt = ct
		}
	}
	if mt == "" {
		// OCI makes mediaType optional; the shape tells.
		switch {
		case probe.Manifests != nil && !bytes.Equal(probe.Manifests, []byte("null")):
			mt = ocispec.MediaTypeImageIndex
		case probe.Config != nil:
			mt = ocispec.MediaTypeImageManifest
		}
	}
	if !isIndex(mt) && !isManifest(mt) {
		return "", "", fmt.Errorf("unsupported media type %q", mt)
	}
	return mt, probe.ArtifactType, nil
}

func wantPlatform(p ocispec.Platform) ocispec.Platform {
	if p.OS == "" {
		p.OS = "linux"
	}
	if p.Architecture == "" {
		p.Architecture = runtime.GOARCH
	}
	return p
}

// platformMatches compares OS, architecture and variant, treating the
// default variant of an architecture as equal to none (arm64 is v8, amd64
// is v1), as containerd does.
func platformMatches(want, have ocispec.Platform) bool {
	return want.OS == have.OS && want.Architecture == have.Architecture &&
		normVariant(want.Architecture, want.Variant) == normVariant(have.Architecture, have.Variant)
}

func normVariant(arch, v string) string {
	switch {
	case arch == "arm64" && v == "":
		return "v8"
	case arch == "amd64" && v == "v1":
		return ""
	}
	return v
}

func platformString(p ocispec.Platform) string {
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

func listPlatforms(ms []ocispec.Descriptor) string {
	var names []string
	for _, m := range ms {
		if m.Platform == nil {
			names = append(names, "(no platform)")
			continue
		}
		names = append(names, platformString(*m.Platform))
	}
	if len(names) == 0 {
		return "no manifests"
	}
	return strings.Join(names, ", ")
}
