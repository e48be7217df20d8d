//go:build linux

package bed

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// UserGuestIP is where a user-network bed's servers appear to the guest;
// QEMU's slirp answers DHCP on 10.0.2.0/24 (gateway 10.0.2.2).
const UserGuestIP = "10.0.2.100"

// startUser sets up the fallback bed: servers on the host's loopback and
// QEMU user networking with restrict=on, so the guest reaches those servers
// and nothing else. Each guest connection is forwarded by a fwd process
// QEMU starts (guestfwd with a chardev carries one connection only).
// slirp's DHCP works; its DNS does not under restrict=on, so the guest must
// use UserGuestIP, which the server certificate also names.
func (b *Bed) startUser(opt Options) error {
	b.UserNet, b.GuestIP = true, UserGuestIP
	certs, err := NewCerts([]string{Hostname}, []net.IP{net.ParseIP(UserGuestIP)})
	if err != nil {
		return err
	}
	b.Certs = certs
	fwd := filepath.Join(b.Dir, "fwd")
	build := exec.Command("go", "build", "-o", fwd, "github.com/ociboot/ociboot/tests/bed/fwd")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("building the forwarder: %w: %s", err, out)
	}
	b.fwd = fwd
	listen := func(port int) (net.Listener, error) {
		l, err := net.Listen("tcp4", "127.0.0.1:0")
		if err == nil {
			b.hostAddr[port] = l.Addr().String()
		}
		return l, err
	}
	if err := b.startFileServers(listen); err != nil {
		return err
	}
	if opt.Registry {
		if _, err := exec.LookPath("docker-registry"); err != nil {
			return fmt.Errorf("no docker-registry (install the Debian package): %w", err)
		}
		// A free port: the registry binds it itself.
		l, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			return err
		}
		addr := l.Addr().String()
		l.Close()
		if err := b.startRegistry(addr); err != nil {
			return err
		}
	}
	return nil
}

// userNetdev is the -netdev value of a user-network bed.
func (b *Bed) userNetdev() string {
	opts := []string{"user", "id=n0", "restrict=on", "net=10.0.2.0/24"}
	for port, addr := range b.hostAddr {
		cmd := b.fwd + " " + addr
		opts = append(opts, "guestfwd=tcp:"+UserGuestIP+":"+strconv.Itoa(port)+"-cmd:"+strings.ReplaceAll(cmd, ",", ",,"))
	}
	return strings.Join(opts, ",")
}
