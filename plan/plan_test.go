package plan

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"go/parser"
	"go/token"
	"strings"
	"testing"
	"time"
)

const good = `{
  "default": "debian",
  "timeout": "90s",
  "targets": [
    {"name": "rescue", "ref": "registry.test/boot/rescue:1"},
    {"name": "debian", "ref": "registry.test/boot/debian:12", "cmdline": "console=ttyS0", "policy": "off"}
  ]
}`

func TestParseAndOrder(t *testing.T) {
	p, err := Parse([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if p.AttemptTimeout() != 90*time.Second {
		t.Errorf("timeout %v", p.AttemptTimeout())
	}
	o := p.Order()
	if len(o) != 2 || o[0].Name != "debian" || o[1].Name != "rescue" {
		t.Errorf("order %+v", o)
	}
	p.OnFailure = "exit"
	if o := p.Order(); len(o) != 1 {
		t.Errorf("exit: order %+v", o)
	}
}

func pubKeyPEM(t *testing.T) string {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(&k.PublicKey)
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

func TestInvalidPlans(t *testing.T) {
	for _, c := range []struct{ plan, want string }{
		{`{"targets": []}`, "no targets"},
		{`{"targets": [{"ref": "registry.test/x:1"}], "tiemout": "1s"}`, "unknown field"},
		{`{"targets": [{"ref": "not a ref"}]}`, "ref"},
		{`{"targets": [{"ref": "r.test/x:1", "policy": "require"}]}`, "needs a publicKey"},
		{`{"targets": [{"ref": "r.test/x:1", "policy": "maybe"}]}`, "policy"},
		{`{"targets": [{"ref": "r.test/x:1", "format": "iso"}]}`, "format"},
		{`{"targets": [{"ref": "r.test/x:1", "publicKey": "nope"}]}`, "not PEM"},
		{`{"targets": [{"ref": "r.test/x:1", "ca": ["nope"]}]}`, "ca 1"},
		{`{"targets": [{"name": "a", "ref": "r.test/x:1"}, {"name": "a", "ref": "r.test/y:1"}]}`, "two targets"},
		{`{"default": "b", "targets": [{"name": "a", "ref": "r.test/x:1"}]}`, "default target"},
		{`{"nic": "e1000", "targets": [{"ref": "r.test/x:1"}]}`, "nic"},
		{`{"timeout": "soon", "targets": [{"ref": "r.test/x:1"}]}`, "duration"},
		{`{"network": {"address": "10.0.0.1"}, "targets": [{"ref": "r.test/x:1"}]}`, "network address"},
	} {
		_, err := Parse([]byte(c.plan))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want an error mentioning %q", c.plan, err, c.want)
		}
	}
	key := pubKeyPEM(t)
	p := &Plan{Targets: []Target{{Ref: "r.test/x:1", Policy: "require", PublicKey: key}}}
	if err := p.Validate(); err != nil {
		t.Errorf("require with a key: %v", err)
	}
}

func TestWordsAndMerge(t *testing.T) {
	p, err := Parse([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	file, err := Parse([]byte(`{"targets": [{"name": "debian", "ref": "registry.test/boot/debian:13"}, {"name": "new", "ref": "registry.test/boot/new:1"}], "nic": "snp"}`))
	if err != nil {
		t.Fatal(err)
	}
	p.Merge(file)
	if len(p.Targets) != 3 || p.Targets[1].Ref != "registry.test/boot/debian:13" || p.NIC != "snp" || p.Default != "debian" {
		t.Errorf("merged %+v", p)
	}
	words := SplitWords(`target=new cmdline="console=ttyS0 quiet"  timeout=10s`)
	if len(words) != 3 || words[1] != `cmdline="console=ttyS0 quiet"` {
		t.Fatalf("words %q", words)
	}
	if err := p.ApplyWords(words); err != nil {
		t.Fatal(err)
	}
	if o := p.Order(); o[0].Name != "new" || o[0].Cmdline != "console=ttyS0 quiet" || p.AttemptTimeout() != 10*time.Second {
		t.Errorf("after words: %+v", o[0])
	}
	if err := p.ApplyWords([]string{"colour=blue"}); err == nil || !strings.Contains(err.Error(), "colour") {
		t.Errorf("unknown word: %v", err)
	}
	if err := p.ApplyWords([]string{"policy=require"}); err == nil {
		t.Error("require without key accepted from words")
	}

	// A plan made of words alone.
	q := &Plan{}
	if err := q.ApplyWords([]string{"ref=registry.test/boot/debian:12", "plain-http=1"}); err != nil {
		t.Fatal(err)
	}
	if len(q.Targets) != 1 || !q.Targets[0].PlainHTTP {
		t.Errorf("words-only plan %+v", q)
	}
}

func TestBootFile(t *testing.T) {
	p, _ := Parse([]byte(good))
	for _, name := range []string{"", "pxelinux.0", "http://x/y", "/boot/vmlinuz", "tftp://h/f"} {
		if p.ApplyBootFile(name) {
			t.Errorf("%q taken as a reference", name)
		}
	}
	if !p.ApplyBootFile("registry.test/boot/other:2") || p.Order()[0].Ref != "registry.test/boot/other:2" {
		t.Errorf("reference not taken: %+v", p.Order()[0])
	}
}

func TestGoSource(t *testing.T) {
	src := GoSource([]byte(good))
	f, err := parser.ParseFile(token.NewFileSet(), "zz_plan.go", src, 0)
	if err != nil {
		t.Fatalf("generated source does not parse: %v\n%s", err, src)
	}
	if f.Name.Name != "main" {
		t.Errorf("package %s", f.Name.Name)
	}
	Embed(good)
	if string(Embedded()) != good {
		t.Error("Embedded does not return what Embed took")
	}
}

func TestEmbeddedTargets(t *testing.T) {
	p, err := Parse([]byte(`{"targets": [{"name": "shell", "kind": "efi", "embedded": "shell"}, {"ref": "r.test/x:1"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if n := p.EmbeddedNames(); len(n) != 1 || n[0] != "shell" {
		t.Errorf("embedded names %v", n)
	}
	for _, c := range []struct{ plan, want string }{
		{`{"targets": [{"embedded": "shell"}]}`, `needs kind "efi"`},
		{`{"targets": [{"kind": "efi", "embedded": "shell", "ref": "r.test/x:1"}]}`, "both"},
	} {
		if _, err := Parse([]byte(c.plan)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.plan, err, c.want)
		}
	}
	src, files := ImagesGoSource([]string{"shell", "tool"})
	if _, err := parser.ParseFile(token.NewFileSet(), "zz_images.go", src, parser.ParseComments); err != nil || len(files) != 2 {
		t.Errorf("generated source: %v\n%s", err, src)
	}
}
