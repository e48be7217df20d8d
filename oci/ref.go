package oci

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	digest "github.com/opencontainers/go-digest"
)

// ErrInvalidReference is wrapped by every error ParseReference returns.
var ErrInvalidReference = errors.New("invalid reference")

const (
	// dockerHub is the canonical name of Docker Hub in references.
	dockerHub = "docker.io"
	// dockerHubAPI is the host that actually serves Docker Hub's /v2/ API;
	// docker.io itself only redirects browsers.
	dockerHubAPI = "registry-1.docker.io"
	defaultTag   = "latest"
	// maxNameLength bounds registry + "/" + repository, as distribution does.
	maxNameLength = 255
	maxTagLength  = 128
)

// Reference names a manifest in a registry: Registry/Repository[:Tag][@Digest].
// A parsed Reference always has a Registry and Repository and at least one of
// Tag and Digest. When both are set, the Digest decides what is fetched and
// the Tag is informational.
type Reference struct {
	Registry   string // host[:port], lower case; "docker.io" for Docker Hub
	Repository string // slash-separated path components
	Tag        string
	Digest     digest.Digest
}

// ParseReference reads s the way oras and crane do:
//
//   - the first path component is the registry if it contains '.' or ':' or
//     is "localhost"; otherwise the registry is docker.io;
//   - index.docker.io and registry-1.docker.io are spelled docker.io, and a
//     one-component Docker Hub repository gets the "library/" prefix;
//   - the tag defaults to "latest" only when neither tag nor digest is given.
func ParseReference(s string) (Reference, error) {
	fail := func(format string, args ...any) (Reference, error) {
		return Reference{}, fmt.Errorf("oci: %w %q: %s", ErrInvalidReference, s, fmt.Sprintf(format, args...))
	}
	if s == "" {
		return fail("empty")
	}

	var r Reference
	name := s
	if i := strings.IndexByte(name, '@'); i >= 0 {
		d, err := digest.Parse(name[i+1:])
		if err != nil {
			return fail("digest %q: %v", name[i+1:], err)
		}
		r.Digest = d
		name = name[:i]
	}
	// A tag is a ':' after the last '/': earlier colons belong to a port.
	if i := strings.LastIndexByte(name, ':'); i >= 0 && !strings.Contains(name[i:], "/") {
		r.Tag = name[i+1:]
		name = name[:i]
		if !validTag(r.Tag) {
			return fail("tag %q must match [A-Za-z0-9_][A-Za-z0-9._-]{0,127}", r.Tag)
		}
	}
	if name == "" {
		return fail("no repository")
	}

	repo := name
	if i := strings.IndexByte(name, '/'); i >= 0 {
		first := name[:i]
		if strings.ContainsAny(first, ".:") || first == "localhost" || strings.HasPrefix(first, "[") {
			reg, err := normalizeRegistry(first)
			if err != nil {
				return fail("registry %q: %v", first, err)
			}
			r.Registry = reg
			repo = name[i+1:]
		}
	}
	if r.Registry == "" {
		r.Registry = dockerHub
	}
	if err := validRepository(repo); err != nil {
		return fail("repository %q: %v", repo, err)
	}
	if r.Registry == dockerHub && !strings.Contains(repo, "/") {
		repo = "library/" + repo
	}
	r.Repository = repo
	if n := len(r.Registry) + 1 + len(r.Repository); n > maxNameLength {
		return fail("name is %d characters, more than %d", n, maxNameLength)
	}
	if r.Tag == "" && r.Digest == "" {
		r.Tag = defaultTag
	}
	return r, nil
}

// String gives the fully qualified form, which ParseReference reads back to
// the same Reference.
func (r Reference) String() string {
	s := r.Registry + "/" + r.Repository
	if r.Tag != "" {
		s += ":" + r.Tag
	}
	if r.Digest != "" {
		s += "@" + r.Digest.String()
	}
	return s
}

// Name is Registry/Repository, without tag or digest.
func (r Reference) Name() string { return r.Registry + "/" + r.Repository }

// Host is the host[:port] that serves the registry's HTTP API.
func (r Reference) Host() string { return apiHost(r.Registry) }

