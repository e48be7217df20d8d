package services

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// tlsServer is an HTTPS server on loopback with HTTP/2 on. Its certificate
// (httptest's) is for example.com and 127.0.0.1.
func tlsServer(t testing.TB) (*httptest.Server, []byte) {
	ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hello over "+r.Proto)
	}))
	ts.EnableHTTP2 = true
	ts.Config.ErrorLog = log.New(io.Discard, "", 0) // refused handshakes are the point
	ts.StartTLS()
	t.Cleanup(ts.Close)
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ts.Certificate().Raw})
	return ts, ca
}

// loopbackDial sends every connection to the server, whatever the name,
// as the stack would after resolving it; it counts the dials.
func loopbackDial(ts *httptest.Server, n *atomic.Int32) DialFunc {
	return func(ctx context.Context, network, address string) (net.Conn, error) {
		if network != "tcp" {
			return nil, errors.New("test dial: network " + network)
		}
		n.Add(1)
		var d net.Dialer
		return d.DialContext(ctx, "tcp", ts.Listener.Addr().String())
	}
}

func get(c *http.Client, url string) (string, *http.Response, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	resp, err := c.Do(req)
	if err != nil {
		return "", nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), resp, err
}

func TestHTTPClientWithOperatorCA(t *testing.T) {
	ts, ca := tlsServer(t)
	var dials atomic.Int32
	for _, only := range []bool{false, true} {
		c, err := NewHTTPClient(loopbackDial(ts, &dials), HTTPConfig{CACerts: ca, OnlyCACerts: only})
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 2; i++ {
			body, resp, err := get(c, "https://example.com/blob")
			if err != nil {
				t.Fatalf("only=%v: %v", only, err)
			}
			if body != "hello over HTTP/2.0" || resp.TLS == nil {
				t.Errorf("only=%v: body %q", only, body)
			}
		}
	}
	// Keep-alive: one connection per client for two requests each.
	if n := dials.Load(); n != 2 {
		t.Errorf("%d dials for 2 clients × 2 requests", n)
	}
	c, _ := NewHTTPClient(loopbackDial(ts, &dials), HTTPConfig{CACerts: ca, DisableHTTP2: true})
	if body, _, err := get(c, "https://example.com/"); err != nil || body != "hello over HTTP/1.1" {
		t.Errorf("HTTP/2 disabled: %q, %v", body, err)
	}
}

func TestHTTPClientUnknownAuthority(t *testing.T) {
	ts, _ := tlsServer(t)
	var dials atomic.Int32
	c, err := NewHTTPClient(loopbackDial(ts, &dials), HTTPConfig{})
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = get(c, "https://example.com/")
	var ua x509.UnknownAuthorityError
	if !errors.As(err, &ua) {
		t.Fatalf("err = %v (%T), want an x509.UnknownAuthorityError in the chain", err, err)
	}
	t.Logf("as the caller sees it: %v", err)
}

func TestHTTPClientWrongHostName(t *testing.T) {
	ts, ca := tlsServer(t)
	var dials atomic.Int32
	c, err := NewHTTPClient(loopbackDial(ts, &dials), HTTPConfig{CACerts: ca})
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = get(c, "https://registry.test/")
	var he x509.HostnameError
	if !errors.As(err, &he) || he.Host != "registry.test" {
		t.Fatalf("err = %v (%T), want an x509.HostnameError for registry.test", err, err)
	}
	t.Logf("as the caller sees it: %v", err)
}

func TestCertPool(t *testing.T) {
	if _, err := CertPool(nil, true); err == nil {
		t.Error("only operator CAs, none given: accepted")
	}
	if _, err := CertPool([]byte("not PEM"), false); err == nil {
		t.Error("garbage CA bytes accepted")
	}
	bad := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{1, 2, 3}})
	if _, err := CertPool(bad, false); err == nil || !strings.Contains(err.Error(), "CA certificate 1") {
		t.Errorf("unparsable certificate: %v", err)
	}
	// The fallback bundle holds the public roots: look for a well-known one.
	pool, err := CertPool(nil, false)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, s := range pool.Subjects() {
		if strings.Contains(string(s), "ISRG Root X1") {
			found = true
		}
	}
	if !found {
		t.Error("fallback bundle has no ISRG Root X1")
	}
	_, ca := tlsServer(t)
	if _, err := CertPool(ca, false); err != nil {
		t.Error(err)
	}
	if _, err := NewHTTPClient(nil, HTTPConfig{}); err == nil {
		t.Error("nil dial accepted")
	}
}

func BenchmarkCertPoolBundle(b *testing.B) {
	// The first call parses the bundle; report it once.
	start := time.Now()
	if _, err := bundleRoots(); err != nil {
		b.Fatal(err)
	}
	b.Logf("parsing the fallback bundle: %v", time.Since(start))
	_, ca := tlsServer(b)
	for b.Loop() {
		if _, err := CertPool(ca, false); err != nil {
			b.Fatal(err)
		}
	}
}
