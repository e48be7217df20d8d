package plan

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/ociboot/ociboot/oci"
)

// Plan is what the loader boots and how.
type Plan struct {
	// Default names the target tried first; empty means the first one.
	Default string `json:"default,omitempty"`
	// Timeout bounds each target's attempt from network start to handoff.
	Timeout Duration `json:"timeout,omitempty"`
	// OnFailure says what follows a target that fails: "next" (the other
	// targets in order, then back to the firmware; the default) or "exit"
	// (straight back to the firmware).
	OnFailure string `json:"onFailure,omitempty"`
	// NIC picks the network path: "auto" (default), "virtio",
	// "virtio-nooffload" (virtio-net, every frame cut to the MTU) or "snp".
	NIC string `json:"nic,omitempty"`
	// Network, when set, replaces DHCP with a static configuration.
	Network *Static `json:"network,omitempty"`
	// Live prints a per-actor throughput line every second.
	Live bool `json:"live,omitempty"`
	// Targets are the things to boot.
	Targets []Target `json:"targets"`
}

// Target is one bootable artifact.
type Target struct {
	Name string `json:"name,omitempty"`
	// Ref is the OCI reference, registry/repository[:tag][@digest].
	Ref string `json:"ref,omitempty"`
	// Embedded names an EFI program compiled into the loader (`ociboot
	// build -embed NAME=FILE`) to chain-load instead of fetching Ref; the
	// kind must be "efi".
	Embedded string `json:"embedded,omitempty"`
	// Kind is "linux" (a kernel, initrd and command line, or a UKI; the
	// default) or "efi" (any EFI program, which may return).
	Kind string `json:"kind,omitempty"`
	// Format forces an artifact format instead of detecting it.
	Format  string `json:"format,omitempty"`
	Cmdline string `json:"cmdline,omitempty"`
	// Signature policy: "off" (default), "warn" or "require", with the
	// ECDSA P-256 public key (PEM) signatures must verify against.
	Policy    string `json:"policy,omitempty"`
	PublicKey string `json:"publicKey,omitempty"`
	// CA holds extra PEM certificates trusted for the registry's TLS;
	// OnlyCA trusts them alone instead of adding them to the built-in roots.
	CA     []string `json:"ca,omitempty"`
	OnlyCA bool     `json:"onlyCA,omitempty"`
	// PlainHTTP talks HTTP, not HTTPS, to the registry (test beds only).
	PlainHTTP bool `json:"plainHTTP,omitempty"`
	// Credentials for the registry: a user and password, or a token.
	Username string `json:"username,omitempty"`
	Password string `json:"password,omitempty"`
	Token    string `json:"token,omitempty"`
}

// Static is a network configuration without DHCP.
type Static struct {
	Address string   `json:"address"` // CIDR, e.g. 10.0.2.15/24
	Gateway string   `json:"gateway,omitempty"`
	DNS     []string `json:"dns,omitempty"`
	Search  []string `json:"search,omitempty"`
}

// Duration is a time.Duration written as "30s" in JSON.
type Duration time.Duration

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads "30s"-style strings.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration must be a string like \"30s\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// DefaultTimeout applies when the plan sets none.
const DefaultTimeout = 5 * time.Minute

// Parse reads and validates a plan in JSON; unknown fields are errors, so a
// misspelt key is caught rather than ignored.
func Parse(data []byte) (*Plan, error) {
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	var p Plan
	if err := dec.Decode(&p); err != nil {
		return nil, fmt.Errorf("plan: %w", err)
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return &p, nil
}

// Validate checks the whole plan and fills in defaults (target names).
func (p *Plan) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf("plan: "+format, args...)) }
	if len(p.Targets) == 0 {
		bad("no targets: nothing to boot")
	}
	if p.Timeout < 0 {
		bad("negative timeout %v", time.Duration(p.Timeout))
	}
	switch p.OnFailure {
	case "", "next", "exit":
	default:
		bad("onFailure %q: want next or exit", p.OnFailure)
	}
	switch p.NIC {
	case "", "auto", "virtio", "virtio-nooffload", "snp":
	default:
		bad("nic %q: want auto, virtio, virtio-nooffload or snp", p.NIC)
	}
	if p.Network != nil {
		if _, err := netip.ParsePrefix(p.Network.Address); err != nil {
			bad("network address %q: %v", p.Network.Address, err)
		}
		if p.Network.Gateway != "" {
			if _, err := netip.ParseAddr(p.Network.Gateway); err != nil {
				bad("network gateway: %v", err)
			}
		}
		for _, d := range p.Network.DNS {
			if _, err := netip.ParseAddr(d); err != nil {
				bad("network dns: %v", err)
			}
		}
	}
	names := map[string]bool{}
	for i := range p.Targets {
		t := &p.Targets[i]
		if t.Name == "" {
			t.Name = "target" + strconv.Itoa(i+1)
		}
		if names[t.Name] {
			bad("two targets named %q", t.Name)
		}
		names[t.Name] = true
		for _, err := range t.validate() {
			bad("target %q: %v", t.Name, err)
		}
	}
	if p.Default != "" && !names[p.Default] {
		bad("default target %q is not among the targets", p.Default)
	}
	return errors.Join(errs...)
}

