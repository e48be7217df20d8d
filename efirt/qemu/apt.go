//go:build linux

package qemu

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
)

// AptInstall installs Debian packages with the system's apt (root only). It
// shares this package's lock with the QEMU and firmware installs, so
// parallel test binaries queue instead of failing on apt's locks.
func AptInstall(log io.Writer, pkgs ...string) error { return aptInstall(log, pkgs...) }

// LockFile takes an exclusive lock on path (creating it), waiting for other
// holders in this or other processes; unlock releases it.
func LockFile(path string) (unlock func(), err error) { return lockFile(path) }

// CacheDir is where fetched firmware, packages and payloads are kept across
// runs ($OCIBOOT_CACHE or the user cache directory).
func CacheDir() (string, error) { return cacheDir() }

// PrivateApt downloads packages of one Debian suite and architecture with
// an apt configuration and state of its own under Dir, so the machine's
// sources, lists and architectures are left alone.
type PrivateApt struct {
	Suite string    // e.g. "trixie"
	Arch  string    // Debian architecture, e.g. "arm64"; "" = the machine's
	Dir   string    // work directory, created if needed; holds lists and apt's cache
	Log   io.Writer // apt's output, nil = discard

	aptGet, aptCache string
	opts             []string
}

// Update fetches the suite's package index. It must succeed before Download
// or Field.
func (a *PrivateApt) Update() error {
	mirror, err := debianMirror("/etc/apt")
	if err != nil {
		return err
	}
	if _, err := os.Stat(debianKeyring); err != nil {
		return fmt.Errorf("the Debian archive keyring: %w", err)
	}
	if a.aptGet, err = exec.LookPath("apt-get"); err != nil {
		return fmt.Errorf("no apt-get: %w", err)
	}
	if a.aptCache, err = exec.LookPath("apt-cache"); err != nil {
		return fmt.Errorf("no apt-cache: %w", err)
	}
	empty := filepath.Join(a.Dir, "empty")
	lists := filepath.Join(a.Dir, "lists")
	cache := filepath.Join(a.Dir, "cache")
	for _, d := range []string{empty, filepath.Join(lists, "partial"), filepath.Join(cache, "archives", "partial")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("creating apt directories: %w", err)
		}
	}
	sources := filepath.Join(a.Dir, "sources.list")
	line := fmt.Sprintf("deb [signed-by=%s] %s %s main\n", debianKeyring, mirror, a.Suite)
	if err := os.WriteFile(sources, []byte(line), 0o644); err != nil {
		return fmt.Errorf("writing the private sources list: %w", err)
	}
	a.opts = []string{
		"-o", "Dir::Etc::SourceList=" + sources,
		"-o", "Dir::Etc::SourceParts=" + empty,
		"-o", "Dir::Etc::Preferences=" + filepath.Join(empty, "none"),
		"-o", "Dir::Etc::PreferencesParts=" + empty,
		"-o", "Dir::State::Lists=" + lists,
		// A private status file: the machine's installed packages (and
		// their architectures) must not matter to downloads.
		"-o", "Dir::State::status=" + filepath.Join(empty, "status"),
		"-o", "Dir::Cache=" + cache,
		// The _apt sandbox user cannot enter root's cache directory.
		"-o", "APT::Sandbox::User=root",
		// Only the package index is needed.
		"-o", "Acquire::Languages=none",
		"-o", "Acquire::IndexTargets::deb::DEP-11::DefaultEnabled=false",
		"-o", "Acquire::IndexTargets::deb::DEP-11-icons::DefaultEnabled=false",
		"-o", "Acquire::IndexTargets::deb::DEP-11-icons-small::DefaultEnabled=false",
		"-o", "Acquire::IndexTargets::deb::DEP-11-icons-hidpi::DefaultEnabled=false",
		"-o", "Acquire::IndexTargets::deb::CNF::DefaultEnabled=false",
		// Fail rather than hang when the mirror is unreachable.
		"-o", "Acquire::http::Timeout=30",
		"-o", "Acquire::https::Timeout=30",
	}
	if a.Arch != "" {
		a.opts = append(a.opts, "-o", "APT::Architecture="+a.Arch, "-o", "APT::Architectures="+a.Arch)
	}
	if err := os.WriteFile(filepath.Join(empty, "status"), nil, 0o644); err != nil {
		return fmt.Errorf("writing the private status file: %w", err)
	}
	// --error-on=any: a failed fetch must fail here, not leave empty lists.
	if err := runApt(a.Log, "", a.aptGet, slices.Concat(a.opts, []string{"update", "--error-on=any"})); err != nil {
		return fmt.Errorf("updating %s's package list from %s: %w", a.Suite, mirror, err)
	}
	return nil
}

