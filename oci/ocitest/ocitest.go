// Package ocitest starts in-process registries for tests of the OCI client
// and the host commands: go-containerregistry's in-memory registry behind
// the authentication a test asks for.
package ocitest

import (
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/google/go-containerregistry/pkg/registry"
)

// BasicAuthRegistry serves an in-memory registry that demands HTTP Basic
// credentials user:pass, and returns its host:port. It stops with the test.
func BasicAuthRegistry(t testing.TB, user, pass string) string {
	t.Helper()
	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != user || p != pass {
			w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		reg.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}
