package oci

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Referrers lists the manifests whose subject is subject in ref's
// repository, keeping those of artifactType (all when empty). It asks the
// referrers API and, when the registry does not offer it (404), reads the
// tag fallback ("sha256-<hex>") the distribution spec defines. No referrers
// is an empty list, not an error.
//
// The list itself is not content-addressed; callers verify what they fetch
// from it (signatures, digests).
func (c *Client) Referrers(ctx context.Context, ref Reference, subject digest.Digest, artifactType string) ([]ocispec.Descriptor, error) {
	repo := Reference{Registry: ref.Registry, Repository: ref.Repository}
	fail := func(err error) error { return wrap(err, "referrers", repo, subject.String()) }
	if err := repo.check(false); err != nil {
		return nil, fail(err)
	}
	if err := subject.Validate(); err != nil {
		return nil, fail(err)
	}
	path := "/v2/" + ref.Repository + "/referrers/" + subject.String()
	if artifactType != "" {
		path += "?artifactType=" + url.QueryEscape(artifactType)
	}
	var body []byte
	err := c.retry(ctx, func() error {
		resp, err := c.get(ctx, ref, path, http.Header{"Accept": {ocispec.MediaTypeImageIndex}})
		if err != nil {
			return err
		}
		if resp.StatusCode != http.StatusOK {
			return statusError(resp)
		}
		defer resp.Body.Close()
		body, err = io.ReadAll(io.LimitReader(resp.Body, MaxManifestSize+1))
		if err != nil {
			return transient{err: fmt.Errorf("reading referrers: %w", err)}
		}
		if len(body) > MaxManifestSize {
			return fmt.Errorf("%w: referrers list is over %d bytes", ErrTooLarge, MaxManifestSize)
		}
		return nil
	})
	if errors.Is(err, ErrNotFound) {
		// No referrers API: the fallback tag holds an index of referrers.
		tagRef := Reference{Registry: ref.Registry, Repository: ref.Repository, Tag: subject.Algorithm().String() + "-" + subject.Encoded()}
		var desc ocispec.Descriptor
		desc, body, err = c.FetchManifest(ctx, tagRef)
		if errors.Is(err, ErrNotFound) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		if !isIndex(desc.MediaType) {
			return nil, fail(fmt.Errorf("referrers tag %s is a %s, not an index", tagRef.Tag, desc.MediaType))
		}
	} else if err != nil {
		return nil, fail(err)
	}
	var idx ocispec.Index
	if err := json.Unmarshal(body, &idx); err != nil {
		return nil, fail(fmt.Errorf("decoding referrers: %w", err))
	}
	var out []ocispec.Descriptor
	for _, d := range idx.Manifests {
		// A registry may ignore the filter; apply it again.
		if artifactType == "" || d.ArtifactType == artifactType {
			out = append(out, d)
		}
	}
	return out, nil
}
