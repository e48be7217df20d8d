package frames

import (
	"net"
	"net/netip"

	"github.com/ociboot/ociboot/actors"
)

// Link is the NIC as the frames layer sees it: batches of Ethernet frames
// (header onward, no FCS) in and out.
type Link interface {
	MAC() net.HardwareAddr
	MTU() int                 // IP MTU, normally 1500
	RX() <-chan *actors.Batch // received frames; the frames layer owns each batch and Releases it
	TX() chan<- *actors.Batch // frames to send; the NIC side Releases them after transmit
	Pool() *actors.Pool       // where to get TX batches (buffer size ≥ MTU+14)
}

// Outbound is a batch of IPv4 packets for one next hop. Each buffer holds
// HeaderLen bytes of room for the Ethernet header, then the packet. The
// demux takes ownership of the batch.
type Outbound struct {
	Batch *actors.Batch
	// NextHop is the on-link address whose MAC the frames go to; the limited
	// broadcast address (or the zero Addr) sends them to the Ethernet
	// broadcast address.
	NextHop netip.Addr
}

// Broadcast is the IPv4 limited broadcast address.
var Broadcast = netip.AddrFrom4([4]byte{255, 255, 255, 255})
