package announce

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
	"github.com/mdlayher/ndp"
)

// The frames this package sends, whole Ethernet frames for a raw packet
// socket: the kernel adds nothing, so the source MAC is the container's even
// though the socket is bound to the parent.

// zeroMAC is the target hardware address of an ARP announcement or probe
// (RFC 5227: ignored, set to zero).
var zeroMAC = net.HardwareAddr{0, 0, 0, 0, 0, 0}

// allNodes is ff02::1, where unsolicited neighbour advertisements and the
// answers to duplicate address detection go.
var allNodes = netip.MustParseAddr("ff02::1")

// gratuitousARP is an ARP request for addr from addr at mac, broadcast: every
// switch on the way learns where mac is, and every neighbour holding an entry
// for addr updates it to mac.
func gratuitousARP(mac net.HardwareAddr, addr netip.Addr) ([]byte, error) {
	return arpFrame(mac, addr, addr)
}

// arpProbe asks who has addr without claiming it: the sender address is
// 0.0.0.0 (RFC 5227, section 2.1.1), so no neighbour changes its cache.
func arpProbe(mac net.HardwareAddr, addr netip.Addr) ([]byte, error) {
	return arpFrame(mac, netip.IPv4Unspecified(), addr)
}

func arpFrame(mac net.HardwareAddr, sender, target netip.Addr) ([]byte, error) {
	p, err := arp.NewPacket(arp.OperationRequest, mac, sender, zeroMAC, target)
	if err != nil {
		return nil, fmt.Errorf("arp packet for %s: %w", target, err)
	}
	body, err := p.MarshalBinary()
	if err != nil {
		return nil, err
	}
	f := &ethernet.Frame{Destination: ethernet.Broadcast, Source: mac, EtherType: ethernet.EtherTypeARP, Payload: body}
	return f.MarshalBinary()
}

// unsolicitedNA advertises addr at mac to all nodes with the override flag
// (RFC 4861, section 7.2.6), so neighbours replace whatever MAC they had.
func unsolicitedNA(mac net.HardwareAddr, addr netip.Addr) ([]byte, error) {
	na := &ndp.NeighborAdvertisement{
		Override:      true,
		TargetAddress: addr,
		Options:       []ndp.Option{&ndp.LinkLayerAddress{Direction: ndp.Target, Addr: mac}},
	}
	return icmp6Frame(mac, multicastMAC(allNodes), addr, allNodes, na)
}

// dadSolicitation is duplicate address detection's neighbour solicitation
// (RFC 4862, section 5.4.2): from the unspecified address, to addr's
// solicited-node group, without a source link-layer option.
func dadSolicitation(mac net.HardwareAddr, addr netip.Addr) ([]byte, error) {
	group, err := ndp.SolicitedNodeMulticast(addr)
	if err != nil {
		return nil, err
	}
	ns := &ndp.NeighborSolicitation{TargetAddress: addr}
	return icmp6Frame(mac, multicastMAC(group), netip.IPv6Unspecified(), group, ns)
}

// icmp6Frame wraps an NDP message in an IPv6 header (hop limit 255, which
// receivers require of NDP) and an Ethernet header.
func icmp6Frame(srcMAC, dstMAC net.HardwareAddr, src, dst netip.Addr, m ndp.Message) ([]byte, error) {
	body, err := ndp.MarshalMessageChecksum(m, src, dst)
	if err != nil {
		return nil, fmt.Errorf("ndp message for %s: %w", dst, err)
	}
	ip := make([]byte, 40, 40+len(body))
	ip[0] = 6 << 4 // version 6, traffic class and flow label 0
	binary.BigEndian.PutUint16(ip[4:6], uint16(len(body)))
	ip[6] = 58 // next header: ICMPv6
	ip[7] = 255
	s, d := src.As16(), dst.As16()
	copy(ip[8:24], s[:])
	copy(ip[24:40], d[:])
	f := &ethernet.Frame{Destination: dstMAC, Source: srcMAC, EtherType: ethernet.EtherTypeIPv6, Payload: append(ip, body...)}
	return f.MarshalBinary()
}

// multicastMAC is the Ethernet group of an IPv6 multicast address
// (33:33 and its last four bytes, RFC 2464).
func multicastMAC(group netip.Addr) net.HardwareAddr {
	b := group.As16()
	return net.HardwareAddr{0x33, 0x33, b[12], b[13], b[14], b[15]}
}
