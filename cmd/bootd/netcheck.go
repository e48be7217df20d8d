package main

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"strings"
	"time"

	"golang.org/x/sys/cpu"

	"github.com/ociboot/ociboot/efirt"
	"github.com/ociboot/ociboot/observe"
	"github.com/ociboot/ociboot/plan"
)

// netcheckArgs takes the netcheck words out of the load options: netcheck=URL
// makes bootd fetch URL over its own stack, hash it and report, instead of
// booting (sha256=HEX checks the digest). It returns the remaining words.
func netcheckArgs(args []string) (url, sum string, rest []string) {
	for _, a := range args {
		switch {
		case strings.HasPrefix(a, "netcheck="):
			url = strings.TrimPrefix(a, "netcheck=")
		case strings.HasPrefix(a, "sha256="):
			sum = strings.TrimPrefix(a, "sha256=")
		default:
			rest = append(rest, a)
		}
	}
	return url, sum, rest
}

// netcheck brings the network up as a boot would, downloads url through
// the loader's own stack, TLS and HTTP with the plan's trust settings,
// hashing as it goes, and prints the lease, the phase timings and the rate:
// the figures an operator needs when a registry is slow or unreachable.
func netcheck(log *observe.Logger, tl *observe.Timeline, p *plan.Plan, url, sum string) int {
	ctx, cancel := context.WithTimeout(context.Background(), p.AttemptTimeout())
	defer cancel()
	log.Milestone("netcheck: %s (CPU crypto: %s)", url, cryptoFeatures())
	pl, err := startPipeline(ctx, log, tl, p)
	if err != nil {
		reportFailure(log, err, "returning to the firmware")
		return 1
	}
	defer pl.stop(log)
	var trust plan.Target // the first target's trust settings, if any
	if len(p.Targets) > 0 {
		trust = p.Targets[0]
	}
	hc, err := pl.httpClient(trust)
	if err != nil {
		reportFailure(log, fail("setting up HTTPS", err, "the plan's CA certificates"), "returning to the firmware")
		return 1
	}
	var dnsStart, connStart, tlsStart time.Time
	trace := &httptrace.ClientTrace{
		DNSStart:          func(httptrace.DNSStartInfo) { dnsStart = time.Now() },
		DNSDone:           func(httptrace.DNSDoneInfo) { tl.Span(observe.PhaseDNS, "", time.Since(dnsStart), 0) },
		ConnectStart:      func(string, string) { connStart = time.Now() },
		ConnectDone:       func(string, string, error) { tl.Span("connect", "", time.Since(connStart), 0) },
		TLSHandshakeStart: func() { tlsStart = time.Now() },
		TLSHandshakeDone: func(cs tls.ConnectionState, err error) {
			if err == nil {
				tl.Span(observe.PhaseTLS, tls.VersionName(cs.Version)+" "+tls.CipherSuiteName(cs.CipherSuite)+" "+cs.NegotiatedProtocol, time.Since(tlsStart), 0)
			}
		},
	}
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(ctx, trace), "GET", url, nil)
	if err != nil {
		reportFailure(log, fail("reading the netcheck URL", err, ""), "returning to the firmware")
		return 1
	}
	began := time.Now()
	resp, err := hc.Do(req)
	if err != nil {
		reportFailure(log, fail("connecting to "+req.URL.Host, err, fetchCause(err)), "returning to the firmware")
		return 1
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		reportFailure(log, fail("GET "+url, fmt.Errorf("%s", resp.Status), ""), "returning to the firmware")
		return 1
	}
	h := sha256.New()
	bar := log.NewProgress("netcheck", resp.ContentLength)
	idle := efirt.ReadStats().Idle
	n, err := io.Copy(io.MultiWriter(h, &progressWriter{bar: bar}), resp.Body)
	bar.Finish(n)
	took := time.Since(began)
	idle = efirt.ReadStats().Idle - idle
	if err != nil {
		reportFailure(log, fail("downloading "+url, err, ""), "returning to the firmware")
		return 1
	}
	got := hex.EncodeToString(h.Sum(nil))
	tl.Span("download", url, took, n)
	if s, ok := pl.dev.(interface{ Summary() string }); ok {
		log.Logf("nic: %s", s.Summary())
	}
	log.Block(observe.Info, observe.FormatRates(pl.rates()))
	log.Block(observe.Info, tl.Summary())
	// An idle CPU means the network, not the loader, set the pace.
	log.Milestone("netcheck: %d bytes in %s, %s with SHA-256, CPU idle %d%%, sha256 %s", n, observe.FormatSeconds(took),
		observe.FormatRate(float64(n)/took.Seconds()), int(100*idle/max(took, 1)), got)
	if sum != "" && !strings.EqualFold(sum, got) {
		reportFailure(log, fail("checking "+url, fmt.Errorf("sha256 %s, want %s", got, sum), "the server sent other bytes"), "returning to the firmware")
		return 1
	}
	if sum != "" {
		log.Milestone("netcheck: sha256 matches")
	}
	return 0
}

// progressWriter feeds a download's running total to its progress line.
type progressWriter struct {
	bar  *observe.Progress
	done int64
}

func (w *progressWriter) Write(p []byte) (int, error) {
	w.done += int64(len(p))
	w.bar.Update(w.done)
	return len(p), nil
}

// reportFailure prints err as the final error block.
func reportFailure(log *observe.Logger, err error, next string) {
	f, ok := err.(*failure)
	if !ok {
		f = &failure{what: "netcheck", err: err}
	}
	log.Fail(observe.Failure{What: f.what, Err: f.err, Cause: f.cause, Next: next})
}

// cryptoFeatures lists the CPU features Go's crypto picks its code by, so
// a slow TLS transfer can be told apart from a slow network.
func cryptoFeatures() string {
	var f []string
	for _, c := range []struct {
		name string
		on   bool
	}{{"aes", cpu.X86.HasAES}, {"pclmulqdq", cpu.X86.HasPCLMULQDQ}, {"avx", cpu.X86.HasAVX}, {"avx2", cpu.X86.HasAVX2},
		{"arm64-aes", cpu.ARM64.HasAES}, {"arm64-sha2", cpu.ARM64.HasSHA2}, {"arm64-pmull", cpu.ARM64.HasPMULL}} {
		if c.on {
			f = append(f, c.name)
		}
	}
	if len(f) == 0 {
		return "none"
	}
	return strings.Join(f, " ")
}
