package publish

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"

	"github.com/ociboot/ociboot/oci"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// PushBlob uploads data to ref's repository unless the registry has it,
// with a POST and one monolithic PUT, and returns its descriptor.
func PushBlob(ctx context.Context, c *oci.Client, ref oci.Reference, mediaType string, data []byte) (ocispec.Descriptor, error) {
	d := ocispec.Descriptor{MediaType: mediaType, Digest: digest.FromBytes(data), Size: int64(len(data))}
	fail := func(err error) (ocispec.Descriptor, error) {
		return ocispec.Descriptor{}, fmt.Errorf("push blob %s/%s@%s: %w", ref.Registry, ref.Repository, d.Digest, err)
	}
	blobPath := "/v2/" + ref.Repository + "/blobs/" + d.Digest.String()
	resp, err := c.Do(ctx, http.MethodHead, ref, "pull,push", blobPath, nil, nil)
	if err != nil {
		return fail(err)
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		return d, nil
	}
	resp, err = c.Do(ctx, http.MethodPost, ref, "pull,push", "/v2/"+ref.Repository+"/blobs/uploads/", nil, emptyBody)
	if err != nil {
		return fail(err)
	}
	if resp.StatusCode != http.StatusAccepted {
		return fail(fmt.Errorf("starting upload: HTTP %d: %w", resp.StatusCode, oci.ResponseError(resp)))
	}
	resp.Body.Close()
	loc, err := resp.Request.URL.Parse(resp.Header.Get("Location"))
	if err != nil || resp.Header.Get("Location") == "" {
		return fail(fmt.Errorf("upload Location %q", resp.Header.Get("Location")))
	}
	q := loc.Query()
	q.Set("digest", d.Digest.String())
	loc.RawQuery = q.Encode()
	hdr := http.Header{"Content-Type": {"application/octet-stream"}}
	resp, err = c.Do(ctx, http.MethodPut, ref, "pull,push", loc.String(), hdr, bodyOf(data))
	if err != nil {
		return fail(err)
	}
	if resp.StatusCode != http.StatusCreated {
		return fail(fmt.Errorf("finishing upload: HTTP %d: %w", resp.StatusCode, oci.ResponseError(resp)))
	}
	resp.Body.Close()
	return d, nil
}

func emptyBody() (io.Reader, int64) { return http.NoBody, 0 }

func bodyOf(data []byte) func() (io.Reader, int64) {
	return func() (io.Reader, int64) { return bytes.NewReader(data), int64(len(data)) }
}

// PushManifest uploads a manifest or index under ref's tag (or, with no
// tag, its digest) and returns its descriptor. subjectHonoured tells
// whether the registry processed a subject field (OCI-Subject header).
func PushManifest(ctx context.Context, c *oci.Client, ref oci.Reference, mediaType string, body []byte) (desc ocispec.Descriptor, subjectHonoured bool, err error) {
	desc = ocispec.Descriptor{MediaType: mediaType, Digest: digest.FromBytes(body), Size: int64(len(body))}
	ident := ref.Tag
	if ident == "" {
		ident = desc.Digest.String()
	}
	hdr := http.Header{"Content-Type": {mediaType}}
	resp, err := c.Do(ctx, http.MethodPut, ref, "pull,push", "/v2/"+ref.Repository+"/manifests/"+url.PathEscape(ident), hdr, bodyOf(body))
	if err != nil {
		return desc, false, fmt.Errorf("push manifest %s/%s:%s: %w", ref.Registry, ref.Repository, ident, err)
	}
	if resp.StatusCode != http.StatusCreated {
		return desc, false, fmt.Errorf("push manifest %s/%s:%s: HTTP %d: %w", ref.Registry, ref.Repository, ident, resp.StatusCode, oci.ResponseError(resp))
	}
	resp.Body.Close()
	if got := resp.Header.Get("Docker-Content-Digest"); got != "" && got != desc.Digest.String() {
		return desc, false, fmt.Errorf("push manifest %s/%s:%s: registry stored %s, we sent %s", ref.Registry, ref.Repository, ident, got, desc.Digest)
	}
	return desc, resp.Header.Get("OCI-Subject") != "", nil
}

// BootImage is one platform's boot files.
type BootImage struct {
	Platform *ocispec.Platform // nil: no platform (a single plain manifest)
	Kernel   []byte
	Initrds  [][]byte
	Cmdline  string
	UKI      []byte // instead of Kernel and Initrds
	Title    string
	Version  string
}

