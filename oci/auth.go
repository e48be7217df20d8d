package oci

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// maxTokenResponse bounds what a token realm may send us.
const maxTokenResponse = 1 << 20

// credential is what the caller configured for one registry.
type credential struct {
	username, password string
	bearer             string // sent as is; no token exchange
}

type tokenKey struct{ registry, scope string }

type cachedToken struct {
	value   string
	expires time.Time
}

// challenge is one parsed WWW-Authenticate challenge.
type challenge struct {
	scheme string // lower case
	params map[string]string
}

// authHeader picks what to send before the registry has asked: a configured
// bearer token, a cached token for this scope, or basic credentials once the
// registry has shown it wants them.
func (c *Client) authHeader(registry, scope string) string {
	cred := c.creds[registry]
	if cred.bearer != "" {
		return "Bearer " + cred.bearer
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if t, ok := c.tokens[tokenKey{registry, scope}]; ok {
		if c.now().Before(t.expires) {
			return "Bearer " + t.value
		}
		delete(c.tokens, tokenKey{registry, scope})
	}
	if c.basic[registry] && cred.username != "" {
		return basicAuth(cred.username, cred.password)
	}
	return ""
}

// answer reacts to a 401 from the registry to a request that carried sent
// as Authorization, so that one more try can succeed; it fails when no
// further try could.
func (c *Client) answer(ctx context.Context, registry, scope, sent string, chs []challenge) error {
	cred := c.creds[registry]
	for _, ch := range chs {
		if ch.scheme != "bearer" {
			continue
		}
		if cred.bearer != "" {
			return fmt.Errorf("%w: the registry rejected the configured bearer token", ErrUnauthorized)
		}
		tok, expires, err := c.fetchToken(ctx, registry, scope, ch, cred)
		if err != nil {
			return err
		}
		c.mu.Lock()
		c.tokens[tokenKey{registry, scope}] = cachedToken{tok, expires}
		c.mu.Unlock()
		return nil
	}
	for _, ch := range chs {
		if ch.scheme != "basic" {
			continue
		}
		if cred.username == "" {
			return fmt.Errorf("%w: the registry wants basic credentials and none are configured for %s", ErrUnauthorized, registry)
		}
		if strings.HasPrefix(sent, "Basic ") {
			return fmt.Errorf("%w: the registry rejected the basic credentials for %s", ErrUnauthorized, registry)
		}
		c.mu.Lock()
		c.basic[registry] = true
		c.mu.Unlock()
		return nil
	}
	return fmt.Errorf("%w: no usable WWW-Authenticate challenge", ErrUnauthorized)
}

// fetchToken gets a token from a Bearer challenge's realm, anonymously or
// with the registry's basic credentials (the Docker token protocol).
func (c *Client) fetchToken(ctx context.Context, registry, scope string, ch challenge, cred credential) (string, time.Time, error) {
	realm := ch.params["realm"]
	u, err := url.Parse(realm)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return "", time.Time{}, fmt.Errorf("%w: token realm %q is not an http(s) URL", ErrUnauthorized, realm)
	}
	// An http realm would expose credentials and tokens; only a registry
	// the caller already reaches over plain HTTP may use one.
	if u.Scheme == "http" && !c.plain[registry] {
		return "", time.Time{}, fmt.Errorf("%w: token realm %q is not https", ErrUnauthorized, realm)
	}
	q := u.Query()
	if s := ch.params["service"]; s != "" {
		q.Set("service", s)
	}
	// Ask for the scope this request needs, and whatever else the
	// challenge names: a challenge from an earlier pull must not leave a
	// push holding a pull-only token.
	q.Add("scope", scope)
	for _, s := range strings.Fields(ch.params["scope"]) {
		if s != scope {
			q.Add("scope", s)
		}
	}
	u.RawQuery = q.Encode()

	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("token request: %w", err)
	}
	auth := ""
	if cred.username != "" {
		auth = basicAuth(cred.username, cred.password)
	}
	resp, err := c.send(req, auth)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("token from %s: %w", u.Host, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		err := statusError(resp)
		return "", time.Time{}, fmt.Errorf("token from %s: HTTP %d: %w", u.Host, resp.StatusCode, err)
	}
	var body struct {
		Token       string `json:"token"`
		AccessToken string `json:"access_token"`
		ExpiresIn   int    `json:"expires_in"`
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxTokenResponse+1))
	if err != nil {
		return "", time.Time{}, transient{err: fmt.Errorf("token from %s: %w", u.Host, err)}
	}
	if len(data) > maxTokenResponse {
		return "", time.Time{}, fmt.Errorf("token from %s: %w: response over %d bytes", u.Host, ErrTooLarge, maxTokenResponse)
	}
	if err := json.Unmarshal(data, &body); err != nil {
		return "", time.Time{}, fmt.Errorf("token from %s: %w", u.Host, err)
	}
	tok := body.Token
	if tok == "" {
		tok = body.AccessToken
	}
	if tok == "" {
		return "", time.Time{}, fmt.Errorf("%w: token from %s: response has no token", ErrUnauthorized, u.Host)
	}
	// The token spec's default lifetime is 60 s; renew a little early so a
	// token does not expire between our check and the registry's.
	life := time.Duration(body.ExpiresIn) * time.Second
	if life <= 0 {
		life = 60 * time.Second
	}
	return tok, c.now().Add(life - min(life/10, 10*time.Second)), nil
}

func basicAuth(user, pass string) string {
	r := http.Request{Header: http.Header{}}
	r.SetBasicAuth(user, pass)
	return r.Header.Get("Authorization")
}

// parseChallenges reads WWW-Authenticate values (RFC 9110 §11.6.1): each
// value may hold several challenges, each a scheme and auth-params.
func parseChallenges(values []string) []challenge {
	var out []challenge
	for _, v := range values {
		p := &lexer{s: v}
		for {
			p.skip(" \t,")
			scheme := p.token()
			if scheme == "" {
				break
			}
			ch := challenge{scheme: strings.ToLower(scheme), params: map[string]string{}}
			for {
				p.skip(" \t")
				mark := p.i
				key := p.token()
				p.skip(" \t")
				if key == "" || !p.eat('=') {
					// Not a parameter: the next challenge's scheme.
					p.i = mark
					break
				}
				p.skip(" \t")
				ch.params[strings.ToLower(key)] = p.value()
				p.skip(" \t")
				if !p.eat(',') {
					break
				}
			}
			out = append(out, ch)
		}
	}
	return out
}

type lexer struct {
	s string
	i int
}

func (l *lexer) skip(set string) {
	for l.i < len(l.s) && strings.IndexByte(set, l.s[l.i]) >= 0 {
		l.i++
	}
}

func (l *lexer) eat(c byte) bool {
	if l.i < len(l.s) && l.s[l.i] == c {
		l.i++
		return true
	}
	return false
}

func (l *lexer) token() string {
	start := l.i
	for l.i < len(l.s) && isTokenChar(l.s[l.i]) {
		l.i++
	}
	return l.s[start:l.i]
}

// value reads a token or a quoted-string with backslash escapes.
func (l *lexer) value() string {
	if !l.eat('"') {
		return l.token()
	}
	var b strings.Builder
	for l.i < len(l.s) {
		c := l.s[l.i]
		l.i++
		switch {
		case c == '"':
			return b.String()
		case c == '\\' && l.i < len(l.s):
			b.WriteByte(l.s[l.i])
			l.i++
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

func isTokenChar(c byte) bool {
	return isAlnum(c) || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}
