// Package nic drives the network card and runs the NIC poller actor.
//
// A Device moves whole Ethernet frames without blocking. Two kinds exist:
// Virtio, our own virtio-net driver (nic/virtio) run over the device's
// EFI_PCI_IO_PROTOCOL after taking it from the firmware's drivers, and SNP,
// the firmware's Simple Network Protocol opened exclusively. Open chooses
// between them (virtio-net first: it needs nothing from the firmware's
// network stack; SNP when no virtio-net function can be taken, as with
// QEMU's iPXE option ROM bound) and logs which path it took and why.
//
// The Poller is the NIC actor: it moves batches of frames between a Device
// and the frames layer through channels, spinning briefly after activity
// and otherwise sleeping at most a millisecond, so an idle loader notices a
// frame promptly.
package nic
