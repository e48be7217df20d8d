//go:build linux

// Package bed builds the network test beds the QEMU end-to-end tests boot
// into: a private network namespace with a tap device for the guest,
// dnsmasq for DHCP and DNS, static HTTP and HTTPS file servers, and Debian's
// docker-registry with TLS, all under a fresh test CA. No packet can leave
// the machine: the namespace has no route out. Where namespaces cannot be
// made, the bed falls back to QEMU user networking with restrict=on and
// guest forwards to loopback servers (see UserNet).
//
// The test process reaches the servers through Bed.DialContext and
// Bed.HTTPClient, which open their sockets inside the namespace (on a
// locked OS thread that joined it) — the host has no route to the bed.
package bed

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ociboot/ociboot/efirt/qemu"
)

// Addresses and names inside a namespace bed.
const (
	HostIP    = "10.77.0.1" // the tap's address: DHCP, DNS, the servers
	Hostname  = "registry.test"
	TapName   = "tap0"
	prefixLen = 24
	dhcpFirst = "10.77.0.100"
	dhcpLast  = "10.77.0.199"
)

// Ports of the servers on HostIP (namespace bed).
const (
	HTTPPort      = 80   // static files, plain HTTP
	HTTPSPort     = 8443 // static files, HTTPS with the server certificate
	WrongNamePort = 8444 // static files, HTTPS with the WrongName certificate
	RegistryPort  = 443  // docker-registry, HTTPS
)

// RandomFile is the name under which the bed serves its random file.
const RandomFile = "random.bin"

// Options says what the bed runs. The zero value gives DHCP, DNS, the file
// servers with a 1 MiB random file, and no registry.
type Options struct {
	NoDHCP      bool     // run dnsmasq for DNS only
	DHCPOptions []string // extra --dhcp-option values, e.g. "option:bootfile-name,http://registry.test/boot.ipxe"
	DnsmasqArgs []string // extra dnsmasq arguments
	FileSize    int64    // size of the random file; 0 = 1 MiB, < 0 = none
	Registry    bool     // start docker-registry on HostIP:443
	ForceUser   bool     // use QEMU user networking even where namespaces work
}

// Bed is a running test bed. Close (registered with t.Cleanup) tears it down.
type Bed struct {
	// Netns is the namespace QEMU must run in; "" for a user-network bed.
	Netns string
	// UserNet is true for the fallback bed (QEMU user networking): DHCP
	// comes from QEMU's slirp, there is no DNS (use GuestIP), and the
	// servers are reachable only through the ports forwarded below.
	UserNet bool
	// GuestIP is the servers' address as the guest sees it: HostIP in a
	// namespace bed, 10.0.2.100 in a user-network bed.
	GuestIP string
	// Dir holds the bed's files; WWW (inside it) is served over HTTP and
	// HTTPS: add files there at any time.
	Dir, WWW string
	// Certs are the TLS certificates the servers use.
	Certs *Certs
	// FileSHA256 and FileSize describe WWW/RandomFile.
	FileSHA256 string
	FileSize   int64

	t        testing.TB
	mu       sync.Mutex
	procs    []*proc
	servers  []*http.Server
	hostAddr map[int]string // guest port -> address the test process dials
	closed   bool
	dnsLog   string
	regLog   string
	fwd      string // the forwarder program (user-network beds)
}

// proc is a server process the bed started.
type proc struct {
	name   string
	cmd    *exec.Cmd
	waited chan error
}

var seq atomic.Int64

// New creates a bed for t and registers its teardown with t.Cleanup. It
// installs dnsmasq, docker-registry and iproute2 when they are missing.
// Namespace beds need root; otherwise, or with opt.ForceUser, the bed uses
// QEMU user networking.
func New(t testing.TB, opt Options) *Bed {
	t.Helper()
	b := &Bed{t: t, Dir: t.TempDir(), hostAddr: map[int]string{}}
	b.WWW = filepath.Join(b.Dir, "www")
	if err := os.Mkdir(b.WWW, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("bed teardown: %v", err)
		}
	})
	if err := b.start(opt); err != nil {
		t.Fatalf("bed: %v", err)
	}
	return b
}

