package services

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"golang.org/x/crypto/x509roots/fallback/bundle"
)

// HTTPConfig configures NewHTTPClient. Zero durations take the defaults.
type HTTPConfig struct {
	// CACerts holds PEM certificates trusted in addition to the Mozilla
	// roots of x509roots/fallback, or instead of them with OnlyCACerts.
	CACerts     []byte
	OnlyCACerts bool

	DialTimeout           time.Duration // 10 s
	TLSHandshakeTimeout   time.Duration // 10 s
	ResponseHeaderTimeout time.Duration // 30 s
	IdleConnTimeout       time.Duration // 90 s

	// DisableHTTP2 keeps connections on HTTP/1.1.
	DisableHTTP2 bool
}

// Defaults for HTTPConfig's zero values.
const (
	DefaultDialTimeout           = 10 * time.Second
	DefaultTLSHandshakeTimeout   = 10 * time.Second
	DefaultResponseHeaderTimeout = 30 * time.Second
	DefaultIdleConnTimeout       = 90 * time.Second
)

// NewHTTPClient returns an HTTP client whose connections are made by dial
// (the stack's DialContext), with TLS 1.2 at least, HTTP/2 when the server
// offers it, keep-alive, and no proxy: the loader has no environment. It
// sets no overall timeout, since a blob may take minutes; callers bound
// requests with their contexts. Certificate failures stay recognisable with
// errors.As (x509.UnknownAuthorityError, x509.HostnameError).
func NewHTTPClient(dial DialFunc, cfg HTTPConfig) (*http.Client, error) {
	if dial == nil {
		return nil, errors.New("http: no dial function")
	}
	roots, err := CertPool(cfg.CACerts, cfg.OnlyCACerts)
	if err != nil {
		return nil, err
	}
	dialTimeout := orDefault(cfg.DialTimeout, DefaultDialTimeout)
	t := &http.Transport{
		Proxy: nil,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			ctx, cancel := context.WithTimeout(ctx, dialTimeout)
			defer cancel()
			return dial(ctx, network, addr)
		},
		TLSClientConfig: &tls.Config{
			RootCAs:    roots,
			MinVersion: tls.VersionTLS12,
		},
		TLSHandshakeTimeout:   orDefault(cfg.TLSHandshakeTimeout, DefaultTLSHandshakeTimeout),
		ResponseHeaderTimeout: orDefault(cfg.ResponseHeaderTimeout, DefaultResponseHeaderTimeout),
		IdleConnTimeout:       orDefault(cfg.IdleConnTimeout, DefaultIdleConnTimeout),
		ExpectContinueTimeout: time.Second,
		MaxIdleConnsPerHost:   4,
		// A custom DialContext and TLS config turn HTTP/2 off unless asked.
		ForceAttemptHTTP2: !cfg.DisableHTTP2,
	}
	if cfg.DisableHTTP2 {
		// A non-nil empty map is how net/http is told not to negotiate h2.
		t.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	}
	return &http.Client{Transport: t}, nil
}

func orDefault(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// The fallback bundle is parsed once: ~120 certificates cost real time
// under emulation.
var (
	bundleOnce sync.Once
	bundlePool *x509.CertPool
	bundleErr  error
)

func bundleRoots() (*x509.CertPool, error) {
	bundleOnce.Do(func() {
		pool := x509.NewCertPool()
		for r := range bundle.Roots() {
			c, err := x509.ParseCertificate(r.Certificate)
			if err != nil {
				bundleErr = fmt.Errorf("http: parsing a root of the fallback bundle: %w", err)
				return
			}
			pool.AddCertWithConstraint(c, r.Constraint)
		}
		bundlePool = pool
	})
	return bundlePool, bundleErr
}

// CertPool returns the roots to trust: the fallback bundle plus the PEM
// certificates in extra, or those alone when only is set.
func CertPool(extra []byte, only bool) (*x509.CertPool, error) {
	var pool *x509.CertPool
	if only {
		if len(extra) == 0 {
			return nil, errors.New("http: only operator CA certificates trusted, but none given")
		}
		pool = x509.NewCertPool()
	} else {
		base, err := bundleRoots()
		if err != nil {
			return nil, err
		}
		if len(extra) == 0 {
			return base, nil
		}
		pool = base.Clone()
	}
	n := 0
	for rest := extra; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("http: CA certificate %d: %w", n+1, err)
		}
		pool.AddCert(c)
		n++
	}
	if len(extra) > 0 && n == 0 {
		return nil, errors.New("http: no PEM certificate in the CA certificates given")
	}
	return pool, nil
}
