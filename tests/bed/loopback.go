//go:build linux

package bed

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/ociboot/ociboot/efirt/qemu"
)

// LoopbackRegistry is Debian's docker-registry (distribution 2.8) on a
// loopback port of this machine, outside any bed: for the demo and for
// tests of the host tools against a real registry.
type LoopbackRegistry struct {
	Addr string // host:port
	URL  string // http:// or https:// and Addr
	cmd  *exec.Cmd
}

// StartLoopbackRegistry installs docker-registry when it is missing
// (installLog may be nil), starts it on a free loopback port storing under
// dir — over TLS with certs' server certificate when certs is non-nil — and
// waits until /v2/ answers. Close stops it.
func StartLoopbackRegistry(ctx context.Context, dir string, certs *Certs, installLog io.Writer) (*LoopbackRegistry, error) {
	bin, err := exec.LookPath("docker-registry")
	if err != nil {
		if err := qemu.AptInstall(installLog, "docker-registry"); err != nil {
			return nil, fmt.Errorf("installing docker-registry: %w", err)
		}
		if bin, err = exec.LookPath("docker-registry"); err != nil {
			return nil, err
		}
	}
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := l.Addr().String()
	l.Close() // the registry binds it itself
	var crt, key string
	hc, scheme := http.DefaultClient, "http"
	if certs != nil {
		crt, key = filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key")
		if err := os.WriteFile(crt, certs.ServerPEM, 0o644); err != nil {
			return nil, err
		}
		if err := os.WriteFile(key, certs.ServerKey, 0o600); err != nil {
			return nil, err
		}
		hc, scheme = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: certs.Pool()}}}, "https"
	}
	conf := filepath.Join(dir, "registry.yml")
	if err := os.WriteFile(conf, []byte(RegistryConfig(filepath.Join(dir, "storage"), addr, crt, key)), 0o644); err != nil {
		return nil, err
	}
	logPath := filepath.Join(dir, "registry.log")
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logf.Close() // the registry has its own copy
	cmd := exec.Command(bin, "serve", conf)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting docker-registry: %w", err)
	}
	r := &LoopbackRegistry{Addr: addr, URL: scheme + "://" + addr, cmd: cmd}
	for deadline := time.Now().Add(30 * time.Second); ; {
		resp, err := hc.Get(r.URL + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return r, nil
			}
			err = errors.New(resp.Status)
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			r.Close()
			return nil, fmt.Errorf("docker-registry did not come up on %s: %v: %s", addr, err, tail(logPath, 10))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Close stops the registry (by its PID: only the one this started).
func (r *LoopbackRegistry) Close() {
	r.cmd.Process.Kill()
	r.cmd.Wait()
}
