package oci

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"strconv"
	"strings"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Keyed cosign signatures, in the two places cosign puts them.
const (
	// The ".sig" tag scheme: an image manifest tagged sha256-<hex>.sig
	// whose layers are simple-signing payloads, each with its signature
	// in an annotation.
	MediaTypeSimpleSigning = "application/vnd.dev.cosign.simplesigning.v1+json"
	AnnotationSignature    = "dev.cosignproject.cosign/signature"
	// CosignSignatureType is critical.type of a simple-signing payload.
	CosignSignatureType = "cosign container image signature"
	// A sigstore bundle attached as a referrer of the artifact.
	MediaTypeSigstoreBundle = "application/vnd.dev.sigstore.bundle.v0.3+json"
)

// maxSignatureBlob bounds a payload or bundle we download.
const maxSignatureBlob = 1 << 20

// Sentinels for signature checks.
var (
	ErrUnsigned     = errors.New("no signature")
	ErrBadSignature = errors.New("bad signature")
)

// Policy says what the loader does about signatures.
type Policy int

const (
	PolicyOff     Policy = iota // do not look
	PolicyWarn                  // look, report, boot anyway
	PolicyRequire               // boot only a correctly signed artifact
)

// ParsePolicy reads "off", "warn" or "require".
func ParsePolicy(s string) (Policy, error) {
	switch s {
	case "", "off":
		return PolicyOff, nil
	case "warn":
		return PolicyWarn, nil
	case "require":
		return PolicyRequire, nil
	}
	return 0, fmt.Errorf("oci: signature policy %q is not off, warn or require", s)
}

func (p Policy) String() string {
	switch p {
	case PolicyOff:
		return "off"
	case PolicyWarn:
		return "warn"
	case PolicyRequire:
		return "require"
	}
	return "Policy(" + strconv.Itoa(int(p)) + ")"
}

// ParsePublicKey reads a PEM "PUBLIC KEY" (PKIX) holding an ECDSA P-256 key,
// as cosign generate-key-pair writes it.
func ParsePublicKey(data []byte) (*ecdsa.PublicKey, error) {
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "PUBLIC KEY" {
		return nil, errors.New("oci: public key: no PEM PUBLIC KEY block")
	}
	k, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("oci: public key: %w", err)
	}
	ek, ok := k.(*ecdsa.PublicKey)
	if !ok || ek.Curve != elliptic.P256() {
		return nil, fmt.Errorf("oci: public key: a %T, want ECDSA P-256", k)
	}
	return ek, nil
}

// SignatureStatus is the outcome of looking for signatures.
type SignatureStatus struct {
	Checked  bool   // signatures were looked for
	Verified bool   // one verified with the key
	Scheme   string // "cosign .sig tag" or "sigstore bundle" when Verified
	Err      error  // why not Verified (wraps ErrUnsigned or ErrBadSignature)
}

func (s SignatureStatus) String() string {
	switch {
	case !s.Checked:
		return "not checked"
	case s.Verified:
		return "verified (" + s.Scheme + ")"
	}
	return "NOT verified: " + s.Err.Error()
}

// SimpleSigning is the payload cosign signs in the .sig tag scheme. It
// lives here, beside its verification, so that what publish signs and what
// the loader checks cannot drift apart.
type SimpleSigning struct {
	Critical struct {
		Identity struct {
			DockerReference string `json:"docker-reference"`
		} `json:"identity"`
		Image struct {
			DockerManifestDigest string `json:"docker-manifest-digest"`
		} `json:"image"`
		Type string `json:"type"`
	} `json:"critical"`
	Optional map[string]any `json:"optional"`
}

// NewSimpleSigning returns the payload that signs subject in repository
// name (a Reference's Name).
func NewSimpleSigning(name string, subject digest.Digest) SimpleSigning {
	var p SimpleSigning
	p.Critical.Identity.DockerReference = name
	p.Critical.Image.DockerManifestDigest = subject.String()
	p.Critical.Type = CosignSignatureType
	return p
}

