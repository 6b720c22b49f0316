package overlaydp

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
)

// ErrIncomplete is wrapped by Check errors that list missing pieces.
var ErrIncomplete = errors.New("attachment incomplete")

// withNames validates the identity of ep and fills HostIf.
func (ep Endpoint) withNames() (Endpoint, error) {
	if ep.ContainerID == "" {
		return ep, errors.New("endpoint: container id: missing")
	}
	if err := validLinkName(ep.IfName); err != nil {
		return ep, fmt.Errorf("endpoint %s: ifname: %w", ep.ContainerID, err)
	}
	if ep.HostIf == "" {
		ep.HostIf = HostIfName(ep.ContainerID, ep.IfName)
	}
	if err := validLinkName(ep.HostIf); err != nil {
		return ep, fmt.Errorf("endpoint %s/%s: host interface: %w", ep.ContainerID, ep.IfName, err)
	}
	return ep, nil
}

// normalize validates ep for Attach and Check and fills HostIf, MAC and
// MTU (bridgeMTU when 0). Addresses are unmapped and kept in order.
func (ep Endpoint) normalize(bridgeMTU int) (Endpoint, error) {
	ep, err := ep.withNames()
	if err != nil {
		return ep, err
	}
	what := "endpoint " + ep.ContainerID + "/" + ep.IfName + ": "
	if err := validLinkName(ep.Bridge); err != nil {
		return ep, fmt.Errorf(what+"bridge: %w", err)
	}
	if ep.Netns == "" {
		return ep, errors.New(what + "netns: missing")
	}
	if len(ep.MAC) == 0 {
		ep.MAC = EndpointMAC(ep.ContainerID, ep.IfName)
	} else if err := checkMAC(ep.MAC); err != nil {
		return ep, fmt.Errorf(what+"mac: %w", err)
	}
	if ep.MTU == 0 {
		ep.MTU = bridgeMTU
	}
	if ep.MTU < 552 || ep.MTU > 65535 {
		return ep, fmt.Errorf(what+"mtu: %d outside 552..65535", ep.MTU)
	}
	if len(ep.IPs) == 0 {
		return ep, errors.New(what + "ips: none")
	}
	ips := make([]netip.Prefix, 0, len(ep.IPs))
	for _, p := range ep.IPs {
		if !p.IsValid() {
			return ep, fmt.Errorf(what+"ips: invalid %v", p)
		}
		p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits())
		if slices.ContainsFunc(ips, func(q netip.Prefix) bool { return q.Addr() == p.Addr() }) {
			return ep, fmt.Errorf(what+"ips: duplicate %s", p.Addr())
		}
		ips = append(ips, p)
	}
	ep.IPs = ips
	gws := make([]netip.Addr, 0, len(ep.Gateways))
	for _, g := range ep.Gateways {
		g = g.Unmap()
		if !g.IsValid() {
			return ep, fmt.Errorf(what+"gateways: invalid %v", g)
		}
		if slices.ContainsFunc(gws, func(h netip.Addr) bool { return h.Is4() == g.Is4() }) {
			return ep, fmt.Errorf(what+"gateways: more than one %s gateway", familyName(g))
		}
		if slices.ContainsFunc(ips, func(p netip.Prefix) bool { return p.Addr() == g }) {
			return ep, fmt.Errorf(what+"gateways: %s is an address of the endpoint", g)
		}
		gws = append(gws, g)
	}
	ep.Gateways = gws
	if ep.DefaultRoute {
		for _, p := range ips {
			if _, ok := ep.gateway(p.Addr().Is4()); !ok {
				return ep, fmt.Errorf(what+"gateways: no %s gateway for the default route", familyName(p.Addr()))
			}
		}
	}
	return ep, nil
}

// gateway returns ep's gateway of a family.
func (ep Endpoint) gateway(v4 bool) (netip.Addr, bool) {
	for _, g := range ep.Gateways {
		if g.Is4() == v4 {
			return g, true
		}
	}
	return netip.Addr{}, false
}

func familyName(a netip.Addr) string {
	if a.Is4() {
		return "ipv4"
	}
	return "ipv6"
}