func (b *Bed) logf(format string, args ...any) { b.t.Logf(format, args...) }

func (b *Bed) start(opt Options) error {
	if err := b.writeRandomFile(opt.FileSize); err != nil {
		return err
	}
	if !opt.ForceUser && os.Geteuid() == 0 {
		if err := ensureTools(b.logf, opt.Registry); err != nil {
			return err
		}
		removeLeftovers(b.logf)
		ns := fmt.Sprintf("%s%d-%d", namePrefix, os.Getpid(), seq.Add(1))
		if _, err := ipCmd("netns", "add", ns); err == nil {
			b.Netns, b.GuestIP = ns, HostIP
			return b.startNetns(opt)
		} else {
			b.logf("bed: no network namespace (%v); falling back to QEMU user networking", err)
		}
	}
	return b.startUser(opt)
}

// ensureTools installs the programs a namespace bed runs.
func ensureTools(logf func(string, ...any), registry bool) error {
	need := map[string]string{"ip": "iproute2", "dnsmasq": "dnsmasq"}
	if registry {
		need["docker-registry"] = "docker-registry"
	}
	var pkgs []string
	for bin, pkg := range need {
		if _, err := exec.LookPath(bin); err != nil {
			pkgs = append(pkgs, pkg)
		}
	}
	if len(pkgs) == 0 {
		return nil
	}
	slices.Sort(pkgs)
	logf("bed: installing %s", strings.Join(pkgs, " "))
	return qemu.AptInstall(logWriter{logf}, pkgs...)
}

type logWriter struct{ logf func(string, ...any) }

func (w logWriter) Write(p []byte) (int, error) {
	w.logf("%s", strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// writeRandomFile writes WWW/RandomFile and records its digest.
func (b *Bed) writeRandomFile(size int64) error {
	if size < 0 {
		return nil
	}
	if size == 0 {
		size = 1 << 20
	}
	f, err := os.Create(filepath.Join(b.WWW, RandomFile))
	if err != nil {
		return err
	}
	defer f.Close()
	var seed [32]byte
	binaryTime := time.Now().UnixNano()
	for i := range 8 {
		seed[i] = byte(binaryTime >> (8 * i))
	}
	// ChaCha8 is fast enough for hundreds of MiB; the content only has to
	// be incompressible and unknown to the guest.
	src := rand.NewChaCha8(seed)
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(f, h), io.LimitReader(src, size)); err != nil {
		return fmt.Errorf("writing the random file: %w", err)
	}
	b.FileSHA256, b.FileSize = hex.EncodeToString(h.Sum(nil)), size
	return f.Close()
}

// startNetns sets up the namespace bed.
func (b *Bed) startNetns(opt Options) error {
	ns := b.Netns
	for _, args := range [][]string{
		{"-n", ns, "link", "set", "lo", "up"},
		{"-n", ns, "tuntap", "add", "dev", TapName, "mode", "tap"},
		{"-n", ns, "addr", "add", HostIP + "/" + strconv.Itoa(prefixLen), "dev", TapName},
		{"-n", ns, "link", "set", TapName, "up"},
	} {
		if _, err := ipCmd(args...); err != nil {
			return err
		}
	}
	certs, err := NewCerts([]string{Hostname}, []net.IP{net.ParseIP(HostIP)})
	if err != nil {
		return err
	}
	b.Certs = certs
	if err := b.startDnsmasq(opt); err != nil {
		return err
	}
	listen := func(port int) (net.Listener, error) {
		l, err := listenIn(ns, "tcp4", net.JoinHostPort(HostIP, strconv.Itoa(port)))
		if err == nil {
			b.hostAddr[port] = net.JoinHostPort(HostIP, strconv.Itoa(port))
		}
		return l, err
	}
	if err := b.startFileServers(listen); err != nil {
		return err
	}
	if opt.Registry {
		if err := b.startRegistry(net.JoinHostPort(HostIP, strconv.Itoa(RegistryPort))); err != nil {
			return err
		}
	}
	return nil
}

// startFileServers serves WWW over HTTP and HTTPS (good and wrong name).
func (b *Bed) startFileServers(listen func(port int) (net.Listener, error)) error {
	// http.FileServer sends *os.File bodies with sendfile, the fastest
	// thing Linux's own stack can do.
	files := http.FileServer(http.Dir(b.WWW))
	for _, s := range []struct {
		port int
		cert *tls.Certificate
	}{{HTTPPort, nil}, {HTTPSPort, &b.Certs.Server}, {WrongNamePort, &b.Certs.WrongName}} {
		l, err := listen(s.port)
		if err != nil {
			return fmt.Errorf("file server on port %d: %w", s.port, err)
		}
		// Refused handshakes are what some tests want: keep them out of the log.
		srv := &http.Server{Handler: files, ErrorLog: log.New(io.Discard, "", 0)}
		if s.cert != nil {
			srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{*s.cert}}
			l = tls.NewListener(l, srv.TLSConfig)
		}
		b.mu.Lock()
		b.servers = append(b.servers, srv)
		b.mu.Unlock()
		go srv.Serve(l)
	}
	return nil
}

