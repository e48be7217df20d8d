// Package nic drives the network card: virtio-net over EFI_PCI_IO_PROTOCOL,
// the firmware's Simple Network Protocol as a fallback, the chooser between
// them and the NIC poller actor.
//
// Nothing is built here yet; a later issue fills it in.
package nic
