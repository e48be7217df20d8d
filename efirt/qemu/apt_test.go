//go:build linux

package qemu

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// TestCachedDebsConcurrently fetches one small trixie package from two
// goroutines into an empty cache: both get the same complete entry, and no
// temporary directory is left.
func TestCachedDebsConcurrently(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("apt's private cache here needs root")
	}
	cache := t.TempDir()
	t.Setenv("OCIBOOT_CACHE", cache)
	var wg sync.WaitGroup
	dirs := make([]string, 2)
	errs := make([]error, 2)
	for i := range dirs {
		wg.Go(func() { dirs[i], errs[i] = CachedDebs(logWriter{t}, "shell", "trixie", "", "efi-shell-x64") })
	}
	wg.Wait()
	for i := range dirs {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
	}
	if dirs[0] != dirs[1] {
		t.Errorf("two cache entries: %s, %s", dirs[0], dirs[1])
	}
	if _, err := os.Stat(filepath.Join(dirs[0], "usr/share/efi-shell-x64/shellx64.efi")); err != nil {
		t.Error(err)
	}
	v, err := os.ReadFile(filepath.Join(dirs[0], versionFile))
	if err != nil || !strings.HasPrefix(string(v), "efi-shell-x64 ") {
		t.Errorf("VERSION %q, %v", v, err)
	}
	left, _ := filepath.Glob(filepath.Join(cache, "debs", "*.tmp-*"))
	if len(left) > 0 {
		t.Errorf("temporary directories left: %v", left)
	}
}
