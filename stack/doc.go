// Package stack is ociboot's IPv4 network layer and transports: IPv4 with
// header validation, ICMP echo and unreachable handling, UDP endpoints
// (broadcast included, for DHCP before an address is set) and client-side
// TCP, each connection an actor (one goroutine owning its state) exposed as
// a net.Conn that crypto/tls and net/http use unchanged. A connect ends at
// once, with an error naming the cause, on an ICMP unreachable or when the
// next hop does not answer ARP (errors.Is(err, syscall.EHOSTUNREACH)).
//
// Below it sits package frames (ARP and Ethernet); the Stack's Actors are
// the frames demux and the IP dispatcher, which hands each TCP connection
// its segments in the batches the NIC received them in.
package stack