// startDnsmasq runs dnsmasq in the namespace and waits until it answers
// DNS queries.
func (b *Bed) startDnsmasq(opt Options) error {
	b.dnsLog = filepath.Join(b.Dir, "dnsmasq.log")
	args := []string{
		"--keep-in-foreground",
		"--conf-file=/dev/null", // not the machine's configuration
		"--pid-file",            // none
		"--user=root",           // the bed's files are root's
		"--interface=" + TapName,
		"--bind-interfaces",
		"--except-interface=lo",
		"--no-resolv", "--no-hosts", "--no-poll",
		"--address=/" + Hostname + "/" + HostIP,
		"--log-facility=" + b.dnsLog,
		"--log-queries",
	}
	if !opt.NoDHCP {
		args = append(args,
			"--dhcp-range="+dhcpFirst+","+dhcpLast+",255.255.255.0,1h",
			"--dhcp-option=option:router,"+HostIP,
			"--dhcp-option=option:dns-server,"+HostIP,
			"--dhcp-leasefile="+filepath.Join(b.Dir, "dnsmasq.leases"),
			// Offer at once: no ping to check the address is free.
			"--no-ping",
			"--log-dhcp",
		)
		for _, o := range opt.DHCPOptions {
			args = append(args, "--dhcp-option="+o)
		}
	}
	args = append(args, opt.DnsmasqArgs...)
	if err := b.startProc("dnsmasq", b.dnsLog+".out", "dnsmasq", args...); err != nil {
		return err
	}
	r := b.Resolver()
	return b.waitReady("dnsmasq", b.dnsLog, func(ctx context.Context) error {
		addrs, err := r.LookupHost(ctx, Hostname)
		if err == nil && !slices.Contains(addrs, HostIP) {
			err = fmt.Errorf("%s resolved to %v", Hostname, addrs)
		}
		return err
	})
}

// RegistryConfig is a configuration for Debian's docker-registry
// (distribution 2.8) storing under storage, listening on addr, with TLS
// when crt and key (file names) are given.
func RegistryConfig(storage, addr, crt, key string) string {
	cfg := fmt.Sprintf(`version: 0.1
log:
  level: info
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
http:
  addr: %s
`, storage, addr)
	if crt != "" {
		cfg += fmt.Sprintf("  tls:\n    certificate: %s\n    key: %s\n", crt, key)
	}
	return cfg
}

// startRegistry runs docker-registry with TLS and waits until /v2/ answers.
func (b *Bed) startRegistry(addr string) error {
	dir := filepath.Join(b.Dir, "registry")
	if err := os.MkdirAll(filepath.Join(dir, "storage"), 0o755); err != nil {
		return err
	}
	crt, key := filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key")
	if err := os.WriteFile(crt, b.Certs.ServerPEM, 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(key, b.Certs.ServerKey, 0o600); err != nil {
		return err
	}
	cfg := RegistryConfig(filepath.Join(dir, "storage"), addr, crt, key)
	conf := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(conf, []byte(cfg), 0o644); err != nil {
		return err
	}
	b.regLog = filepath.Join(dir, "registry.log")
	// The registry reads REGISTRY_* variables over its file: none from us.
	if err := b.startProc("docker-registry", b.regLog, "docker-registry", "serve", conf); err != nil {
		return err
	}
	b.hostAddr[RegistryPort] = addr
	c := b.HTTPClient()
	return b.waitReady("docker-registry", b.regLog, func(ctx context.Context) error {
		req, _ := http.NewRequestWithContext(ctx, "GET", b.RegistryHostURL()+"/v2/", nil)
		resp, err := c.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET /v2/: %s", resp.Status)
		}
		return nil
	})
}

