// Package oci reads OCI references and fetches manifests and blobs from
// OCI distribution registries, verifying every byte against its digest.
//
// ParseReference reads "registry/repository[:tag][@digest]" the way oras
// and crane do. A Client, built on a caller-supplied http.Client (so the
// loader can dial through its own TCP stack), resolves a reference to an
// image manifest for one platform (Resolve) and streams blobs into an
// io.WriterAt (FetchBlob), resuming dropped transfers with Range requests.
// It handles anonymous and basic-authenticated bearer tokens and Basic
// auth, follows redirects to blob storage without sending credentials
// there, and enforces size limits before anything is allocated or written.
//
// Every failure is an *Error naming the registry, repository and digest;
// errors.Is tells the kinds apart (ErrDigestMismatch, ErrSizeMismatch,
// ErrTooLarge, ErrNotFound, ErrUnauthorized, ErrPlatform). A nil error from
// FetchBlob means the destination holds exactly the verified bytes.
//
// On top of the client, Detect finds the boot files in an artifact (our
// own format, the netboot OCI artifact convention, LinuxKit's /kernel, or
// kernel and initrd by path inside ordinary image layers, as bootc images
// have them), VerifySignature checks keyed cosign signatures (the .sig tag
// and sigstore bundle referrers, against a public key, without a
// transparency log), and the Fetcher actor turns a reference into a
// BootSet: kernel and initrd in pages from an Allocator, every byte
// verified, the signature policy applied. Nothing unverified leaves it.
//
// The package is compiled into the EFI loader: it uses only the standard
// library, image-spec, go-digest and klauspost/compress (zstd layers), and
// touches no file system. Its only goroutine is the layer walker, which
// reads a layer from a pipe while the fetcher streams it in.
package oci
