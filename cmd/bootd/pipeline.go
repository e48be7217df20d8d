package main

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/ociboot/ociboot/actors"
	"github.com/ociboot/ociboot/nic"
	"github.com/ociboot/ociboot/observe"
	"github.com/ociboot/ociboot/plan"
	"github.com/ociboot/ociboot/services"
	"github.com/ociboot/ociboot/stack"
)

// teardownDeadline bounds stopping every actor before handoff.
const teardownDeadline = 2 * time.Second

// pipeline is the running network: the supervisor with its actors, the
// stack and the lease it was configured with, and the HTTP clients made
// over it.
type pipeline struct {
	sup      *actors.Supervisor
	dev      nic.Device
	stack    *stack.Stack
	lease    services.Lease
	resolver *services.Resolver
	sampler  *observe.Sampler
	clients  []*http.Client
	stopped  bool
}

// httpClient returns an HTTP client that dials through the pipeline's
// stack and trusts what target t says (its CA certificates, alone or beside
// the built-in roots); stop closes its idle connections.
func (pl *pipeline) httpClient(t plan.Target) (*http.Client, error) {
	cfg := services.HTTPConfig{CACerts: []byte(strings.Join(t.CA, "\n")), OnlyCACerts: t.OnlyCA}
	hc, err := services.NewHTTPClient(pl.stack.DialContext, cfg)
	if err != nil {
		return nil, err
	}
	pl.clients = append(pl.clients, hc)
	return hc, nil
}

// startPipeline brings the network up: NIC, frames and IP actors, then DHCP
// (or the plan's static configuration), and configures the stack.
func startPipeline(ctx context.Context, log *observe.Logger, tl *observe.Timeline, p *plan.Plan) (*pipeline, error) {
	path, err := nic.ParsePath(p.NIC)
	if err != nil {
		return nil, fail("choosing the network card", err, "the plan's nic setting")
	}
	dev, err := nic.Open(path, log.Logf)
	if err != nil {
		return nil, fail("bringing up the network card", err,
			"no virtio-net device the loader can drive and no firmware Simple Network Protocol")
	}
	tl.Mark("nic", dev.String())
	pl := &pipeline{sup: actors.New(log.Logf), dev: dev, sampler: observe.NewSampler(time.Now())}
	pl.sup.OnTeardown(func() {
		if err := dev.Close(); err != nil {
			log.Warnf("nic: reset: %v", err)
		}
	})
	poller := nic.NewPoller(dev, log.Logf)
	pl.sup.Add(poller)
	pl.stack = stack.New(poller, stack.Options{Logf: log.Logf})
	var names []string
	for _, a := range pl.stack.Actors() {
		pl.sup.Add(a, actors.After("nic"))
		names = append(names, a.Name())
	}

	var dhcp *services.DHCP
	if s := p.Network; s != nil {
		l, err := staticLease(s)
		if err != nil {
			return nil, fail("static network configuration", err, "the plan's network section")
		}
		dhcp = services.NewStaticDHCP(l, log.Logf)
	} else {
		conn, err := pl.stack.ListenUDP(netip.AddrPortFrom(netip.IPv4Unspecified(), 68))
		if err != nil {
			pl.stop(log)
			return nil, fail("opening the DHCP port", err, "")
		}
		// DHCP gives up before the attempt does, so its own message (which
		// says what it waited for) is the one the operator reads.
		dhcp, err = services.NewDHCP(services.DHCPConfig{Conn: conn, MAC: dev.MAC(), Logf: log.Logf,
			Timeout: min(30*time.Second, p.AttemptTimeout()*2/3)})
		if err != nil {
			pl.stop(log)
			return nil, fail("starting DHCP", err, "")
		}
	}
	pl.sup.Add(dhcp, actors.After(names...))
	began := time.Now()
	if err := pl.sup.Start(ctx, p.AttemptTimeout()); err != nil {
		pl.stop(log)
		return nil, fail("getting a network address", err,
			"no DHCP server answered on this network (or the link is down); a static network in the plan avoids DHCP")
	}
	lease, ok := dhcp.Lease()
	if !ok {
		pl.stop(log)
		return nil, fail("getting a network address", fmt.Errorf("DHCP reported ready without a lease"), "")
	}
	pl.lease = lease
	tl.Span("dhcp", pl.lease.Addr.String(), time.Since(began), 0)
	cfg := stack.Config{Addr: pl.lease.Addr, Gateway: pl.lease.Router(), MTU: pl.lease.MTU}
	for _, r := range pl.lease.Routes {
		cfg.Routes = append(cfg.Routes, stack.Route{Dst: r.Dest, Via: r.Gateway})
	}
	if err := pl.stack.Configure(cfg); err != nil {
		pl.stop(log)
		return nil, fail("configuring the network", err, "the lease's address or routes are unusable")
	}
	pl.resolver = services.NewResolver(pl.lease.DNS, pl.lease.Search, pl.stack.DialContext)
	pl.stack.SetResolver(pl.resolver)
	go pl.watch(ctx, log, p.Live)
	return pl, nil
}

// watch reports an actor failure while the boot goes on and, when the plan
// asks for it, prints a line of per-actor rates every second; the
// attempt's context ends it.
func (pl *pipeline) watch(ctx context.Context, log *observe.Logger, live bool) {
	var tick <-chan time.Time
	var sampler *observe.Sampler
	if live {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		tick, sampler = t.C, observe.NewSampler(time.Now())
	}
	for {
		select {
		case err := <-pl.sup.Failed():
			log.Errorf("bootd: %v", err)
		case <-tick:
			log.Logf("live: %s", observe.FormatLive(sampler.Sample(pl.snapshots())))
		case <-ctx.Done():
			return
		}
	}
}

// snapshots samples every actor's counters, the TCP connections' together.
func (pl *pipeline) snapshots() []actors.Snapshot {
	return append(pl.sup.Snapshots(), pl.stack.TCPCounters().Snapshot("tcp"))
}

// rates is each actor's throughput since the pipeline started.
func (pl *pipeline) rates() []observe.Rate { return pl.sampler.Sample(pl.snapshots()) }

// stop tears the pipeline down: every actor in reverse order within the
// deadline, then the NIC reset, whatever happened before.
func (pl *pipeline) stop(log *observe.Logger) {
	if pl.stopped {
		return
	}
	pl.stopped = true
	// Idle keep-alive connections would otherwise keep their transport's
	// goroutines, buffers and TCP rings until the stack's end reaches them.
	for _, hc := range pl.clients {
		hc.CloseIdleConnections()
	}
	pl.clients = nil
	for _, r := range pl.sup.Stop(time.Now().Add(teardownDeadline)) {
		if r.Stuck {
			log.Warnf("bootd: actor %s did not stop within %v", r.Name, teardownDeadline)
		}
	}
}

// staticLease turns the plan's static network into a lease.
func staticLease(s *plan.Static) (services.Lease, error) {
	var l services.Lease
	addr, err := netip.ParsePrefix(s.Address)
	if err != nil {
		return l, err
	}
	l.Addr = addr
	if s.Gateway != "" {
		gw, err := netip.ParseAddr(s.Gateway)
		if err != nil {
			return l, err
		}
		l.Routers = []netip.Addr{gw}
		l.Routes = []services.Route{{Dest: netip.PrefixFrom(netip.IPv4Unspecified(), 0), Gateway: gw}}
	}
	for _, d := range s.DNS {
		a, err := netip.ParseAddr(d)
		if err != nil {
			return l, fmt.Errorf("dns %q: %w", d, err)
		}
		l.DNS = append(l.DNS, a)
	}
	l.Search = s.Search
	return l, nil
}
