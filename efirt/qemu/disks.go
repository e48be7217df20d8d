//go:build linux

package qemu

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/ociboot/ociboot/observe"
)

// scratchSize is the size of the scratch disk ScratchLog attaches.
const scratchSize = 4 << 20

// Disks go in PCI slots firstDiskSlot and up on q35 (0x1f is the LPC
// bridge).
const (
	firstDiskSlot = 0x10
	maxDisks      = 0x1f - firstDiskSlot
)

// diskArgs returns the QEMU arguments that attach cfg's disks, each as a
// virtio-blk PCI device, after creating the scratch disk in dir when
// cfg.ScratchLog asks for one (its path is returned, else "").
func diskArgs(cfg Config, dir string) (scratch string, args []string, err error) {
	disks := cfg.Disks
	if cfg.ScratchLog {
		scratch = filepath.Join(dir, "scratch.img")
		f, err := os.Create(scratch)
		if err != nil {
			return "", nil, fmt.Errorf("creating the scratch disk: %w", err)
		}
		_, err = observe.FormatImage(f, scratchSize, 0, uint64(os.Getpid()))
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return "", nil, fmt.Errorf("creating the scratch disk: %w", err)
		}
		disks = append([]string{scratch}, disks...)
	}
	if len(disks) > maxDisks {
		return "", nil, fmt.Errorf("%d disks: at most %d can be attached", len(disks), maxDisks)
	}
	for i, d := range disks {
		id := "disk" + strconv.Itoa(i)
		// PCI slots after the ESP's: the firmware tries boot options in
		// PCI order, and a data disk before the ESP is a failed boot
		// option the runner would take for a firmware failure.
		args = append(args,
			"-drive", "if=none,format=raw,id="+id+",file="+optValue(d),
			"-device", fmt.Sprintf("virtio-blk-pci,drive=%s,addr=%#x", id, firstDiskSlot+i))
	}
	return scratch, args, nil
}

// showScratchLog recovers the scratch disk's log into res and, when the
// console shows none of it (a firmware whose ConOut does not reach the
// serial port), writes it to cfg.Stdout.
func showScratchLog(cfg Config, scratch string, res *Result) {
	if scratch == "" {
		return
	}
	f, err := os.Open(scratch)
	if err != nil {
		logf(cfg.Log, "scratch disk: %v", err)
		return
	}
	defer f.Close()
	rec, err := observe.Recover(f)
	if err != nil {
		logf(cfg.Log, "scratch disk: %v", err)
		return
	}
	last := rec.Last()
	if last == nil {
		logf(cfg.Log, "scratch disk: the guest wrote no log to it")
		return
	}
	res.ScratchLog = last.String()
	first, _, _ := strings.Cut(strings.TrimSpace(last.Text), "\n")
	if strings.Contains(res.Console, first) || cfg.Stdout == nil {
		return
	}
	fmt.Fprintf(cfg.Stdout, "\n---- the guest's log did not reach the serial console; recovered from its scratch disk: ----\n%s", res.ScratchLog)
}
