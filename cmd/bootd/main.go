// Command bootd is the ociboot EFI loader: it reads its boot plan, brings
// up the actor pipeline (NIC poller, frames demux, IP and TCP, DHCP), pulls
// the plan's target from its OCI registry with every byte verified, tears
// the pipeline down and hands over to the kernel (or chain-loads an EFI
// program). Every failure says what failed and what happens next; when all
// targets fail it returns to the firmware.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/ociboot/ociboot/observe"
	"github.com/ociboot/ociboot/observe/efi"
	"github.com/ociboot/ociboot/plan"
	"github.com/ociboot/ociboot/uefi"
)

// version is set at build time with -ldflags=-X main.version=...
var version = "dev"

func main() {
	start := time.Now()
	log := observe.New(start)
	efi.Attach(log, efi.Options{})
	tl := observe.NewTimeline(start)
	st := uefi.ST()
	log.Milestone("ociboot bootd %s (%s, %s) on %s %#x, UEFI %d.%d", version, runtime.GOARCH, runtime.Version(),
		uefi.UCS2At(st.FirmwareVendor, 128), st.FirmwareRevision, st.Hdr.Revision>>16, st.Hdr.Revision&0xffff/10)
	tl.Mark("loader", "banner")

	url, sum, words := netcheckArgs(os.Args[1:])
	os.Args = append(os.Args[:1], words...)
	p, err := loadPlan(log)
	if err != nil {
		log.Fail(observe.Failure{What: "reading the boot plan", Err: err,
			Cause: "the plan embedded at build time, the ESP's " + plan.FileName + " or the load options are invalid",
			Next:  "returning to the firmware"})
		exit(log, 1)
	}
	if url != "" {
		exit(log, netcheck(log, tl, p, url, sum))
	}
	targets := p.Order()
	for i, t := range targets {
		next := "returning to the firmware"
		if i+1 < len(targets) {
			next = fmt.Sprintf("trying the next target, %q", targets[i+1].Name)
		}
		what := t.Ref
		if t.Embedded != "" {
			what = "embedded program " + t.Embedded
		}
		log.Milestone("bootd: target %q: %s (%d of %d)", t.Name, what, i+1, len(targets))
		if i > 0 {
			// The last attempt's pipeline is garbage now: collect it before
			// the next one allocates, so memory stays flat across targets.
			runtime.GC()
		}
		err := attempt(log, tl, p, t, i == 0)
		if err == nil {
			log.Milestone("bootd: target %q returned successfully; %s", t.Name, next)
			continue
		}
		var f *failure
		if !errors.As(err, &f) {
			f = &failure{what: "booting " + t.Name, err: err}
		}
		log.Fail(observe.Failure{What: f.what, Err: f.err, Cause: f.cause, Next: next})
	}
	log.Block(observe.Info, tl.Summary())
	exit(log, 1)
}

// exit flushes every sink and returns to the firmware with status.
func exit(log *observe.Logger, status int) {
	log.Flush()
	os.Exit(status)
}

// failure is an attempt's error with the words the operator needs.
type failure struct {
	what  string
	err   error
	cause string
}

func (f *failure) Error() string { return f.what + ": " + f.err.Error() }
func (f *failure) Unwrap() error { return f.err }

func fail(what string, err error, cause string) error {
	return &failure{what: what, err: err, cause: cause}
}

// maxPlanFile bounds the plan file read from the ESP.
const maxPlanFile = 1 << 20

// loadPlan merges the plan's sources in order: embedded, the ESP file,
// the load options.
func loadPlan(log *observe.Logger) (*plan.Plan, error) {
	p := &plan.Plan{}
	if data := plan.Embedded(); data != nil {
		e, err := plan.Parse(data)
		if err != nil {
			return nil, fmt.Errorf("embedded plan: %w", err)
		}
		p = e
		log.Logf("plan: embedded, %d target(s)", len(p.Targets))
	}
	switch data, err := uefi.ReadFileBesideImage(plan.FileName, maxPlanFile); {
	case err == nil:
		f, err := plan.Parse(data)
		if err != nil {
			return nil, fmt.Errorf("%s on the ESP: %w", plan.FileName, err)
		}
		p.Merge(f)
		log.Logf("plan: %s from the ESP, %d target(s)", plan.FileName, len(f.Targets))
	case errors.Is(err, uefi.ErrNoFile):
	default:
		log.Warnf("plan: %v (ignored)", err)
	}
	if words := plan.SplitWords(strings.Join(os.Args[1:], " ")); len(words) > 0 {
		if err := p.ApplyWords(words); err != nil {
			return nil, fmt.Errorf("load options: %w", err)
		}
		log.Logf("plan: load options %q", words)
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return p, nil
}

// attempt boots one target within the plan's timeout. It returns nil only
// for a chain-loaded program that returned success.
func attempt(log *observe.Logger, tl *observe.Timeline, p *plan.Plan, t plan.Target, first bool) error {
	if t.Embedded != "" {
		return chainEmbedded(log, tl, t)
	}
	ctx, cancel := context.WithTimeout(context.Background(), p.AttemptTimeout())
	defer cancel()
	pl, err := startPipeline(ctx, log, tl, p)
	if err != nil {
		return err
	}
	if first && p.ApplyBootFile(pl.lease.BootFile) {
		t.Ref = p.Order()[0].Ref
		log.Logf("plan: the DHCP boot file names %s; booting it", t.Ref)
	}
	set, err := fetch(ctx, log, tl, pl, t)
	if err != nil {
		log.Block(observe.Info, observe.FormatRates(pl.rates()))
		pl.stop(log)
		return err
	}
	defer set.Free()
	return handOff(log, tl, pl, t, set)
}