// VerifySignature looks for a keyed cosign signature of the manifest or
// index subject in ref's repository: first the sha256-<hex>.sig tag, then
// sigstore bundles among subject's referrers. It succeeds when any one
// verifies with pub. No transparency log or certificate is consulted: the
// key from the boot plan is the only trust anchor.
//
// The error wraps ErrUnsigned when there is nothing to check and
// ErrBadSignature when signatures exist and none verifies; registry
// failures are returned as they are.
func (c *Client) VerifySignature(ctx context.Context, ref Reference, subject digest.Digest, pub *ecdsa.PublicKey) SignatureStatus {
	st := SignatureStatus{Checked: true}
	if pub == nil {
		st.Err = errors.New("no public key configured")
		return st
	}
	if subject.Algorithm() != digest.SHA256 {
		st.Err = fmt.Errorf("%w: subject %s is not sha256", ErrUnsigned, subject)
		return st
	}
	var bad []string
	found, err := c.verifySigTag(ctx, ref, subject, pub, &bad)
	if err == nil && found {
		st.Verified, st.Scheme = true, "cosign .sig tag"
		return st
	}
	if err != nil {
		st.Err = err
		return st
	}
	found, err = c.verifyBundles(ctx, ref, subject, pub, &bad)
	if err == nil && found {
		st.Verified, st.Scheme = true, "sigstore bundle"
		return st
	}
	switch {
	case err != nil:
		st.Err = err
	case len(bad) > 0:
		st.Err = fmt.Errorf("%w for %s@%s: %s", ErrBadSignature, ref.Name(), subject, strings.Join(bad, "; "))
	default:
		st.Err = fmt.Errorf("%w for %s@%s: no %s.sig tag and no sigstore bundle referrer", ErrUnsigned, ref.Name(), subject, SigTag(subject))
	}
	return st
}

// SigTag is the tag cosign stores subject's signatures under, without the
// ".sig" suffix: "sha256-<hex>".
func SigTag(subject digest.Digest) string {
	return subject.Algorithm().String() + "-" + subject.Encoded()
}

func (c *Client) smallBlob(ctx context.Context, ref Reference, d ocispec.Descriptor) ([]byte, error) {
	if d.Size < 0 || d.Size > maxSignatureBlob {
		return nil, fmt.Errorf("%w: signature blob %s is %d bytes, limit %d", ErrTooLarge, d.Digest, d.Size, maxSignatureBlob)
	}
	buf := make(Buffer, d.Size)
	if err := c.FetchBlob(ctx, ref, d, buf); err != nil {
		return nil, err
	}
	return buf, nil
}

