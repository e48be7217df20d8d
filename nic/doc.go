// Package nic drives the network card: virtio-net over EFI_PCI_IO_PROTOCOL,
// the firmware's Simple Network Protocol as a fallback, the chooser between
// them and the NIC poller actor.
//
// So far: the virtio-net driver (nic/virtio, host-tested against the device
// model in nic/virtio/devmodel) and OpenVirtio, which takes a virtio-net
// function from the firmware's drivers and runs the driver on it over PCI
// IO. SNP, the chooser and the poller actor come with the rest of the NIC
// issue.
package nic
