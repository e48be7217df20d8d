package oci

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

const (
	// maxRedirects bounds hand-followed redirects (net/http's default too).
	maxRedirects = 10
	// maxErrorBody bounds how much of an error response we read for its
	// message.
	maxErrorBody = 64 << 10
	// maxBackoff caps one retry delay, including a server's Retry-After.
	maxBackoff = 30 * time.Second
)

// Client talks to OCI distribution registries over a caller-supplied
// http.Client. It is safe for concurrent use.
type Client struct {
	hc      *http.Client
	creds   map[string]credential
	plain   map[string]bool
	maxBlob int64
	retries int
	backoff time.Duration
	now     func() time.Time

	mu     sync.Mutex
	tokens map[tokenKey]cachedToken
	basic  map[string]bool // registries that answered with a Basic challenge
}

// Option configures a Client. Registry names are as in Reference.Registry
// ("docker.io", "localhost:5000", "[::1]:5000").
type Option func(*Client)

// WithBasicAuth sets a username and password for registry, used for Basic
// challenges and to obtain tokens from a Bearer challenge's realm. It
// replaces other credentials for registry.
func WithBasicAuth(registry, username, password string) Option {
	return func(c *Client) {
		c.creds[registryKey(registry)] = credential{username: username, password: password}
	}
}

// WithBearerToken sends token as "Authorization: Bearer" on every request to
// registry, with no token exchange. It replaces other credentials for
// registry.
func WithBearerToken(registry, token string) Option {
	return func(c *Client) {
		c.creds[registryKey(registry)] = credential{bearer: token}
	}
}

// WithPlainHTTP makes the client speak http instead of https to registry.
func WithPlainHTTP(registry string) Option {
	return func(c *Client) { c.plain[registryKey(registry)] = true }
}

// WithMaxBlobSize makes FetchBlob refuse, before any request, a descriptor
// larger than n bytes. n <= 0 means no limit (the default).
func WithMaxBlobSize(n int64) Option {
	return func(c *Client) { c.maxBlob = n }
}

// WithRetry sets how many times a request is retried after a network error,
// a 5xx or a 429 (default 3), and the first delay, which doubles per retry
// (default 200ms).
func WithRetry(retries int, backoff time.Duration) Option {
	return func(c *Client) {
		c.retries = max(retries, 0)
		c.backoff = max(backoff, 0)
	}
}

// NewClient returns a Client that sends its requests through hc (nil means a
// zero http.Client). hc is copied: the Client follows redirects itself so it
// can keep credentials away from other origins.
func NewClient(hc *http.Client, opts ...Option) *Client {
	var own http.Client
	if hc != nil {
		own = *hc
	}
	own.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	c := &Client{
		hc:      &own,
		creds:   map[string]credential{},
		plain:   map[string]bool{},
		retries: 3,
		backoff: 200 * time.Millisecond,
		now:     time.Now,
		tokens:  map[tokenKey]cachedToken{},
		basic:   map[string]bool{},
	}
	for _, o := range opts {
		o(c)
	}
	return c
}

func registryKey(s string) string {
	if r, err := normalizeRegistry(s); err == nil {
		return r
	}
	return strings.ToLower(s)
}

func (c *Client) baseURL(registry string) string {
	scheme := "https"
	if c.plain[registry] {
		scheme = "http"
	}
	return scheme + "://" + apiHost(registry)
}

// get sends a GET for path on ref's registry with the repository's pull
// scope, answering one 401 challenge. A non-2xx response is returned as is
// for the caller to judge.
func (c *Client) get(ctx context.Context, ref Reference, path string, hdr http.Header) (*http.Response, error) {
	return c.Do(ctx, http.MethodGet, ref, "pull", path, hdr, nil)
}