// verifySigTag reports whether a .sig tag signature verified; failed
// candidates are described in bad.
func (c *Client) verifySigTag(ctx context.Context, ref Reference, subject digest.Digest, pub *ecdsa.PublicKey, bad *[]string) (bool, error) {
	tagRef := Reference{Registry: ref.Registry, Repository: ref.Repository, Tag: SigTag(subject) + ".sig"}
	desc, body, err := c.FetchManifest(ctx, tagRef)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if !isManifest(desc.MediaType) {
		*bad = append(*bad, fmt.Sprintf("tag %s is a %s", tagRef.Tag, desc.MediaType))
		return false, nil
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(body, &m); err != nil {
		*bad = append(*bad, fmt.Sprintf("tag %s: %v", tagRef.Tag, err))
		return false, nil
	}
	for _, l := range m.Layers {
		if l.MediaType != MediaTypeSimpleSigning {
			continue
		}
		sig, err := base64.StdEncoding.DecodeString(l.Annotations[AnnotationSignature])
		if err != nil || len(sig) == 0 {
			*bad = append(*bad, fmt.Sprintf("payload %s: no base64 signature annotation", l.Digest))
			continue
		}
		payload, err := c.smallBlob(ctx, ref, l)
		if err != nil {
			return false, err
		}
		h := sha256.Sum256(payload)
		if !ecdsa.VerifyASN1(pub, h[:], sig) {
			*bad = append(*bad, fmt.Sprintf("payload %s: signature does not verify with the key", l.Digest))
			continue
		}
		var ss SimpleSigning
		if err := json.Unmarshal(payload, &ss); err != nil {
			*bad = append(*bad, fmt.Sprintf("payload %s: %v", l.Digest, err))
			continue
		}
		if ss.Critical.Type != CosignSignatureType {
			*bad = append(*bad, fmt.Sprintf("payload %s: type %q", l.Digest, ss.Critical.Type))
			continue
		}
		if ss.Critical.Image.DockerManifestDigest != subject.String() {
			*bad = append(*bad, fmt.Sprintf("payload %s signs %s, not this artifact", l.Digest, ss.Critical.Image.DockerManifestDigest))
			continue
		}
		return true, nil
	}
	if len(*bad) == 0 {
		*bad = append(*bad, fmt.Sprintf("tag %s has no simple-signing layer", tagRef.Tag))
	}
	return false, nil
}

// bundle is the part of a sigstore bundle (v0.3) a keyed verification
// reads.
type bundle struct {
	MediaType        string `json:"mediaType"`
	MessageSignature *struct {
		MessageDigest struct {
			Algorithm string `json:"algorithm"`
			Digest    []byte `json:"digest"`
		} `json:"messageDigest"`
		Signature []byte `json:"signature"`
	} `json:"messageSignature"`
	DSSEEnvelope *struct {
		Payload     []byte `json:"payload"`
		PayloadType string `json:"payloadType"`
		Signatures  []struct {
			Sig []byte `json:"sig"`
		} `json:"signatures"`
	} `json:"dsseEnvelope"`
}

func (c *Client) verifyBundles(ctx context.Context, ref Reference, subject digest.Digest, pub *ecdsa.PublicKey, bad *[]string) (bool, error) {
	// All referrers, filtered on the manifests themselves: some registries
	// report the config media type as a referrer's artifactType.
	refs, err := c.Referrers(ctx, ref, subject, "")
	if err != nil {
		return false, err
	}
	for _, r := range refs {
		if r.ArtifactType != "" && r.ArtifactType != MediaTypeSigstoreBundle && r.ArtifactType != ocispec.MediaTypeEmptyJSON {
			continue
		}
		mref := Reference{Registry: ref.Registry, Repository: ref.Repository, Digest: r.Digest}
		_, body, err := c.FetchManifest(ctx, mref)
		if err != nil {
			return false, err
		}
		var m ocispec.Manifest
		if err := json.Unmarshal(body, &m); err != nil {
			*bad = append(*bad, fmt.Sprintf("bundle manifest %s: %v", r.Digest, err))
			continue
		}
		if m.ArtifactType != MediaTypeSigstoreBundle || m.Subject == nil || m.Subject.Digest != subject {
			continue
		}
		for _, l := range m.Layers {
			if l.MediaType != MediaTypeSigstoreBundle {
				continue
			}
			data, err := c.smallBlob(ctx, ref, l)
			if err != nil {
				return false, err
			}
			if why := verifyBundle(data, subject, pub); why != "" {
				*bad = append(*bad, fmt.Sprintf("bundle %s: %s", l.Digest, why))
				continue
			}
			return true, nil
		}
	}
	return false, nil
}

// verifyBundle checks a bundle's signature over subject with pub; it
// returns why not, or "".
func verifyBundle(data []byte, subject digest.Digest, pub *ecdsa.PublicKey) string {
	var b bundle
	if err := json.Unmarshal(data, &b); err != nil {
		return err.Error()
	}
	want, _ := hex.DecodeString(subject.Encoded())
	switch {
	case b.MessageSignature != nil:
		// The signed message is the manifest; its SHA-256 is the subject.
		ms := b.MessageSignature
		if ms.MessageDigest.Algorithm != "SHA2_256" || !bytes.Equal(ms.MessageDigest.Digest, want) {
			return fmt.Sprintf("message digest %s:%x is not the artifact's", ms.MessageDigest.Algorithm, ms.MessageDigest.Digest)
		}
		if !ecdsa.VerifyASN1(pub, want, ms.Signature) {
			return "message signature does not verify with the key"
		}
		return ""
	case b.DSSEEnvelope != nil:
		env := b.DSSEEnvelope
		pae := fmt.Sprintf("DSSEv1 %d %s %d %s", len(env.PayloadType), env.PayloadType, len(env.Payload), env.Payload)
		h := sha256.Sum256([]byte(pae))
		ok := false
		for _, s := range env.Signatures {
			ok = ok || ecdsa.VerifyASN1(pub, h[:], s.Sig)
		}
		if !ok {
			return "DSSE signature does not verify with the key"
		}
		var st struct {
			Subject []struct {
				Digest map[string]string `json:"digest"`
			} `json:"subject"`
		}
		if err := json.Unmarshal(env.Payload, &st); err != nil {
			return "DSSE payload: " + err.Error()
		}
		for _, s := range st.Subject {
			if s.Digest["sha256"] == subject.Encoded() {
				return ""
			}
		}
		return "DSSE statement does not name the artifact"
	}
	return "neither a message signature nor a DSSE envelope"
}
