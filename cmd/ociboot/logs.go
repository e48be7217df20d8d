package main

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/ociboot/ociboot/observe"
)

const logsUsage = `usage: ociboot logs init [-size N] [-unit N] FILE
       ociboot logs [-all] FILE

init creates FILE as a scratch disk for the loader's log (a raw image: attach
it to a machine as a disk). Without init, prints the log the loader left on
the scratch disk FILE: the last boot's, or every boot's with -all. A boot
that exited (a panic, a failure) is followed by what the console showed
after its log's last flush, under a marker line.
`

// cmdLogs is `ociboot logs`.
func cmdLogs(args []string) int { return runLogs(args, os.Stdout, os.Stderr) }

func runLogs(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "init" {
		return logsInit(args[1:], stderr)
	}
	fs := flag.NewFlagSet("logs", flag.ContinueOnError)
	fs.SetOutput(stderr)
	all := fs.Bool("all", false, "print the log of every boot on the disk, oldest first")
	fs.Usage = func() { fmt.Fprint(stderr, logsUsage); fs.PrintDefaults() }
	files, ok := parseInterleaved(fs, args)
	if !ok || len(files) != 1 {
		fs.Usage()
		return 2
	}
	path := files[0]
	f, err := os.Open(path)
	if err != nil {
		fmt.Fprintf(stderr, "ociboot logs: %v\n", err)
		return 1
	}
	defer f.Close()
	rec, err := observe.Recover(f)
	if err != nil {
		fmt.Fprintf(stderr, "ociboot logs: %s: %v\n", path, err)
		return 1
	}
	for _, n := range rec.Notes {
		fmt.Fprintf(stderr, "ociboot logs: %s\n", n)
	}
	if rec.Torn > 0 {
		fmt.Fprintf(stderr, "ociboot logs: %d records were torn (a write cut short by a reset or power loss)\n", rec.Torn)
	}
	if len(rec.Runs) == 0 {
		fmt.Fprintf(stderr, "ociboot logs: %s: no log yet (the loader has not written to this disk)\n", path)
		return 1
	}
	runs := rec.Runs[len(rec.Runs)-1:]
	if *all {
		runs = rec.Runs
	}
	for _, r := range runs {
		if *all {
			fmt.Fprintf(stdout, "==== boot %d ====\n", r.Run)
		}
		io.WriteString(stdout, r.String())
	}
	return 0
}

func logsInit(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("logs init", flag.ContinueOnError)
	fs.SetOutput(stderr)
	size := fs.Int64("size", 4<<20, "image size in bytes")
	unit := fs.Int("unit", observe.DefaultUnitSize, "record size in bytes (a multiple of the disk's block size)")
	fs.Usage = func() { fmt.Fprint(stderr, logsUsage); fs.PrintDefaults() }
	files, ok := parseInterleaved(fs, args)
	if !ok || len(files) != 1 {
		fs.Usage()
		return 2
	}
	if err := InitScratch(files[0], *size, *unit); err != nil {
		fmt.Fprintf(stderr, "ociboot logs init: %v\n", err)
		return 1
	}
	return 0
}

// InitScratch creates path as a scratch disk of size bytes. It refuses to
// overwrite an existing file that is not a scratch disk already.
func InitScratch(path string, size int64, unit int) error {
	if b, err := os.ReadFile(path); err == nil && len(b) > 0 {
		if _, err := observe.ParseHeader(b); err != nil {
			return fmt.Errorf("%s exists and is not a scratch disk; not overwriting it", path)
		}
	} else if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	var g [8]byte
	rand.Read(g[:])
	if _, err := observe.FormatImage(f, size, unit, binary.LittleEndian.Uint64(g[:])); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	return f.Close()
}

// parseInterleaved parses flags that may come before or after the
// positional arguments (ociboot logs init FILE -size N) and returns the
// positional ones.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, bool) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, false
		}
		if fs.NArg() == 0 {
			return pos, true
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}
