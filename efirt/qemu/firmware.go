//go:build linux

package qemu

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
)

// Firmware describes the firmware files chosen for an arch.
type Firmware struct {
	Code    string // firmware code image, mapped read-only
	Vars    string // pristine variable store; each run uses a copy
	Version string // e.g. "edk2 2025.02 (trixie, ovmf 2025.02-8+deb13u1)"
	Source  string // "cache", "system" or "flag"
}

const (
	systemOVMF     = "/usr/share/OVMF"
	ovmfCode       = "OVMF_CODE_4M.fd"
	ovmfVars       = "OVMF_VARS_4M.fd"
	debianKeyring  = "/usr/share/keyrings/debian-archive-keyring.gpg"
	trixieName     = "ovmf-trixie"
	versionFile    = "VERSION"
	firmwareSubdir = "firmware"
)

// FindFirmware returns the firmware to use: cfg.Firmware if set (Vars is the
// sibling file with CODE replaced by VARS in the name), else trixie's OVMF
// (edk2 2025.02) from the cache, fetching it if missing, else the system's
// OVMF (bookworm's edk2 2022.11), saying so on cfg.Log.
func FindFirmware(cfg Config) (Firmware, error) {
	arch := archOf(cfg)
	if _, ok := qemuPackage[arch]; !ok {
		return Firmware{}, errUnsupportedArch(arch)
	}
	if cfg.Firmware != "" {
		fw, err := flagFirmware(cfg.Firmware)
		if err == nil {
			logf(cfg.Log, "using firmware %s (given in Config.Firmware)", fw.Code)
		}
		return fw, err
	}
	if arch != "amd64" {
		return findArchFirmware(cfg, arch)
	}
	fw, err := trixieFirmware(cfg.Log)
	if err == nil {
		logf(cfg.Log, "using firmware %s: %s (from the cache)", fw.Code, fw.Version)
		return fw, nil
	}
	logf(cfg.Log, "could not get trixie's OVMF: %v", err)
	sys, serr := systemFirmware(cfg.Log)
	if serr != nil {
		return Firmware{}, fmt.Errorf("no firmware: trixie's OVMF: %v; system OVMF: %w", err, serr)
	}
	logf(cfg.Log, "FALLING BACK to the system's OVMF %s: %s, older than trixie's edk2 2025.02", sys.Code, sys.Version)
	return sys, nil
}

// flagFirmware uses a firmware image the caller chose, with its variable
// store found by the usual naming (OVMF_CODE_4M.fd -> OVMF_VARS_4M.fd).
func flagFirmware(code string) (Firmware, error) {
	if _, err := os.Stat(code); err != nil {
		return Firmware{}, fmt.Errorf("firmware code image: %w", err)
	}
	dir, base := filepath.Split(code)
	var tried []string
	for _, r := range [][2]string{{"CODE", "VARS"}, {"code", "vars"}} {
		i := strings.LastIndex(base, r[0])
		if i < 0 {
			continue
		}
		vars := filepath.Join(dir, base[:i]+r[1]+base[i+len(r[0]):])
		if _, err := os.Stat(vars); err == nil {
			return Firmware{Code: code, Vars: vars, Version: "unknown (given by the caller)", Source: "flag"}, nil
		}
		tried = append(tried, vars)
	}
	if len(tried) == 0 {
		return Firmware{}, fmt.Errorf("firmware %s: cannot derive the variable store's name (no CODE in the file name)", code)
	}
	return Firmware{}, fmt.Errorf("firmware %s: variable store %s not found", code, strings.Join(tried, " or "))
}

// trixieFirmware returns trixie's OVMF from the cache, fetching it first
// when the cache does not have it.
func trixieFirmware(log io.Writer) (Firmware, error) {
	cache, err := cacheDir()
	if err != nil {
		return Firmware{}, err
	}
	root := filepath.Join(cache, firmwareSubdir)
	final := filepath.Join(root, trixieName)
	if fw, ok := readCachedFirmware(final); ok {
		return fw, nil
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return Firmware{}, fmt.Errorf("creating the firmware cache: %w", err)
	}
	// Concurrent runs (parallel test binaries) fetch once: the others wait
	// here and then find the result.
	unlock, err := lockFile(filepath.Join(root, trixieName+".lock"))
	if err != nil {
		return Firmware{}, err
	}
	defer unlock()
	if fw, ok := readCachedFirmware(final); ok {
		return fw, nil
	}
	if err := os.RemoveAll(final); err != nil {
		return Firmware{}, fmt.Errorf("removing an incomplete firmware cache: %w", err)
	}
	logf(log, "fetching trixie's ovmf package into %s", final)
	if err := fetchTrixieOVMF(log, root, final); err != nil {
		return Firmware{}, err
	}
	fw, ok := readCachedFirmware(final)
	if !ok {
		return Firmware{}, fmt.Errorf("fetched firmware in %s is incomplete", final)
	}
	return fw, nil
}

