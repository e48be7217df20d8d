package oci

import (
	"errors"
	"strings"
	"testing"
)

const (
	testDigest    = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	testDigest512 = "sha512:" +
		"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef" +
		"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
)

func TestParseReference(t *testing.T) {
	tests := []struct {
		in   string
		want Reference
		str  string // String(); "" means in
	}{
		{"alpine", Reference{"docker.io", "library/alpine", "latest", ""}, "docker.io/library/alpine:latest"},
		{"alpine:3.20", Reference{"docker.io", "library/alpine", "3.20", ""}, "docker.io/library/alpine:3.20"},
		{"library/alpine", Reference{"docker.io", "library/alpine", "latest", ""}, "docker.io/library/alpine:latest"},
		{"user/app:v1", Reference{"docker.io", "user/app", "v1", ""}, "docker.io/user/app:v1"},
		{"docker.io/alpine", Reference{"docker.io", "library/alpine", "latest", ""}, "docker.io/library/alpine:latest"},
		{"index.docker.io/user/app", Reference{"docker.io", "user/app", "latest", ""}, "docker.io/user/app:latest"},
		{"registry-1.docker.io/alpine:edge", Reference{"docker.io", "library/alpine", "edge", ""}, "docker.io/library/alpine:edge"},
		{"Index.Docker.IO/alpine", Reference{"docker.io", "library/alpine", "latest", ""}, "docker.io/library/alpine:latest"},
		{"ghcr.io/org/repo/sub:tag", Reference{"ghcr.io", "org/repo/sub", "tag", ""}, ""},
		{"ghcr.io/app", Reference{"ghcr.io", "app", "latest", ""}, "ghcr.io/app:latest"},
		{"GHCR.io/app:T", Reference{"ghcr.io", "app", "T", ""}, "ghcr.io/app:T"},
		{"localhost/app", Reference{"localhost", "app", "latest", ""}, "localhost/app:latest"},
		{"localhost:5000/app:1", Reference{"localhost:5000", "app", "1", ""}, ""},
		{"localhost:5000/a/b/c", Reference{"localhost:5000", "a/b/c", "latest", ""}, "localhost:5000/a/b/c:latest"},
		{"127.0.0.1:5000/x", Reference{"127.0.0.1:5000", "x", "latest", ""}, "127.0.0.1:5000/x:latest"},
		{"myhost:5000/x", Reference{"myhost:5000", "x", "latest", ""}, "myhost:5000/x:latest"},
		{"[::1]:5000/x", Reference{"[::1]:5000", "x", "latest", ""}, "[::1]:5000/x:latest"},
		{"[::1]/x:t", Reference{"[::1]", "x", "t", ""}, ""},
		{"[2001:db8::1]:443/a/b@" + testDigest, Reference{"[2001:db8::1]:443", "a/b", "", testDigest}, ""},
		{"reg.example/app@" + testDigest, Reference{"reg.example", "app", "", testDigest}, ""},
		{"reg.example/app:v2@" + testDigest, Reference{"reg.example", "app", "v2", testDigest}, ""},
		{"reg.example:8443/app:v2@" + testDigest512, Reference{"reg.example:8443", "app", "v2", testDigest512}, ""},
		{"alpine@" + testDigest, Reference{"docker.io", "library/alpine", "", testDigest}, "docker.io/library/alpine@" + testDigest},
		{"a.b/x_y__z.w-v---u:_t.-", Reference{"a.b", "x_y__z.w-v---u", "_t.-", ""}, ""},
		{"a.b/x:" + strings.Repeat("t", 128), Reference{"a.b", "x", strings.Repeat("t", 128), ""}, ""},
		// Without a '/', a host-like name is a Docker Hub repository, as in docker.
		{"reg.example", Reference{"docker.io", "library/reg.example", "latest", ""}, "docker.io/library/reg.example:latest"},
		{"localhost", Reference{"docker.io", "library/localhost", "latest", ""}, "docker.io/library/localhost:latest"},
		{"my-host.example.com/x", Reference{"my-host.example.com", "x", "latest", ""}, "my-host.example.com/x:latest"},
	}
	for _, tt := range tests {
		got, err := ParseReference(tt.in)
		if err != nil {
			t.Errorf("ParseReference(%q): %v", tt.in, err)
			continue
		}
		if got != tt.want {
			t.Errorf("ParseReference(%q) = %#v, want %#v", tt.in, got, tt.want)
		}
		str := tt.str
		if str == "" {
			str = tt.in
		}
		if got.String() != str {
			t.Errorf("ParseReference(%q).String() = %q, want %q", tt.in, got.String(), str)
		}
		again, err := ParseReference(got.String())
		if err != nil || again != got {
			t.Errorf("round trip of %q: %#v, %v", got.String(), again, err)
		}
	}
}

