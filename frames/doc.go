// Package frames is Ethernet framing, the ARP cache and resolver, and the
// ARP/IPv4 demux actor.
//
// Nothing is built here yet; a later issue fills it in.
package frames