// check validates a Reference that may not come from ParseReference, since
// its parts end up in URLs. needIdent demands a tag or digest.
func (r Reference) check(needIdent bool) error {
	fail := func(format string, args ...any) error {
		return fmt.Errorf("%w %q: %s", ErrInvalidReference, r.String(), fmt.Sprintf(format, args...))
	}
	if reg, err := normalizeRegistry(r.Registry); err != nil || reg != r.Registry {
		return fail("registry %q is not a normalised host[:port]", r.Registry)
	}
	if err := validRepository(r.Repository); err != nil {
		return fail("repository: %v", err)
	}
	if r.Tag != "" && !validTag(r.Tag) {
		return fail("tag %q", r.Tag)
	}
	if r.Digest != "" {
		if err := r.Digest.Validate(); err != nil {
			return fail("digest: %v", err)
		}
	}
	if needIdent && r.Tag == "" && r.Digest == "" {
		return fail("no tag or digest")
	}
	return nil
}

// identifier is what goes after /manifests/: the digest when pinned.
func (r Reference) identifier() string {
	if r.Digest != "" {
		return r.Digest.String()
	}
	return r.Tag
}

func apiHost(registry string) string {
	if registry == dockerHub {
		return dockerHubAPI
	}
	return registry
}

// normalizeRegistry validates host[:port] (host a DNS name, IPv4 address or
// bracketed IPv6 address) and returns it lower-cased, with Docker Hub's
// aliases folded into docker.io.
func normalizeRegistry(s string) (string, error) {
	host, port := s, ""
	if strings.HasPrefix(s, "[") {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return "", errors.New("unterminated '['")
		}
		host, port = s[:end+1], s[end+1:]
		addr, err := netip.ParseAddr(s[1:end])
		if err != nil || !addr.Is6() || addr.Zone() != "" {
			return "", fmt.Errorf("%q is not an IPv6 address", s[1:end])
		}
		if port != "" && port[0] != ':' {
			return "", errors.New("junk after ']'")
		}
	} else {
		if i := strings.IndexByte(s, ':'); i >= 0 {
			host, port = s[:i], s[i:]
		}
		if err := validHostname(host); err != nil {
			return "", err
		}
	}
	if port != "" {
		p := port[1:]
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 || p[0] == '0' || p[0] == '+' {
			return "", fmt.Errorf("port %q is not in 1-65535", p)
		}
	}
	out := strings.ToLower(host) + port
	switch out {
	case "index.docker.io", "registry-1.docker.io":
		out = dockerHub
	}
	return out, nil
}

func validHostname(h string) error {
	if h == "" {
		return errors.New("empty host")
	}
	for label := range strings.SplitSeq(h, ".") {
		if label == "" {
			return errors.New("empty host label")
		}
		if label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Errorf("host label %q starts or ends with '-'", label)
		}
		for i := 0; i < len(label); i++ {
			if c := label[i]; !isAlnum(c) && c != '-' {
				return fmt.Errorf("host label %q has %q", label, c)
			}
		}
	}
	return nil
}

// validRepository checks path components against the distribution spec:
// [a-z0-9]+ joined by '.', '_', '__' or one or more '-'.
func validRepository(repo string) error {
	if repo == "" {
		return errors.New("empty")
	}
	for comp := range strings.SplitSeq(repo, "/") {
		if comp == "" {
			return errors.New("empty path component")
		}
		prevSep := true // a component must start with [a-z0-9]
		for i := 0; i < len(comp); {
			c := comp[i]
			switch {
			case isLowerAlnum(c):
				prevSep = false
				i++
				continue
			case prevSep:
				return fmt.Errorf("component %q: %q must follow a lower-case letter or digit", comp, c)
			case c == '.':
				i++
			case c == '_':
				i++
				if i < len(comp) && comp[i] == '_' {
					i++
				}
			case c == '-':
				for i < len(comp) && comp[i] == '-' {
					i++
				}
			default:
				return fmt.Errorf("component %q has %q (only a-z, 0-9 and the separators '.', '_', '__', '-')", comp, c)
			}
			prevSep = true
		}
		if prevSep {
			return fmt.Errorf("component %q ends with a separator", comp)
		}
	}
	return nil
}

func validTag(t string) bool {
	if t == "" || len(t) > maxTagLength {
		return false
	}
	if !isAlnum(t[0]) && t[0] != '_' {
		return false
	}
	for i := 1; i < len(t); i++ {
		if c := t[i]; !isAlnum(c) && c != '_' && c != '.' && c != '-' {
			return false
		}
	}
	return true
}

func isLowerAlnum(c byte) bool { return 'a' <= c && c <= 'z' || '0' <= c && c <= '9' }
func isAlnum(c byte) bool      { return isLowerAlnum(c) || 'A' <= c && c <= 'Z' }