// readCachedFirmware reports the firmware in a complete cache entry.
func readCachedFirmware(dir string) (Firmware, bool) {
	v, err := os.ReadFile(filepath.Join(dir, versionFile))
	if err != nil {
		return Firmware{}, false
	}
	fw := Firmware{
		Code:    filepath.Join(dir, "usr/share/OVMF", ovmfCode),
		Vars:    filepath.Join(dir, "usr/share/OVMF", ovmfVars),
		Version: describeVersion(strings.TrimSpace(string(v)), "trixie"),
		Source:  "cache",
	}
	for _, f := range []string{fw.Code, fw.Vars} {
		if _, err := os.Stat(f); err != nil {
			return Firmware{}, false
		}
	}
	return fw, true
}

// describeVersion turns a Debian package version of ovmf into the edk2
// release it packages, keeping the full version for reference.
func describeVersion(debVersion, suite string) string {
	return describePackageVersion("ovmf", debVersion, suite)
}

// describePackageVersion is describeVersion for any EDK2 package.
func describePackageVersion(pkg, debVersion, suite string) string {
	up := debVersion
	if _, after, ok := strings.Cut(up, ":"); ok {
		up = after // epoch
	}
	if i := strings.LastIndex(up, "-"); i >= 0 {
		up = up[:i] // Debian revision
	}
	return fmt.Sprintf("edk2 %s (%s, %s %s)", up, suite, pkg, debVersion)
}

// lockFile takes an exclusive lock on path, waiting for other holders.
func lockFile(path string) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("opening lock file: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("locking %s: %w", path, err)
	}
	// Closing the file releases the lock.
	return func() { f.Close() }, nil
}

// fetchTrixieOVMF downloads trixie's ovmf package with a private apt
// configuration (the machine's own apt setup is left alone) and unpacks it
// into final. It works in a temporary directory beside final and renames it
// into place, so final is either complete or absent.
func fetchTrixieOVMF(log io.Writer, root, final string) error {
	tmp, err := os.MkdirTemp(root, trixieName+".tmp-")
	if err != nil {
		return fmt.Errorf("creating a temporary directory: %w", err)
	}
	defer os.RemoveAll(tmp)
	apt := &PrivateApt{Suite: "trixie", Dir: filepath.Join(tmp, "apt"), Log: log}
	if err := apt.Update(); err != nil {
		return err
	}
	debs, err := apt.Download(tmp, "ovmf")
	if err != nil {
		return fmt.Errorf("downloading trixie's ovmf: %w", err)
	}
	version, err := DebVersion(debs[0])
	if err != nil {
		return err
	}
	unpacked := filepath.Join(tmp, "root")
	if err := ExtractDeb(debs[0], unpacked); err != nil {
		return err
	}
	for _, f := range []string{ovmfCode, ovmfVars} {
		if _, err := os.Stat(filepath.Join(unpacked, "usr/share/OVMF", f)); err != nil {
			return fmt.Errorf("trixie's ovmf %s lacks %s: %w", version, f, err)
		}
	}
	if err := os.WriteFile(filepath.Join(unpacked, versionFile), []byte(version+"\n"), 0o644); err != nil {
		return fmt.Errorf("recording the firmware version: %w", err)
	}
	if err := os.Rename(unpacked, final); err != nil {
		return fmt.Errorf("moving the firmware into the cache: %w", err)
	}
	logf(log, "fetched trixie's ovmf %s", version)
	return nil
}

// systemFirmware returns the OVMF installed under /usr/share/OVMF,
// installing Debian's ovmf package when it is missing.
func systemFirmware(log io.Writer) (Firmware, error) {
	fw := Firmware{
		Code:   filepath.Join(systemOVMF, ovmfCode),
		Vars:   filepath.Join(systemOVMF, ovmfVars),
		Source: "system",
	}
	if !exists(fw.Code) || !exists(fw.Vars) {
		logf(log, "%s not found; installing the Debian package ovmf", fw.Code)
		if err := aptInstall(log, "ovmf"); err != nil {
			return Firmware{}, fmt.Errorf("%s missing and not installed (install the Debian package ovmf): %w", fw.Code, err)
		}
		if !exists(fw.Code) || !exists(fw.Vars) {
			return Firmware{}, fmt.Errorf("%s or %s still missing after installing ovmf", fw.Code, fw.Vars)
		}
	}
	fw.Version = "unknown (system)"
	if out, err := exec.Command("dpkg-query", "-W", "-f=${Version}", "ovmf").Output(); err == nil && len(out) > 0 {
		fw.Version = describeVersion(strings.TrimSpace(string(out)), osCodename())
	}
	return fw, nil
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// osCodename returns the machine's release codename (e.g. "bookworm").
func osCodename() string {
	data, err := os.ReadFile("/etc/os-release")
	if err != nil {
		return "system"
	}
	for _, l := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(l, "VERSION_CODENAME="); ok && v != "" {
			return strings.Trim(v, `"'`)
		}
	}
	return "system"
}

