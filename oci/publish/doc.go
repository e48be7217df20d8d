// Package publish is the host side of ociboot's OCI support: it uploads
// blobs and manifests, builds and pushes boot artifacts, signs them the way
// cosign does, and reads registry credentials from the docker config file.
// The loader never links it; it shares oci's client and authentication.
package publish
