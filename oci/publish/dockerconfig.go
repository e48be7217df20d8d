package publish

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/ociboot/ociboot/oci"
)

// DockerConfig is the "auths" part of a docker config file, which docker,
// podman, crane, oras and skopeo all read.
type DockerConfig struct {
	Path  string
	Auths map[string]DockerAuth `json:"auths"`
	// Credential helpers are not run (they are other programs); a
	// registry configured only through them has no credentials here.
	CredsStore  string            `json:"credsStore"`
	CredHelpers map[string]string `json:"credHelpers"`
}

// DockerAuth is one registry's entry.
type DockerAuth struct {
	Auth          string `json:"auth"` // base64 "user:password"
	Username      string `json:"username"`
	Password      string `json:"password"`
	IdentityToken string `json:"identitytoken"`
	RegistryToken string `json:"registrytoken"`
}

// DockerConfigPath is $DOCKER_CONFIG/config.json, else
// ~/.docker/config.json.
func DockerConfigPath() string {
	if d := os.Getenv("DOCKER_CONFIG"); d != "" {
		return filepath.Join(d, "config.json")
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return ""
	}
	return filepath.Join(home, ".docker", "config.json")
}

// LoadDockerConfig reads the config file at path ("" for
// DockerConfigPath). A missing file is an empty config.
func LoadDockerConfig(path string) (*DockerConfig, error) {
	if path == "" {
		path = DockerConfigPath()
	}
	cfg := &DockerConfig{Path: path}
	if path == "" {
		return cfg, nil
	}
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return cfg, nil
	}
	if err != nil {
		return nil, fmt.Errorf("docker config: %w", err)
	}
	if err := json.Unmarshal(data, cfg); err != nil {
		return nil, fmt.Errorf("docker config %s: %w", path, err)
	}
	return cfg, nil
}

// authKeys lists the spellings docker config files use for a registry.
func authKeys(registry string) []string {
	if registry == "docker.io" {
		return []string{"https://index.docker.io/v1/", "index.docker.io", "docker.io", "registry-1.docker.io", "https://registry-1.docker.io"}
	}
	return []string{registry, "https://" + registry, "http://" + registry}
}

// ClientOption returns the credentials for registry (as in
// oci.Reference.Registry) as a client option, or nil when there are none.
func (c *DockerConfig) ClientOption(registry string) (oci.Option, error) {
	for _, key := range authKeys(registry) {
		a, ok := c.Auths[key]
		if !ok {
			// Entries may carry a path ("https://host/v1/").
			for k, v := range c.Auths {
				if h := strings.TrimSuffix(strings.SplitN(strings.TrimPrefix(strings.TrimPrefix(k, "https://"), "http://"), "/", 2)[0], "/"); h == key {
					a, ok = v, true
					break
				}
			}
		}
		if !ok {
			continue
		}
		switch {
		case a.RegistryToken != "":
			return oci.WithBearerToken(registry, a.RegistryToken), nil
		case a.Auth != "":
			raw, err := base64.StdEncoding.DecodeString(a.Auth)
			if err != nil {
				return nil, fmt.Errorf("docker config %s: auth for %s is not base64: %w", c.Path, key, err)
			}
			user, pass, ok := strings.Cut(string(raw), ":")
			if !ok {
				return nil, fmt.Errorf("docker config %s: auth for %s is not user:password", c.Path, key)
			}
			return oci.WithBasicAuth(registry, user, pass), nil
		case a.Username != "":
			return oci.WithBasicAuth(registry, a.Username, a.Password), nil
		case a.IdentityToken != "":
			return nil, fmt.Errorf("docker config %s: %s has only an identity token (OAuth refresh), which ociboot does not exchange", c.Path, key)
		}
	}
	return nil, nil
}
