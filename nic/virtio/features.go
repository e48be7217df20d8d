package virtio

import (
	"fmt"
	"math/bits"
	"strings"
)

// Features is a set of virtio feature bits (device-independent bits 28..40,
// network bits elsewhere; §5.1.3 and §6).
type Features uint64

// Feature bits the driver or the device model name. The driver accepts
// VERSION_1, MAC, STATUS, MTU, ACCESS_PLATFORM and the receive offloads
// (GUEST_CSUM, GUEST_TSO4, MRG_RXBUF) and nothing else.
const (
	FeatureCsum           Features = 1 << 0
	FeatureGuestCsum      Features = 1 << 1
	FeatureMTU            Features = 1 << 3
	FeatureMAC            Features = 1 << 5
	FeatureGuestTSO4      Features = 1 << 7
	FeatureGuestTSO6      Features = 1 << 8
	FeatureHostTSO4       Features = 1 << 11
	FeatureMrgRxBuf       Features = 1 << 15
	FeatureStatus         Features = 1 << 16
	FeatureCtrlVQ         Features = 1 << 17
	FeatureMQ             Features = 1 << 22
	FeatureIndirectDesc   Features = 1 << 28
	FeatureEventIdx       Features = 1 << 29
	FeatureVersion1       Features = 1 << 32
	FeatureAccessPlatform Features = 1 << 33
	FeatureRingPacked     Features = 1 << 34
	FeatureInOrder        Features = 1 << 35
	FeatureOrderPlatform  Features = 1 << 36
	FeatureNotifyData     Features = 1 << 38
)

// ReceiveOffloads are the receive offloads the driver accepts, all three
// or none: partial checksums, TCP segments larger than the MTU, and
// packets spread over several receive buffers.
const ReceiveOffloads = FeatureGuestCsum | FeatureGuestTSO4 | FeatureMrgRxBuf

var featureNames = map[Features]string{
	FeatureCsum:           "CSUM",
	FeatureGuestCsum:      "GUEST_CSUM",
	FeatureMTU:            "MTU",
	FeatureMAC:            "MAC",
	FeatureGuestTSO4:      "GUEST_TSO4",
	FeatureGuestTSO6:      "GUEST_TSO6",
	FeatureHostTSO4:       "HOST_TSO4",
	FeatureMrgRxBuf:       "MRG_RXBUF",
	FeatureStatus:         "STATUS",
	FeatureCtrlVQ:         "CTRL_VQ",
	FeatureMQ:             "MQ",
	FeatureIndirectDesc:   "RING_INDIRECT_DESC",
	FeatureEventIdx:       "RING_EVENT_IDX",
	FeatureVersion1:       "VERSION_1",
	FeatureAccessPlatform: "ACCESS_PLATFORM",
	FeatureRingPacked:     "RING_PACKED",
	FeatureInOrder:        "IN_ORDER",
	FeatureOrderPlatform:  "ORDER_PLATFORM",
	FeatureNotifyData:     "NOTIFICATION_DATA",
}

// String lists the bits from the highest down, e.g. "VERSION_1|MAC|MTU";
// bits without a name print as "bitN".
func (f Features) String() string {
	if f == 0 {
		return "none"
	}
	var names []string
	for f != 0 {
		b := 63 - bits.LeadingZeros64(uint64(f))
		bit := Features(1) << b
		if name, ok := featureNames[bit]; ok {
			names = append(names, name)
		} else {
			names = append(names, fmt.Sprintf("bit%d", b))
		}
		f &^= bit
	}
	return strings.Join(names, "|")
}
