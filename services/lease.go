package services

import (
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// A Route is one entry of the routing table a lease asks for.
type Route struct {
	Dest    netip.Prefix
	Gateway netip.Addr // 0.0.0.0: the destination is on the link
}

// A Lease is the network configuration a DHCP server handed out (or the
// operator configured statically). Its slices are shared: do not modify them.
type Lease struct {
	Addr   netip.Prefix // our address with the subnet's prefix length
	Server netip.Addr   // server identifier (option 54)

	// Routers is option 3 as the server sent it. Routes is what to install:
	// the classless static routes (option 121) when the server sent them,
	// in which case option 3 is ignored (RFC 3442), else a default route
	// via the first router.
	Routers []netip.Addr
	Routes  []Route

	DNS    []netip.Addr // option 6
	Domain string       // option 15
	Search []string     // option 119, else Domain alone when given
	MTU    int          // option 26; 0 when not given

	// LeaseTime is zero for an infinite (or static) lease; T1 and T2 are
	// the renewal and rebinding times, all counted from Acquired.
	LeaseTime time.Duration
	T1, T2    time.Duration
	Acquired  time.Time

	// The boot plan's hints: siaddr, the server name (sname or option 66)
	// and the boot file (file or option 67).
	NextServer netip.Addr
	ServerName string
	BootFile   string
}

// Router is the gateway of the default route, if there is one.
func (l *Lease) Router() netip.Addr {
	for _, r := range l.Routes {
		if r.Dest.Bits() == 0 {
			return r.Gateway
		}
	}
	return netip.Addr{}
}

// fillRoutes derives Routes from Routers when the lease has no classless
// routes of its own.
func (l *Lease) fillRoutes() {
	if len(l.Routes) == 0 && len(l.Routers) > 0 {
		l.Routes = []Route{{Dest: netip.PrefixFrom(netip.IPv4Unspecified(), 0), Gateway: l.Routers[0]}}
	}
	if len(l.Search) == 0 && l.Domain != "" {
		l.Search = []string{l.Domain}
	}
}

// String is the lease as the console shows it.
func (l *Lease) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%v", l.Addr)
	if l.Server.IsValid() {
		fmt.Fprintf(&b, " from %v", l.Server)
	}
	if r := l.Router(); r.IsValid() {
		fmt.Fprintf(&b, ", router %v", r)
	}
	if n := len(l.Routes); n > 1 || (n == 1 && l.Routes[0].Dest.Bits() != 0) {
		fmt.Fprintf(&b, ", %d routes", n)
	}
	if len(l.DNS) > 0 {
		b.WriteString(", dns")
		for i, a := range l.DNS {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, " %v", a)
		}
	}
	if len(l.Search) > 0 {
		fmt.Fprintf(&b, ", search %s", strings.Join(l.Search, " "))
	}
	if l.MTU != 0 {
		fmt.Fprintf(&b, ", mtu %d", l.MTU)
	}
	if l.LeaseTime != 0 {
		fmt.Fprintf(&b, ", lease %v", l.LeaseTime)
	}
	if l.BootFile != "" {
		fmt.Fprintf(&b, ", boot-file %q", l.BootFile)
	}
	if l.NextServer.IsValid() && !l.NextServer.IsUnspecified() {
		fmt.Fprintf(&b, ", next-server %v", l.NextServer)
	}
	return b.String()
}