// startProc starts a server program in the namespace, its output going to
// logFile.
func (b *Bed) startProc(name, logFile, bin string, args ...string) error {
	out, err := os.Create(logFile)
	if err != nil {
		return err
	}
	defer out.Close() // the child has its own copy
	cmd := exec.Command(bin, args...)
	if b.Netns != "" {
		cmd = exec.Command("ip", append([]string{"netns", "exec", b.Netns, bin}, args...)...)
	}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	p := &proc{name: name, cmd: cmd, waited: make(chan error, 1)}
	started := make(chan error, 1)
	go func() {
		// Pdeathsig follows the thread that started the child: keep it
		// for the child's whole life (see efirt/qemu's runner).
		runtime.LockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		p.waited <- cmd.Wait()
	}()
	if err := <-started; err != nil {
		return fmt.Errorf("starting %s: %w", name, err)
	}
	b.mu.Lock()
	b.procs = append(b.procs, p)
	b.mu.Unlock()
	return nil
}

// waitReady polls check until it succeeds, the process exits, or 30 s
// pass; a failure shows the end of the process's log.
func (b *Bed) waitReady(name, logFile string, check func(context.Context) error) error {
	deadline := time.Now().Add(30 * time.Second)
	var p *proc
	b.mu.Lock()
	for _, q := range b.procs {
		if q.name == name {
			p = q
		}
	}
	b.mu.Unlock()
	var last error
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		last = check(ctx)
		cancel()
		if last == nil {
			return nil
		}
		if p != nil {
			select {
			case err := <-p.waited:
				p.waited <- err
				return fmt.Errorf("%s exited (%v): %s", name, err, tail(logFile, 10))
			default:
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s not ready after 30s: %v: %s", name, last, tail(logFile, 10))
}

// tail returns the last n lines of a file.
func tail(path string, n int) string {
	data, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// DialContext dials a server of the bed from the test process: inside the
// namespace for a namespace bed, on loopback for a user-network bed. addr
// uses the guest's view (GuestIP or Hostname, and the guest's port).
func (b *Bed) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	if host == Hostname {
		host = b.GuestIP
	}
	if b.Netns != "" {
		return dialIn(ctx, b.Netns, network, net.JoinHostPort(host, port))
	}
	p, _ := strconv.Atoi(port)
	hostAddr, ok := b.hostAddr[p]
	if host != b.GuestIP || !ok {
		return nil, fmt.Errorf("bed: %s is not forwarded in this user-network bed", addr)
	}
	var d net.Dialer
	return d.DialContext(ctx, network, hostAddr)
}

// HTTPClient returns a client that reaches the bed's servers by their
// guest-side names and trusts the test CA.
func (b *Bed) HTTPClient() *http.Client {
	return &http.Client{Transport: &http.Transport{
		DialContext:       b.DialContext,
		TLSClientConfig:   &tls.Config{RootCAs: b.Certs.Pool()},
		ForceAttemptHTTP2: false,
	}}
}

// Resolver returns a resolver that asks the bed's dnsmasq (namespace beds).
func (b *Bed) Resolver() *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		return dialIn(ctx, b.Netns, network, net.JoinHostPort(HostIP, "53"))
	}}
}

// ServerName is the name the guest should use for the servers: Hostname
// where the bed has DNS, else GuestIP.
func (b *Bed) ServerName() string {
	if b.UserNet {
		return b.GuestIP
	}
	return Hostname
}

// FileURL returns the guest-side URL of a file in WWW over plain HTTP.
func (b *Bed) FileURL(name string) string {
	return fmt.Sprintf("http://%s:%d/%s", b.ServerName(), HTTPPort, name)
}

