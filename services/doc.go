// Package services holds the network services the loader needs above its
// TCP/IP stack: the DHCPv4 client actor that obtains (and renews) a lease, the
// DNS resolver that turns registry names into addresses, and the factory for
// the HTTP client that the OCI fetcher uses over the stack.
//
// None of it imports the stack. DHCP works over a net.PacketConn bound to
// 0.0.0.0:68, DNS and HTTP over a DialContext-shaped function, so each piece
// is tested on the host against in-process peers.
package services