// Download fetches the named packages' .deb files into dest and returns
// their paths, one per package in order.
func (a *PrivateApt) Download(dest string, pkgs ...string) ([]string, error) {
	if a.opts == nil {
		return nil, fmt.Errorf("apt: Download before Update")
	}
	tmp, err := os.MkdirTemp(a.Dir, "download-")
	if err != nil {
		return nil, fmt.Errorf("creating a download directory: %w", err)
	}
	defer os.RemoveAll(tmp)
	if err := runApt(a.Log, tmp, a.aptGet, slices.Concat(a.opts, []string{"download"}, pkgs)); err != nil {
		return nil, fmt.Errorf("downloading %s from %s: %w", strings.Join(pkgs, " "), a.Suite, err)
	}
	var out []string
	for _, p := range pkgs {
		name, _, _ := strings.Cut(p, "=")
		name, _, _ = strings.Cut(name, ":")
		name, _, _ = strings.Cut(name, "/")
		m, _ := filepath.Glob(filepath.Join(tmp, name+"_*.deb"))
		if len(m) != 1 {
			return nil, fmt.Errorf("downloading %s: expected one %s_*.deb, got %d", p, name, len(m))
		}
		dst := filepath.Join(dest, filepath.Base(m[0]))
		if err := os.Rename(m[0], dst); err != nil {
			return nil, fmt.Errorf("moving %s: %w", m[0], err)
		}
		out = append(out, dst)
	}
	return out, nil
}

// Field returns a control field (e.g. "Depends") of the candidate version
// of pkg in the suite.
func (a *PrivateApt) Field(pkg, field string) (string, error) {
	if a.opts == nil {
		return "", fmt.Errorf("apt: Field before Update")
	}
	cmd := exec.Command(a.aptCache, slices.Concat(a.opts, []string{"show", "--no-all-versions", pkg})...)
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("apt-cache show %s (%s): %w", pkg, a.Suite, err)
	}
	for _, l := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(l, field+":"); ok {
			return strings.TrimSpace(v), nil
		}
	}
	return "", fmt.Errorf("%s (%s) has no %s field", pkg, a.Suite, field)
}

// DebVersion returns the Version field of a .deb file.
func DebVersion(deb string) (string, error) {
	out, err := exec.Command("dpkg-deb", "-f", deb, "Version").Output()
	if err != nil {
		return "", fmt.Errorf("reading the version of %s: %w", deb, err)
	}
	return strings.TrimSpace(string(out)), nil
}

// ExtractDeb unpacks a .deb's files into dir.
func ExtractDeb(deb, dir string) error {
	if out, err := exec.Command("dpkg-deb", "-x", deb, dir).CombinedOutput(); err != nil {
		return fmt.Errorf("unpacking %s: %w: %s", deb, err, lastLines(string(out), 5))
	}
	return nil
}

// CachedDebs returns a cache directory (under CacheDir()/debs/name) holding
// the unpacked files of pkgs from suite and arch, fetching them with a
// PrivateApt the first time. A file VERSION in it lists "pkg version" lines.
// Concurrent callers in any process fetch once.
func CachedDebs(log io.Writer, name, suite, arch string, pkgs ...string) (string, error) {
	cache, err := cacheDir()
	if err != nil {
		return "", err
	}
	root := filepath.Join(cache, "debs")
	final := filepath.Join(root, name)
	complete := func() bool { return exists(filepath.Join(final, versionFile)) }
	if complete() {
		return final, nil
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return "", fmt.Errorf("creating the package cache: %w", err)
	}
	unlock, err := lockFile(filepath.Join(root, name+".lock"))
	if err != nil {
		return "", err
	}
	defer unlock()
	if complete() {
		return final, nil
	}
	if err := os.RemoveAll(final); err != nil {
		return "", fmt.Errorf("removing an incomplete cache entry: %w", err)
	}
	tmp, err := os.MkdirTemp(root, name+".tmp-")
	if err != nil {
		return "", fmt.Errorf("creating a temporary directory: %w", err)
	}
	defer os.RemoveAll(tmp)
	logf(log, "fetching %s from %s (%s) into %s", strings.Join(pkgs, " "), suite, arch, final)
	apt := &PrivateApt{Suite: suite, Arch: arch, Dir: filepath.Join(tmp, "apt"), Log: log}
	if err := apt.Update(); err != nil {
		return "", err
	}
	debs, err := apt.Download(tmp, pkgs...)
	if err != nil {
		return "", err
	}
	unpacked := filepath.Join(tmp, "root")
	var versions strings.Builder
	for i, deb := range debs {
		v, err := DebVersion(deb)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(&versions, "%s %s\n", pkgs[i], v)
		if err := ExtractDeb(deb, unpacked); err != nil {
			return "", err
		}
	}
	if err := os.WriteFile(filepath.Join(unpacked, versionFile), []byte(versions.String()), 0o644); err != nil {
		return "", fmt.Errorf("recording the package versions: %w", err)
	}
	if err := os.Rename(unpacked, final); err != nil {
		return "", fmt.Errorf("moving the packages into the cache: %w", err)
	}
	return final, nil
}