// aptSource is one entry of the apt sources, in either file format.
type aptSource struct {
	Types, URIs, Suites, Components []string
}

// debianSuites are the suites of Debian's main archive we may find on a
// Debian machine, the machine's own release first; any of them shows the
// URI of a mirror that also serves trixie.
var debianSuites = []string{"bookworm", "trixie", "forky", "bullseye", "stable", "testing", "unstable", "sid", "oldstable"}

// debianMirror finds the URI of the Debian mirror in the machine's apt
// sources (under etcApt), so the fetch uses what this machine can reach.
func debianMirror(etcApt string) (string, error) {
	var srcs []aptSource
	if data, err := os.ReadFile(filepath.Join(etcApt, "sources.list")); err == nil {
		srcs = append(srcs, parseOneLineSources(string(data))...)
	}
	for _, pat := range []string{"*.list", "*.sources"} {
		files, _ := filepath.Glob(filepath.Join(etcApt, "sources.list.d", pat))
		for _, f := range files {
			data, err := os.ReadFile(f)
			if err != nil {
				continue
			}
			if strings.HasSuffix(f, ".sources") {
				srcs = append(srcs, parseDeb822Sources(string(data))...)
			} else {
				srcs = append(srcs, parseOneLineSources(string(data))...)
			}
		}
	}
	if uri, ok := pickMirror(srcs); ok {
		return uri, nil
	}
	return "", errors.New("no Debian mirror in the apt sources (want a deb entry for bookworm with component main)")
}

// pickMirror returns the URI serving a Debian release suite with main,
// preferring the suites in debianSuites order.
func pickMirror(srcs []aptSource) (string, bool) {
	for _, suite := range debianSuites {
		for _, s := range srcs {
			if !slices.Contains(s.Types, "deb") || !slices.Contains(s.Suites, suite) || !slices.Contains(s.Components, "main") {
				continue
			}
			for _, u := range s.URIs {
				if !strings.HasPrefix(u, "cdrom:") {
					return strings.TrimRight(u, "/"), true
				}
			}
		}
	}
	return "", false
}

// parseOneLineSources parses the classic format:
// "deb [opt=val ...] URI SUITE COMPONENT...".
func parseOneLineSources(text string) []aptSource {
	var srcs []aptSource
	for _, line := range strings.Split(text, "\n") {
		line, _, _ = strings.Cut(line, "#")
		f := strings.Fields(line)
		if len(f) < 3 {
			continue
		}
		typ, rest := f[0], f[1:]
		if strings.HasPrefix(rest[0], "[") {
			// Options may be spread over several fields: skip to the "]".
			i := slices.IndexFunc(rest, func(s string) bool { return strings.HasSuffix(s, "]") })
			if i < 0 {
				continue
			}
			rest = rest[i+1:]
		}
		if len(rest) < 2 {
			continue
		}
		srcs = append(srcs, aptSource{Types: []string{typ}, URIs: rest[:1], Suites: rest[1:2], Components: rest[2:]})
	}
	return srcs
}

// parseDeb822Sources parses the deb822 format (.sources files): stanzas
// separated by blank lines, "Field: value" with continuation lines.
func parseDeb822Sources(text string) []aptSource {
	var srcs []aptSource
	fields := map[string]string{}
	last := ""
	flush := func() {
		if len(fields) > 0 && !strings.EqualFold(strings.TrimSpace(fields["enabled"]), "no") {
			srcs = append(srcs, aptSource{
				Types:      strings.Fields(fields["types"]),
				URIs:       strings.Fields(fields["uris"]),
				Suites:     strings.Fields(fields["suites"]),
				Components: strings.Fields(fields["components"]),
			})
		}
		fields = map[string]string{}
		last = ""
	}
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.TrimSpace(line) == "":
			flush()
		case strings.HasPrefix(line, "#"):
		case line[0] == ' ' || line[0] == '\t':
			if last != "" {
				fields[last] += " " + strings.TrimSpace(line)
			}
		default:
			k, v, ok := strings.Cut(line, ":")
			if !ok {
				continue
			}
			last = strings.ToLower(strings.TrimSpace(k))
			fields[last] = strings.TrimSpace(v)
		}
	}
	flush()
	return srcs
}

