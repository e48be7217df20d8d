// Package frames is the loader's link layer above the NIC: Ethernet II
// framing, the ARP cache and resolver, and the demux actor that splits
// received frames into ARP (answered here) and IPv4 (handed up to the stack),
// and frames the stack's outgoing IPv4 packets for the NIC. A next hop that
// never answers ARP is reported (Options.Unresolved, ResolveError) so the
// senders of the packets that waited for it fail at once.
//
// Buffers keep their Ethernet header room in both directions: an IPv4 packet
// travelling between this package and the stack starts at offset HeaderLen of
// its buffer, so no layer copies a packet to add or strip a header.
package frames