// PushBoot pushes images as ociboot artifacts under ref's tag: one
// manifest when there is a single image without a platform, else an index
// with one manifest per platform. It returns what the tag names.
func PushBoot(ctx context.Context, c *oci.Client, ref oci.Reference, images []BootImage) (ocispec.Descriptor, error) {
	if len(images) == 0 {
		return ocispec.Descriptor{}, fmt.Errorf("push %s: nothing to push", ref)
	}
	repo := oci.Reference{Registry: ref.Registry, Repository: ref.Repository}
	if len(images) == 1 && images[0].Platform == nil {
		body, err := bootManifest(ctx, c, repo, images[0])
		if err != nil {
			return ocispec.Descriptor{}, err
		}
		d, _, err := PushManifest(ctx, c, ref, ocispec.MediaTypeImageManifest, body)
		return d, err
	}
	idx := ocispec.Index{
		Versioned: specsV2,
		MediaType: ocispec.MediaTypeImageIndex,
	}
	seen := map[string]bool{}
	for _, img := range images {
		if img.Platform == nil {
			return ocispec.Descriptor{}, fmt.Errorf("push %s: with several images each needs a platform", ref)
		}
		p := oci.PlatformString(*img.Platform)
		if seen[p] {
			return ocispec.Descriptor{}, fmt.Errorf("push %s: platform %s given twice", ref, p)
		}
		seen[p] = true
		body, err := bootManifest(ctx, c, repo, img)
		if err != nil {
			return ocispec.Descriptor{}, err
		}
		d, _, err := PushManifest(ctx, c, repo, ocispec.MediaTypeImageManifest, body)
		if err != nil {
			return ocispec.Descriptor{}, err
		}
		plat := *img.Platform
		d.Platform = &plat
		d.ArtifactType = oci.ArtifactType
		idx.Manifests = append(idx.Manifests, d)
	}
	body, err := json.Marshal(idx)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	d, _, err := PushManifest(ctx, c, ref, ocispec.MediaTypeImageIndex, body)
	return d, err
}

// bootManifest uploads one image's blobs and returns its manifest.
func bootManifest(ctx context.Context, c *oci.Client, repo oci.Reference, img BootImage) ([]byte, error) {
	if (img.UKI == nil) == (img.Kernel == nil) {
		return nil, fmt.Errorf("push %s: give a kernel or a UKI (exactly one)", repo.Name())
	}
	if img.UKI != nil && len(img.Initrds) > 0 {
		return nil, fmt.Errorf("push %s: a UKI carries its own initrd", repo.Name())
	}
	m := ocispec.Manifest{
		Versioned:    specsV2,
		MediaType:    ocispec.MediaTypeImageManifest,
		ArtifactType: oci.ArtifactType,
		Config:       ocispec.DescriptorEmptyJSON,
		Annotations:  map[string]string{},
	}
	if _, err := PushBlob(ctx, c, repo, ocispec.MediaTypeEmptyJSON, ocispec.DescriptorEmptyJSON.Data); err != nil {
		return nil, err
	}
	m.Config.Data = nil // registries need not accept embedded data
	add := func(mt string, data []byte, title string) error {
		d, err := PushBlob(ctx, c, repo, mt, data)
		if err != nil {
			return err
		}
		if title != "" {
			d.Annotations = map[string]string{ocispec.AnnotationTitle: title}
		}
		m.Layers = append(m.Layers, d)
		return nil
	}
	if img.UKI != nil {
		if err := add(oci.MediaTypeUKI, img.UKI, "uki.efi"); err != nil {
			return nil, err
		}
	} else {
		if err := add(oci.MediaTypeKernel, img.Kernel, "kernel"); err != nil {
			return nil, err
		}
		for i, rd := range img.Initrds {
			if err := add(oci.MediaTypeInitrd, rd, "initrd."+strconv.Itoa(i)); err != nil {
				return nil, err
			}
		}
	}
	if img.Cmdline != "" {
		// A layer for loaders that read blobs, an annotation for people
		// and tools that read manifests.
		if err := add(oci.MediaTypeCmdline, []byte(img.Cmdline), "cmdline"); err != nil {
			return nil, err
		}
		m.Annotations[oci.AnnotationCmdline] = img.Cmdline
	}
	if img.Title != "" {
		m.Annotations[ocispec.AnnotationTitle] = img.Title
	}
	if img.Version != "" {
		m.Annotations[ocispec.AnnotationVersion] = img.Version
	}
	if len(m.Annotations) == 0 {
		m.Annotations = nil
	}
	return json.Marshal(m)
}