// SystemFirmware returns the distribution's own firmware for cfg.Arch
// (bookworm's OVMF, edk2 2022.11, on this project's machines), installing it
// when missing. Tests use it to check a program on older firmware too.
func SystemFirmware(cfg Config) (Firmware, error) {
	switch a := archOf(cfg); a {
	case "amd64":
		return systemFirmware(cfg.Log)
	case "arm64":
		return systemArchFirmware(cfg.Log, archFirmwares[a])
	default:
		return Firmware{}, errUnsupportedArch(a)
	}
}

// archFirmware says where the EDK2 build for an architecture other than
// amd64 comes from: trixie's package (edk2 2025.02) unpacked into the cache,
// else the machine's own package.
type archFirmware struct {
	pkg        string // Debian package, the same name in both suites (Architecture: all)
	dir        string // where the package puts the images
	code, vars string // trixie's file names
	sysCode    string // the machine's (bookworm's) code image name, if different
}

var archFirmwares = map[string]archFirmware{
	// Trixie splits AAVMF into secure-boot and plain builds; the plain one
	// starts an unsigned loader without enrolled keys either way, and is
	// the one FACTS.md measured.
	"arm64":   {pkg: "qemu-efi-aarch64", dir: "usr/share/AAVMF", code: "AAVMF_CODE.no-secboot.fd", vars: "AAVMF_VARS.fd", sysCode: "AAVMF_CODE.fd"},
	"riscv64": {pkg: "qemu-efi-riscv64", dir: "usr/share/qemu-efi-riscv64", code: "RISCV_VIRT_CODE.fd", vars: "RISCV_VIRT_VARS.fd"},
	"loong64": {pkg: "qemu-efi-loongarch64", dir: "usr/share/qemu-efi-loongarch64", code: "QEMU_EFI.fd", vars: "QEMU_VARS.fd"},
}

// findArchFirmware returns trixie's firmware for arch from the package
// cache, fetching it once, else the machine's own package.
func findArchFirmware(cfg Config, arch string) (Firmware, error) {
	af := archFirmwares[arch]
	root, err := CachedDebs(cfg.Log, af.pkg+"-trixie", "trixie", "", af.pkg)
	if err == nil {
		fw := Firmware{
			Code:   filepath.Join(root, af.dir, af.code),
			Vars:   filepath.Join(root, af.dir, af.vars),
			Source: "cache",
		}
		if !exists(fw.Code) || !exists(fw.Vars) {
			err = fmt.Errorf("trixie's %s lacks %s or %s", af.pkg, af.code, af.vars)
		} else {
			fw.Version = "unknown (trixie)"
			if v, verr := os.ReadFile(filepath.Join(root, versionFile)); verr == nil {
				if f := strings.Fields(string(v)); len(f) >= 2 {
					fw.Version = describePackageVersion(af.pkg, f[1], "trixie")
				}
			}
			logf(cfg.Log, "using firmware %s: %s (from the cache)", fw.Code, fw.Version)
			return fw, nil
		}
	}
	logf(cfg.Log, "could not get trixie's %s: %v", af.pkg, err)
	sys, serr := systemArchFirmware(cfg.Log, af)
	if serr != nil {
		return Firmware{}, fmt.Errorf("no firmware: trixie's %s: %v; system %s: %w", af.pkg, err, af.pkg, serr)
	}
	logf(cfg.Log, "FALLING BACK to the system's %s: %s, older than trixie's edk2 2025.02", sys.Code, sys.Version)
	return sys, nil
}

// systemArchFirmware returns the machine's own package of af, installing
// it when missing.
func systemArchFirmware(log io.Writer, af archFirmware) (Firmware, error) {
	code := af.sysCode
	if code == "" {
		code = af.code
	}
	dir := filepath.Join("/", af.dir)
	fw := Firmware{Code: filepath.Join(dir, code), Vars: filepath.Join(dir, af.vars), Source: "system"}
	if !exists(fw.Code) || !exists(fw.Vars) {
		logf(log, "%s not found; installing the Debian package %s", fw.Code, af.pkg)
		if err := aptInstall(log, af.pkg); err != nil {
			return Firmware{}, fmt.Errorf("%s missing and not installed (install the Debian package %s): %w", fw.Code, af.pkg, err)
		}
		if !exists(fw.Code) || !exists(fw.Vars) {
			return Firmware{}, fmt.Errorf("%s or %s still missing after installing %s", fw.Code, fw.Vars, af.pkg)
		}
	}
	fw.Version = "unknown (system)"
	if out, err := exec.Command("dpkg-query", "-W", "-f=${Version}", af.pkg).Output(); err == nil && len(out) > 0 {
		fw.Version = describePackageVersion(af.pkg, strings.TrimSpace(string(out)), osCodename())
	}
	return fw, nil
}
