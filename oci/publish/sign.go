package publish

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"

	"github.com/ociboot/ociboot/oci"
	digest "github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

var specsV2 = specs.Versioned{SchemaVersion: 2}

// ParsePrivateKey reads a PEM ECDSA P-256 private key ("EC PRIVATE KEY" or
// PKCS#8 "PRIVATE KEY"). cosign's own encrypted key format is not read.
func ParsePrivateKey(data []byte) (*ecdsa.PrivateKey, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("private key: no PEM block")
	}
	var key any
	var err error
	switch block.Type {
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("private key: PEM block %q (cosign's encrypted keys are not supported; want EC PRIVATE KEY or PRIVATE KEY)", block.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("private key: %w", err)
	}
	k, ok := key.(*ecdsa.PrivateKey)
	if !ok || k.Curve != elliptic.P256() {
		return nil, fmt.Errorf("private key: a %T, want ECDSA P-256", key)
	}
	return k, nil
}

// SimpleSigningPayload is what cosign signs for subject in repository name.
func SimpleSigningPayload(name string, subject digest.Digest) []byte {
	out, err := json.Marshal(oci.NewSimpleSigning(name, subject))
	if err != nil {
		panic(err) // strings only: cannot fail
	}
	return out
}

// Sign resolves ref (without choosing a platform: an index is signed as a
// whole) and writes a cosign signature of it with key under the
// sha256-<hex>.sig tag, replacing what the tag held. It returns the signed
// digest and the signature's reference.
func Sign(ctx context.Context, c *oci.Client, ref oci.Reference, key *ecdsa.PrivateKey) (digest.Digest, oci.Reference, error) {
	top, _, err := c.FetchManifest(ctx, ref)
	if err != nil {
		return "", oci.Reference{}, err
	}
	payload := SimpleSigningPayload(ref.Name(), top.Digest)
	h := sha256.Sum256(payload)
	sig, err := ecdsa.SignASN1(rand.Reader, key, h[:])
	if err != nil {
		return "", oci.Reference{}, fmt.Errorf("signing: %w", err)
	}
	repo := oci.Reference{Registry: ref.Registry, Repository: ref.Repository}
	layer, err := PushBlob(ctx, c, repo, oci.MediaTypeSimpleSigning, payload)
	if err != nil {
		return "", oci.Reference{}, err
	}
	layer.Annotations = map[string]string{oci.AnnotationSignature: base64.StdEncoding.EncodeToString(sig)}
	// An image config naming the payload as its one layer, as cosign
	// writes it, so image tools can read the signature image.
	cfg, _ := json.Marshal(map[string]any{
		"architecture": "", "os": "", "config": map[string]any{},
		"rootfs": map[string]any{"type": "layers", "diff_ids": []string{layer.Digest.String()}},
	})
	cfgDesc, err := PushBlob(ctx, c, repo, ocispec.MediaTypeImageConfig, cfg)
	if err != nil {
		return "", oci.Reference{}, err
	}
	m := ocispec.Manifest{Versioned: specsV2, MediaType: ocispec.MediaTypeImageManifest, Config: cfgDesc, Layers: []ocispec.Descriptor{layer}}
	body, _ := json.Marshal(m)
	sigRef := oci.Reference{Registry: ref.Registry, Repository: ref.Repository, Tag: oci.SigTag(top.Digest) + ".sig"}
	if _, _, err := PushManifest(ctx, c, sigRef, ocispec.MediaTypeImageManifest, body); err != nil {
		return "", oci.Reference{}, err
	}
	return top.Digest, sigRef, nil
}

// AttachBundle signs ref's digest with key as a sigstore bundle (message
// signature form, no certificate or transparency log entry) and attaches
// it as a referrer; where the registry has no referrers API it also
// updates the sha256-<hex> fallback tag's index.
func AttachBundle(ctx context.Context, c *oci.Client, ref oci.Reference, key *ecdsa.PrivateKey) (digest.Digest, error) {
	top, _, err := c.FetchManifest(ctx, ref)
	if err != nil {
		return "", err
	}
	sum, _ := hex.DecodeString(top.Digest.Encoded())
	sig, err := ecdsa.SignASN1(rand.Reader, key, sum)
	if err != nil {
		return "", fmt.Errorf("signing: %w", err)
	}
	b, _ := json.Marshal(map[string]any{
		"mediaType":            oci.MediaTypeSigstoreBundle,
		"verificationMaterial": map[string]any{"publicKey": map[string]any{"hint": ""}},
		"messageSignature": map[string]any{
			"messageDigest": map[string]any{"algorithm": "SHA2_256", "digest": sum},
			"signature":     sig,
		},
	})
	return top.Digest, AttachReferrer(ctx, c, ref, top, oci.MediaTypeSigstoreBundle, oci.MediaTypeSigstoreBundle, b)
}

// AttachReferrer pushes a manifest of artifactType with data as its one
// layer and subject as its subject, keeping the referrers fallback tag up
// to date when the registry does not process subjects itself.
func AttachReferrer(ctx context.Context, c *oci.Client, ref oci.Reference, subject ocispec.Descriptor, artifactType, layerType string, data []byte) error {
	repo := oci.Reference{Registry: ref.Registry, Repository: ref.Repository}
	layer, err := PushBlob(ctx, c, repo, layerType, data)
	if err != nil {
		return err
	}
	if _, err := PushBlob(ctx, c, repo, ocispec.MediaTypeEmptyJSON, ocispec.DescriptorEmptyJSON.Data); err != nil {
		return err
	}
	cfg := ocispec.DescriptorEmptyJSON
	cfg.Data = nil
	subj := ocispec.Descriptor{MediaType: subject.MediaType, Digest: subject.Digest, Size: subject.Size}
	m := ocispec.Manifest{Versioned: specsV2, MediaType: ocispec.MediaTypeImageManifest, ArtifactType: artifactType,
		Config: cfg, Layers: []ocispec.Descriptor{layer}, Subject: &subj}
	body, _ := json.Marshal(m)
	d, honoured, err := PushManifest(ctx, c, repo, ocispec.MediaTypeImageManifest, body)
	if err != nil {
		return err
	}
	if honoured {
		return nil
	}
	// The fallback: an index tagged sha256-<hex> listing the referrers.
	tagRef := oci.Reference{Registry: ref.Registry, Repository: ref.Repository, Tag: oci.SigTag(subject.Digest)}
	idx := ocispec.Index{Versioned: specsV2, MediaType: ocispec.MediaTypeImageIndex}
	if desc, old, err := c.FetchManifest(ctx, tagRef); err == nil && oci.IsIndex(desc.MediaType) {
		if err := json.Unmarshal(old, &idx); err != nil {
			return fmt.Errorf("referrers tag %s: %w", tagRef, err)
		}
	} else if err != nil && !errors.Is(err, oci.ErrNotFound) {
		return err
	}
	d.ArtifactType = artifactType
	idx.Manifests = append(idx.Manifests, d)
	ib, _ := json.Marshal(idx)
	_, _, err = PushManifest(ctx, c, tagRef, ocispec.MediaTypeImageIndex, ib)
	return err
}
