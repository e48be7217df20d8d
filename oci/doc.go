// Package oci resolves references, talks to registries, knows the boot-
// artifact formats and streams verified blobs into firmware pages.
//
// Nothing is built here yet; a later issue fills it in.
package oci
