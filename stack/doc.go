// Package stack is ociboot's IPv4, ICMP, UDP and TCP, with TCP connections as
// actors exposed as net.Conn.
//
// Nothing is built here yet; a later issue fills it in.
package stack
