package cni

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"

	"github.com/weft-sdn/weft/internal/api"
)

// Result turns the agent's AttachResult into the CNI result for the config's
// cniVersion.
//
// For 0.1.0 and 0.2.0 configs (and configs without cniVersion) it is the
// 0.2.0 shape {"cniVersion":"0.2.0","ip4":{"ip","gateway","routes"},
// "ip6":{...},"dns":{...}}, the only one Mesos parses: the first IPv4 and
// the first IPv6 address, each family's routes. For 0.3.0 to 1.1.0 it lists
// interfaces (the host end when the agent names it, then the container
// interface with its sandbox), every address with the index of the
// container interface and its gateway, the routes and DNS.
//
// dns overrides the agent's DNS field by field (weft.dns); fallback fills
// fields neither sets (the top-level "dns" key). Errors are *Error with
// CodeBadResult.
func Result(res api.AttachResult, ifName, netns, cniVersion string, dns, fallback types.DNS) (types.Result, error) {
	r := &types100.Result{CNIVersion: types100.ImplementedSpecVersion}

	if res.HostIf != "" {
		r.Interfaces = append(r.Interfaces, &types100.Interface{Name: res.HostIf})
	}
	name := res.Interface
	if name == "" {
		name = ifName
	}
	// The runtime's CNI_NETNS names the sandbox; the agent's echo of it
	// is only a fallback.
	sandbox := netns
	if sandbox == "" {
		sandbox = res.Sandbox
	}
	if res.MAC != "" {
		if _, err := net.ParseMAC(res.MAC); err != nil {
			return nil, badResult(err, "mac", "%q is not a MAC address", res.MAC)
		}
	}
	if res.MTU < 0 {
		return nil, badResult(nil, "mtu", "%d is not an MTU", res.MTU)
	}
	r.Interfaces = append(r.Interfaces, &types100.Interface{Name: name, Mac: res.MAC, Mtu: res.MTU, Sandbox: sandbox})
	idx := len(r.Interfaces) - 1

	for i, ip := range res.IPs {
		field := fmt.Sprintf("ips[%d]", i)
		p, err := parsePrefix(ip.Address)
		if err != nil {
			return nil, badResult(err, field+".address", "%q is not an address with a prefix length", ip.Address)
		}
		cfg := &types100.IPConfig{Interface: types100.Int(idx), Address: prefixToIPNet(p)}
		if ip.Gateway != "" {
			gw, err := netip.ParseAddr(ip.Gateway)
			if err != nil {
				return nil, badResult(err, field+".gateway", "%q is not an IP address", ip.Gateway)
			}
			if gw.Unmap().Is4() != p.Addr().Is4() {
				return nil, badResult(nil, field+".gateway", "gateway %s is not of the family of %s", ip.Gateway, ip.Address)
			}
			cfg.Gateway = net.IP(gw.Unmap().AsSlice())
		}
		r.IPs = append(r.IPs, cfg)
	}
	for i, rt := range res.Routes {
		field := fmt.Sprintf("routes[%d]", i)
		p, err := parsePrefix(rt.Dst)
		if err != nil {
			return nil, badResult(err, field+".dst", "%q is not a CIDR", rt.Dst)
		}
		route := &types.Route{Dst: prefixToIPNet(p.Masked())}
		if rt.GW != "" {
			gw, err := netip.ParseAddr(rt.GW)
			if err != nil {
				return nil, badResult(err, field+".gw", "%q is not an IP address", rt.GW)
			}
			route.GW = net.IP(gw.Unmap().AsSlice())
		}
		r.Routes = append(r.Routes, route)
	}
	r.DNS = mergeDNS(dns, types.DNS{
		Nameservers: res.DNS.Nameservers,
		Domain:      res.DNS.Domain,
		Search:      res.DNS.Search,
		Options:     res.DNS.Options,
	}, fallback)

	want := resultVersion(cniVersion)
	if isLegacyVersion(want) && len(r.IPs) == 0 {
		return nil, badResult(nil, "ips", "no address to report: a %s result needs ip4 or ip6", want)
	}
	out, err := r.GetAsVersion(want)
	if err != nil {
		return nil, badResult(err, "", "cannot express the result as CNI %s", want)
	}
	return out, nil
}

// badResult builds a CodeBadResult error about a field of the agent's
// answer.
func badResult(err error, field, format string, args ...any) *Error {
	msg := "weft agent returned an unusable result"
	if field != "" {
		msg += ": " + field
	}
	e := newError(CodeBadResult, err, "%s: %s", msg, fmt.Sprintf(format, args...))
	e.Field = field
	return e
}

// parsePrefix parses an address with a prefix length, refusing zones and
// IPv4-mapped IPv6 addresses (whose prefix length is ambiguous).
func parsePrefix(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	if p.Addr().Is4In6() {
		return netip.Prefix{}, fmt.Errorf("IPv4-mapped IPv6 prefix %q: write the IPv4 form", s)
	}
	return p, nil
}

// prefixToIPNet converts 10.0.0.5/24 to a net.IPNet holding the address
// (not the network) and the mask, as CNI results do.
func prefixToIPNet(p netip.Prefix) net.IPNet {
	addr := p.Addr()
	return net.IPNet{IP: net.IP(addr.AsSlice()), Mask: net.CIDRMask(p.Bits(), addr.BitLen())}
}

// mergeDNS takes each field from the first DNS that sets it.
func mergeDNS(dnss ...types.DNS) types.DNS {
	var out types.DNS
	for _, d := range dnss {
		if len(out.Nameservers) == 0 && len(d.Nameservers) > 0 {
			out.Nameservers = append([]string(nil), d.Nameservers...)
		}
		if out.Domain == "" {
			out.Domain = d.Domain
		}
		if len(out.Search) == 0 && len(d.Search) > 0 {
			out.Search = append([]string(nil), d.Search...)
		}
		if len(out.Options) == 0 && len(d.Options) > 0 {
			out.Options = append([]string(nil), d.Options...)
		}
	}
	return out
}