// Do sends one request to ref's registry with credentials for ref's
// repository and the scope's actions ("pull", or "pull,push" to upload),
// answering one 401 challenge. target is a path on the registry ("/v2/...")
// or an absolute URL the registry handed out (an upload Location). body, if
// not nil, makes each attempt's request body. The response is returned
// whatever its status, for the caller to judge (ResponseError).
//
// The loader only pulls; Do is exported for host-side publishing, which
// shares the authentication code.
func (c *Client) Do(ctx context.Context, method string, ref Reference, actions, target string, hdr http.Header, body func() (io.Reader, int64)) (*http.Response, error) {
	u := target
	if strings.HasPrefix(target, "/") {
		u = c.baseURL(ref.Registry) + target
	}
	scope := "repository:" + ref.Repository + ":" + actions
	for try := 0; ; try++ {
		var rd io.Reader
		var size int64
		if body != nil {
			rd, size = body()
		}
		req, err := http.NewRequestWithContext(ctx, method, u, rd)
		if err != nil {
			return nil, fmt.Errorf("request %s: %w", redactString(u), err)
		}
		if body != nil {
			req.ContentLength = size
		}
		for k, v := range hdr {
			req.Header[k] = v
		}
		auth := c.authHeader(ref.Registry, scope)
		resp, err := c.send(req, auth)
		if err != nil {
			return nil, err
		}
		// Only the registry itself gets to run the auth dance; a 401 from
		// redirected-to storage is final.
		if resp.StatusCode != http.StatusUnauthorized || origin(resp.Request.URL) != origin(req.URL) {
			return resp, nil
		}
		if try > 0 {
			what := "the request without credentials"
			switch {
			case strings.HasPrefix(auth, "Basic "):
				what = "the basic credentials for " + ref.Registry
			case auth != "":
				what = "the bearer token"
			}
			return nil, httpStatus{code: resp.StatusCode, err: fmt.Errorf("the registry rejected %s: %w", what, statusError(resp))}
		}
		chs := parseChallenges(resp.Header.Values("Www-Authenticate"))
		discard(resp)
		if err := c.answer(ctx, ref.Registry, scope, auth, chs); err != nil {
			return nil, httpStatus{code: http.StatusUnauthorized, err: err}
		}
	}
}

// ResponseError turns a failed response into an error wrapping the
// matching sentinel (ErrNotFound, ErrUnauthorized) and the registry's own
// message. It closes the body.
func ResponseError(resp *http.Response) error { return statusError(resp) }

func redactString(s string) string {
	if u, err := url.Parse(s); err == nil {
		return redact(u)
	}
	return "(unparsable URL)"
}

// send performs req, following redirects by hand so that auth is sent only
// to the origin of the first request: blob storage behind a redirect must
// never see the registry's credentials.
func (c *Client) send(req *http.Request, auth string) (*http.Response, error) {
	authOrigin := origin(req.URL)
	for hop := 0; ; hop++ {
		if auth != "" && origin(req.URL) == authOrigin {
			req.Header.Set("Authorization", auth)
		} else {
			req.Header.Del("Authorization")
		}
		resp, err := c.hc.Do(req)
		if err != nil {
			if ctxErr := req.Context().Err(); ctxErr != nil {
				return nil, ctxErr
			}
			var ue *url.Error
			if errors.As(err, &ue) {
				ue.URL = redact(req.URL) // a pre-signed query must not reach logs
			}
			return nil, transient{err: err}
		}
		switch resp.StatusCode {
		case http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther,
			http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
		default:
			return resp, nil
		}
		if req.Method != http.MethodGet && req.Method != http.MethodHead {
			return resp, nil // a body cannot be replayed here; the caller judges
		}
		loc := resp.Header.Get("Location")
		discard(resp)
		if hop >= maxRedirects {
			return nil, fmt.Errorf("GET %s: more than %d redirects", redact(req.URL), maxRedirects)
		}
		next, err := req.URL.Parse(loc)
		if err != nil || loc == "" {
			return nil, fmt.Errorf("GET %s: bad redirect Location %q", redact(req.URL), loc)
		}
		if next.Scheme != "https" && next.Scheme != "http" {
			return nil, fmt.Errorf("GET %s: redirect to unsupported scheme %q", redact(req.URL), next.Scheme)
		}
		if req.URL.Scheme == "https" && next.Scheme == "http" {
			return nil, fmt.Errorf("GET %s: refusing redirect from https to http (%s)", redact(req.URL), redact(next))
		}
		req = req.Clone(req.Context())
		req.URL = next
		req.Host = ""
	}
}