// FileHTTPSURL returns the guest-side URL of a file in WWW over HTTPS.
func (b *Bed) FileHTTPSURL(name string) string {
	return fmt.Sprintf("https://%s:%d/%s", b.ServerName(), HTTPSPort, name)
}

// RegistryURL is the registry's base URL as the guest sees it.
func (b *Bed) RegistryURL() string { return fmt.Sprintf("https://%s", b.ServerName()) }

// RegistryHost is the registry's host (and port) for OCI references, e.g.
// registry.test/ociboot/test:latest.
func (b *Bed) RegistryHost() string { return b.ServerName() }

// RegistryHostURL is the registry's base URL for the test process; use it
// with HTTPClient (or a transport dialing with DialContext and trusting
// Certs.Pool()).
func (b *Bed) RegistryHostURL() string { return b.RegistryURL() }

// QEMUArgs attaches the guest's virtio-net NIC to the bed. The card has no
// option ROM (romfile=): OVMF's own driver binds it, which the loader can
// take over, where QEMU's iPXE ROM would keep it and leave only SNP.
func (b *Bed) QEMUArgs() []string {
	dev := "virtio-net-pci,netdev=n0,disable-legacy=on,disable-modern=off,mac=52:54:00:12:34:56,romfile="
	if b.UserNet {
		return []string{"-netdev", b.userNetdev(), "-device", dev}
	}
	return []string{"-netdev", "tap,id=n0,ifname=" + TapName + ",script=no,downscript=no", "-device", dev}
}

// Config returns cfg set up to run QEMU attached to the bed.
func (b *Bed) Config(cfg qemu.Config) qemu.Config {
	cfg.Netns = b.Netns
	cfg.QEMUArgs = append(slices.Clone(cfg.QEMUArgs), b.QEMUArgs()...)
	return cfg
}

// DnsmasqLog returns dnsmasq's log so far ("" for user-network beds).
func (b *Bed) DnsmasqLog() string {
	if b.dnsLog == "" {
		return ""
	}
	data, _ := os.ReadFile(b.dnsLog)
	return string(data)
}

// RegistryLog returns docker-registry's log so far.
func (b *Bed) RegistryLog() string {
	if b.regLog == "" {
		return ""
	}
	data, _ := os.ReadFile(b.regLog)
	return string(data)
}

// Leases returns the DHCP leases dnsmasq has given, one per line.
func (b *Bed) Leases() string {
	data, _ := os.ReadFile(filepath.Join(b.Dir, "dnsmasq.leases"))
	return string(data)
}

// PIDs returns the process IDs of the servers the bed started.
func (b *Bed) PIDs() []int {
	b.mu.Lock()
	defer b.mu.Unlock()
	var pids []int
	for _, p := range b.procs {
		pids = append(pids, p.cmd.Process.Pid)
	}
	return pids
}

// Close stops the servers and removes the namespace with its tap. It is
// safe to call more than once; New registers it with t.Cleanup.
func (b *Bed) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	procs, servers := b.procs, b.servers
	b.mu.Unlock()
	var errs []error
	for _, s := range servers {
		s.Close()
	}
	for _, p := range procs {
		// ip exec'd the server in place: its PID is the server's.
		syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-p.waited:
		case <-time.After(5 * time.Second):
			syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
			<-p.waited
		}
	}
	if b.Netns != "" {
		if pids, _ := netnsPIDs(b.Netns); len(pids) > 0 {
			errs = append(errs, fmt.Errorf("processes still in namespace %s at teardown (killed): %v", b.Netns, pids))
		}
		if err := removeNetns(b.Netns); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Gone reports what of the bed is still on the machine after Close: the
// namespace, the tap, the server processes. Empty means clean.
func (b *Bed) Gone() []string {
	var left []string
	if b.Netns != "" {
		names, _ := namespaces()
		if slices.Contains(names, b.Netns) {
			left = append(left, "namespace "+b.Netns)
		}
		if _, err := os.Stat("/run/netns/" + b.Netns); err == nil {
			left = append(left, "/run/netns/"+b.Netns)
		}
	}
	for _, pid := range b.PIDs() {
		if err := syscall.Kill(pid, 0); err != syscall.ESRCH {
			left = append(left, fmt.Sprintf("process %d", pid))
		}
	}
	return left
}
