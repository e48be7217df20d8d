// Package services runs the DHCPv4 client and the DNS resolver as actors.
//
// Nothing is built here yet; a later issue fills it in.
package services
