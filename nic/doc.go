// Package nic drives the network card: virtio-net over EFI_PCI_IO_PROTOCOL,
// the firmware's Simple Network Protocol as a fallback, the chooser between
// them and the NIC poller actor.
//
// So far only the virtio-net driver exists, in nic/virtio, tested against
// the device model in nic/virtio/devmodel; the firmware binding, SNP, the
// chooser and the poller actor come with the rest of the NIC issue.
package nic
