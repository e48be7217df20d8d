//go:build linux

package bed

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// get fetches url with c and returns the body's SHA-256.
func get(t *testing.T, c *http.Client, url string) (string, error) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return "", fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	h := sha256.New()
	if _, err := io.Copy(h, resp.Body); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// checkServers fetches the random file over HTTP and HTTPS, and checks
// that the wrong-name server and an unrelated CA are refused.
func checkServers(t *testing.T, b *Bed) {
	c := b.HTTPClient()
	for _, url := range []string{b.FileURL(RandomFile), b.FileHTTPSURL(RandomFile)} {
		sum, err := get(t, c, url)
		if err != nil {
			t.Fatal(err)
		}
		if sum != b.FileSHA256 {
			t.Errorf("%s: sha256 %s, want %s", url, sum, b.FileSHA256)
		}
	}
	wrong := fmt.Sprintf("https://%s:%d/%s", b.ServerName(), WrongNamePort, RandomFile)
	var hostErr x509.HostnameError
	if _, err := get(t, c, wrong); !errors.As(err, &hostErr) {
		t.Errorf("wrong-name server: got %v, want a hostname mismatch", err)
	}
	other := x509.NewCertPool()
	other.AppendCertsFromPEM(b.Certs.OtherCAPEM)
	oc := &http.Client{Transport: &http.Transport{DialContext: b.DialContext, TLSClientConfig: &tls.Config{RootCAs: other}}}
	var unknown x509.UnknownAuthorityError
	if _, err := get(t, oc, b.FileHTTPSURL(RandomFile)); !errors.As(err, &unknown) {
		t.Errorf("trusting only the unrelated CA: got %v, want an unknown authority", err)
	}
}

func needRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("namespace beds need root (CI runs as root)")
	}
}

func TestNetnsBed(t *testing.T) {
	needRoot(t)
	b := New(t, Options{Registry: true, FileSize: 3<<20 + 17})
	if b.UserNet || b.Netns == "" {
		t.Fatal("got a user-network bed; this machine should make namespaces")
	}
	checkServers(t, b)

	addrs, err := b.Resolver().LookupHost(context.Background(), Hostname)
	if err != nil || !slices.Equal(addrs, []string{HostIP}) {
		t.Errorf("DNS %s: %v, %v; want [%s]", Hostname, addrs, err, HostIP)
	}

	resp, err := b.HTTPClient().Get(b.RegistryHostURL() + "/v2/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Docker-Distribution-Api-Version") != "registry/2.0" {
		t.Errorf("registry /v2/: %s %v", resp.Status, resp.Header)
	}

	// The namespace has only lo and the tap, and no route out. (Dialing
	// HostIP from the host's namespace would not prove anything and could
	// send a packet off the machine through the host's default route.)
	out, err := ipCmd("-n", b.Netns, "-o", "link", "show")
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(strings.TrimSpace(out), "\n") + 1; n != 2 || !strings.Contains(out, " lo:") || !strings.Contains(out, " "+TapName+":") {
		t.Errorf("links in the namespace, want lo and %s only:\n%s", TapName, out)
	}

	// The tap and its address are in the namespace, not the host.
	out, err = ipCmd("-n", b.Netns, "-4", "addr", "show", "dev", TapName)
	if err != nil || !strings.Contains(out, HostIP+"/24") {
		t.Errorf("tap in the namespace: %v: %s", err, out)
	}
	if out, err := ipCmd("-n", b.Netns, "route", "show", "default"); err != nil || strings.TrimSpace(out) != "" {
		t.Errorf("the namespace has a default route: %q %v", out, err)
	}

	pids := b.PIDs()
	if len(pids) != 2 {
		t.Errorf("server processes %v, want dnsmasq and docker-registry", pids)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if left := b.Gone(); len(left) > 0 {
		t.Errorf("left behind after Close: %v", left)
	}
}

func TestNetnsBedNoDHCP(t *testing.T) {
	needRoot(t)
	b := New(t, Options{NoDHCP: true, FileSize: -1})
	if _, err := b.Resolver().LookupHost(context.Background(), Hostname); err != nil {
		t.Errorf("DNS without DHCP: %v", err)
	}
	if _, err := os.Stat(b.Dir + "/www/" + RandomFile); err == nil {
		t.Error("FileSize -1 still wrote a random file")
	}
	// dnsmasq logs its DHCP range at start when it serves DHCP.
	if log := b.DnsmasqLog(); strings.Contains(log, "DHCP, IP range") {
		t.Errorf("dnsmasq serves DHCP with NoDHCP:\n%s", log)
	}
}

func TestRemoveLeftovers(t *testing.T) {
	needRoot(t)
	// A PID that is surely gone: a child that has exited and been reaped.
	c := exec.Command("true")
	if err := c.Run(); err != nil {
		t.Fatal(err)
	}
	dead := fmt.Sprintf("%s%d-1", namePrefix, c.Process.Pid)
	live := fmt.Sprintf("%s%d-999", namePrefix, os.Getpid())
	for _, ns := range []string{dead, live} {
		if _, err := ipCmd("netns", "add", ns); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { removeNetns(ns) })
	}
	removeLeftovers(t.Logf)
	names, err := namespaces()
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(names, dead) {
		t.Errorf("leftover %s of a dead process not removed", dead)
	}
	if !slices.Contains(names, live) {
		t.Errorf("namespace %s of a live process removed", live)
	}
}

func TestUserBed(t *testing.T) {
	b := New(t, Options{ForceUser: true})
	if !b.UserNet || b.Netns != "" || b.GuestIP != UserGuestIP {
		t.Fatalf("not a user-network bed: %+v", b)
	}
	checkServers(t, b)
	nd := b.QEMUArgs()[1]
	for _, want := range []string{"restrict=on", "guestfwd=tcp:" + UserGuestIP + ":80-cmd:"} {
		if !strings.Contains(nd, want) {
			t.Errorf("netdev %q lacks %q", nd, want)
		}
	}
}

func TestForwarder(t *testing.T) {
	// The forwarder as QEMU runs it: stdin/stdout to a loopback server.
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		data, _ := io.ReadAll(c)
		c.Write([]byte(strings.ToUpper(string(data))))
	}()
	fwd := t.TempDir() + "/fwd"
	if out, err := exec.Command("go", "build", "-o", fwd, "./fwd").CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	cmd := exec.Command(fwd, l.Addr().String())
	cmd.Stdin = strings.NewReader("hello through fwd")
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != "HELLO THROUGH FWD" {
		t.Errorf("got %q", out)
	}
}