// origin is scheme://host[:port], with default ports made explicit so
// that https://h and https://h:443 compare equal.
func origin(u *url.URL) string {
	port := u.Port()
	if port == "" {
		switch u.Scheme {
		case "https":
			port = "443"
		case "http":
			port = "80"
		}
	}
	return strings.ToLower(u.Scheme) + "://" + strings.ToLower(u.Hostname()) + ":" + port
}

// redact drops the query, which for pre-signed storage URLs is a credential.
func redact(u *url.URL) string {
	v := *u
	v.RawQuery = ""
	v.User = nil
	return v.String()
}

// discard drains a little of a response we do not need so the connection
// can be reused, then closes it.
func discard(resp *http.Response) {
	_, _ = io.CopyN(io.Discard, resp.Body, 4<<10)
	resp.Body.Close()
}

// statusError turns a failed response into an error wrapping the matching
// sentinel and the registry's own error message, marked transient for 5xx
// and 429. It closes the body.
func statusError(resp *http.Response) error {
	defer resp.Body.Close()
	msg := http.StatusText(resp.StatusCode)
	if data, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody)); len(data) > 0 {
		var body struct {
			Errors []struct {
				Code    string `json:"code"`
				Message string `json:"message"`
			} `json:"errors"`
		}
		if json.Unmarshal(data, &body) == nil && len(body.Errors) > 0 {
			e := body.Errors[0]
			msg = strings.TrimSpace(e.Code + " " + e.Message)
		}
	}
	var err error
	switch resp.StatusCode {
	case http.StatusNotFound:
		err = fmt.Errorf("%w: %s", ErrNotFound, msg)
	case http.StatusUnauthorized, http.StatusForbidden:
		err = fmt.Errorf("%w: %s", ErrUnauthorized, msg)
	default:
		err = errors.New(msg)
	}
	err = httpStatus{code: resp.StatusCode, err: err}
	if resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests {
		return transient{err: err, after: retryAfter(resp.Header.Get("Retry-After"))}
	}
	return err
}

func retryAfter(v string) time.Duration {
	if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && n > 0 {
		return min(time.Duration(n)*time.Second, maxBackoff)
	}
	return 0
}

// pause waits before retry number n (0-based): exponential backoff with
// jitter, so machines booting together do not retry in lockstep.
func (c *Client) pause(ctx context.Context, n int, err error) error {
	d := c.backoff << min(n, 16)
	if d > maxBackoff || d < 0 {
		d = maxBackoff
	}
	if d > 0 {
		d = d/2 + rand.N(d/2+1)
	}
	var t transient
	if errors.As(err, &t) && t.after > d {
		d = t.after
	}
	if d == 0 {
		return ctx.Err()
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		return nil
	}
}

// retry runs fn until it succeeds, fails for good, or has been retried
// c.retries times.
func (c *Client) retry(ctx context.Context, fn func() error) error {
	for n := 0; ; n++ {
		err := fn()
		if err == nil || !isTransient(err) || n >= c.retries {
			return err
		}
		if perr := c.pause(ctx, n, err); perr != nil {
			return perr
		}
	}
}

// wrap gives err the operation's context unless it already has it.
func wrap(err error, op string, ref Reference, dgst string) error {
	var e *Error
	if errors.As(err, &e) {
		return err
	}
	out := &Error{Op: op, Registry: ref.Registry, Repository: ref.Repository, Tag: ref.Tag, Digest: dgst, Err: err}
	var hs httpStatus
	if errors.As(err, &hs) {
		out.Status = hs.code
	}
	return out
}