func TestParseReferenceErrors(t *testing.T) {
	tests := []struct{ in, why string }{
		{"", "empty"},
		{"Alpine", "repository"},
		{"reg.example/App", "repository"},
		{"reg.example/app/", "empty path component"},
		{"reg.example//app", "empty path component"},
		{"reg.example/-app", "must follow"},
		{"reg.example/app-", "ends with a separator"},
		{"reg.example/a..b", "must follow"},
		{"reg.example/a___b", "must follow"},
		{"reg.example/a b", "has"},
		{"reg.example/app:", "tag"},
		{"reg.example/app:-x", "tag"},
		{"reg.example/app:.x", "tag"},
		{"reg.example/app:a+b", "tag"},
		{"reg.example/app:" + strings.Repeat("t", 129), "tag"},
		{"reg.example/app@", "digest"},
		{"reg.example/app@sha256:abc", "digest"},
		{"reg.example/app@sha256:" + strings.ToUpper(testDigest[7:]), "digest"},
		{"reg.example/app@md5:d41d8cd98f00b204e9800998ecf8427e", "digest"},
		{"reg.example/app@" + testDigest + "@" + testDigest, "digest"},
		{"https://reg.example/app", "registry"},
		{"reg.example:0/app", "port"},
		{"reg.example:65536/app", "port"},
		{"reg.example:05/app", "port"},
		{"reg.example:/app", "port"},
		{"reg.example:x/app", "port"},
		{"::1:5000/app", "registry"},
		{"[::1/app", "registry"},
		{"[1.2.3.4]:5000/app", "registry"},
		{"[fe80::1%eth0]:5000/app", "registry"},
		{"[::1]x/app", "registry"},
		{"-bad.example/app", "registry"},
		{"bad..example/app", "registry"},
		{"bad_host.example/app", "registry"},
		{":tag", "no repository"},
		{"@" + testDigest, "no repository"},
		{"reg.example/" + strings.Repeat("a", 250), "characters"},
	}
	for _, tt := range tests {
		got, err := ParseReference(tt.in)
		if err == nil {
			t.Errorf("ParseReference(%q) = %#v, want an error about %s", tt.in, got, tt.why)
			continue
		}
		if !errors.Is(err, ErrInvalidReference) {
			t.Errorf("ParseReference(%q): %v does not wrap ErrInvalidReference", tt.in, err)
		}
		if !strings.Contains(err.Error(), tt.why) {
			t.Errorf("ParseReference(%q): %q does not mention %q", tt.in, err, tt.why)
		}
		if tt.in != "" && !strings.Contains(err.Error(), "\""+tt.in+"\"") {
			t.Errorf("ParseReference(%q): %q does not quote the input", tt.in, err)
		}
	}
}

func TestReferenceHost(t *testing.T) {
	for in, want := range map[string]string{
		"alpine":               "registry-1.docker.io",
		"docker.io/x/y":        "registry-1.docker.io",
		"ghcr.io/x":            "ghcr.io",
		"[::1]:5000/x":         "[::1]:5000",
		"localhost:5000/a/b:c": "localhost:5000",
	} {
		r, err := ParseReference(in)
		if err != nil {
			t.Fatal(err)
		}
		if r.Host() != want {
			t.Errorf("%q: Host() = %q, want %q", in, r.Host(), want)
		}
	}
	r, _ := ParseReference("ghcr.io/a/b:t@" + testDigest)
	if r.Name() != "ghcr.io/a/b" || r.identifier() != testDigest {
		t.Errorf("Name %q identifier %q", r.Name(), r.identifier())
	}
	r, _ = ParseReference("ghcr.io/a/b:t")
	if r.identifier() != "t" {
		t.Errorf("identifier %q, want the tag", r.identifier())
	}
}

func FuzzParseReference(f *testing.F) {
	for _, s := range []string{
		"alpine", "docker.io/library/alpine:3", "[::1]:5000/x@" + testDigest,
		"localhost:5000/a/b:c@" + testDigest512, "a.b/c__d-e.f:g", "reg:1/x",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseReference(s)
		if err != nil {
			if !errors.Is(err, ErrInvalidReference) {
				t.Fatalf("error %v does not wrap ErrInvalidReference", err)
			}
			return
		}
		if r.Registry == "" || r.Repository == "" || (r.Tag == "" && r.Digest == "") {
			t.Fatalf("%q: incomplete %#v", s, r)
		}
		if r.Digest != "" {
			if err := r.Digest.Validate(); err != nil {
				t.Fatalf("%q: digest %q: %v", s, r.Digest, err)
			}
		}
		if r.Tag != "" && !validTag(r.Tag) {
			t.Fatalf("%q: bad tag %q", s, r.Tag)
		}
		if err := r.check(true); err != nil {
			t.Fatalf("%q: parsed reference fails its own check: %v", s, err)
		}
		again, err := ParseReference(r.String())
		if err != nil || again != r {
			t.Fatalf("%q: String() %q reads back as %#v, %v", s, r.String(), again, err)
		}
	})
}