// Formats a target may force.
var Formats = []string{"auto", "ociboot", "netboot", "linuxkit", "paths", "uki"}

func (t *Target) validate() []error {
	var errs []error
	switch {
	case t.Embedded != "" && t.Ref != "":
		errs = append(errs, errors.New("both a ref and an embedded program"))
	case t.Embedded != "" && t.Kind != "efi":
		errs = append(errs, errors.New(`an embedded program needs kind "efi"`))
	case t.Embedded == "":
		if _, err := oci.ParseReference(t.Ref); err != nil {
			errs = append(errs, fmt.Errorf("ref %q: %w", t.Ref, err))
		}
	}
	switch t.Kind {
	case "", "linux", "efi":
	default:
		errs = append(errs, fmt.Errorf("kind %q: want linux or efi", t.Kind))
	}
	if t.Format != "" && !contains(Formats, t.Format) {
		errs = append(errs, fmt.Errorf("format %q: want one of %s", t.Format, strings.Join(Formats, ", ")))
	}
	switch t.Policy {
	case "", "off", "warn", "require":
	default:
		errs = append(errs, fmt.Errorf("policy %q: want off, warn or require", t.Policy))
	}
	if t.PublicKey != "" {
		if _, err := ParsePublicKey(t.PublicKey); err != nil {
			errs = append(errs, err)
		}
	} else if t.Policy == "warn" || t.Policy == "require" {
		errs = append(errs, fmt.Errorf("policy %s needs a publicKey", t.Policy))
	}
	for i, c := range t.CA {
		if _, err := ParseCertificates(c); err != nil {
			errs = append(errs, fmt.Errorf("ca %d: %w", i+1, err))
		}
	}
	if t.OnlyCA && len(t.CA) == 0 {
		errs = append(errs, errors.New("onlyCA without any ca"))
	}
	if t.Token != "" && (t.Username != "" || t.Password != "") {
		errs = append(errs, errors.New("both a token and a username/password"))
	}
	return errs
}

func contains(l []string, s string) bool {
	for _, v := range l {
		if v == s {
			return true
		}
	}
	return false
}

// ParsePublicKey reads an ECDSA P-256 public key in PEM.
func ParsePublicKey(s string) (*ecdsa.PublicKey, error) {
	b, _ := pem.Decode([]byte(s))
	if b == nil {
		return nil, errors.New("publicKey is not PEM")
	}
	k, err := x509.ParsePKIXPublicKey(b.Bytes)
	if err != nil {
		return nil, fmt.Errorf("publicKey: %w", err)
	}
	ek, ok := k.(*ecdsa.PublicKey)
	if !ok || ek.Curve != elliptic.P256() {
		return nil, errors.New("publicKey is not an ECDSA P-256 key")
	}
	return ek, nil
}

// ParseCertificates reads one or more PEM certificates.
func ParseCertificates(s string) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	rest := []byte(s)
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, err
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, errors.New("no PEM certificate")
	}
	return certs, nil
}

// Order is the sequence in which targets are tried: the default first,
// then, unless OnFailure is "exit", the others as listed.
func (p *Plan) Order() []Target {
	first := 0
	for i, t := range p.Targets {
		if t.Name == p.Default {
			first = i
		}
	}
	out := []Target{p.Targets[first]}
	if p.OnFailure == "exit" {
		return out
	}
	for i, t := range p.Targets {
		if i != first {
			out = append(out, t)
		}
	}
	return out
}

// AttemptTimeout is the plan's timeout or the default.
func (p *Plan) AttemptTimeout() time.Duration {
	if p.Timeout == 0 {
		return DefaultTimeout
	}
	return time.Duration(p.Timeout)
}

// EmbeddedNames lists the embedded programs the targets name.
func (p *Plan) EmbeddedNames() []string {
	var names []string
	for _, t := range p.Targets {
		if t.Embedded != "" && !contains(names, t.Embedded) {
			names = append(names, t.Embedded)
		}
	}
	return names
}
