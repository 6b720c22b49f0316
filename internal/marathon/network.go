package marathon

import (
	"maps"
	"net/netip"
	"strings"
)

// NetworkAttachment is one network a task of a run spec attaches to,
// normalised from either networking style.
type NetworkAttachment struct {
	// Mode is host, container/bridge or container.
	Mode NetworkMode
	// Name is the container network's name. For a container attachment an
	// empty name means Marathon's --default_network_name
	// (Info.MarathonConfig.DefaultNetworkName). Empty for host and bridge.
	Name string
	// Labels are the network's labels (1.5+ networks[].labels, ≤ 1.4
	// ipAddress.labels): the Contrail-style keys such as "networks",
	// "project-name", "floating-ips", "security-groups" live here. Never
	// nil for a container attachment; a copy the caller may keep.
	Labels map[string]string
	// Source tells where the attachment came from: "networks",
	// "ipAddress" or "docker.network"; "default" for the implicit host
	// network of an app that names none.
	Source string
}

// Managed tells whether the attachment is a container network, the kind a
// CNI network plugin such as Weft provides (as opposed to host or bridge
// networking, which the agent handles itself).
func (a NetworkAttachment) Managed() bool { return a.Mode == NetworkModeContainer }

// AppNetworks returns the networks an app's tasks attach to, in order, from
// either networking style (§3.1, §3.2, the derivation marathon-lb uses):
//
//   - 1.5+: every networks[] entry, with its mode, name and labels; an entry
//     without a mode counts as a container network, as Marathon's RAML
//     default says.
//   - ≤ 1.4: an ipAddress gives one container attachment (networkName and
//     labels); otherwise container.docker.network USER gives an unnamed
//     container attachment, BRIDGE a bridge one, HOST a host one.
//   - Nothing at all: host networking, Marathon's default.
//
// If both styles are present (hand-written definitions can carry both) the
// 1.5+ networks win when they name a container or bridge network; a
// networks list that only says host does not hide an ipAddress, because
// 1.5+ responses never contain ipAddress while ≤ 1.4 ones never contain
// networks.
func AppNetworks(app *App) []NetworkAttachment {
	if app == nil {
		return nil
	}
	var fromNetworks []NetworkAttachment
	nonHost := false
	for _, n := range app.Networks {
		a := attachment(n, "networks")
		if a.Mode != NetworkModeHost {
			nonHost = true
		}
		fromNetworks = append(fromNetworks, a)
	}
	if nonHost {
		return fromNetworks
	}
	if ip := app.IPAddress; ip != nil {
		return []NetworkAttachment{{
			Mode:   NetworkModeContainer,
			Name:   ip.NetworkName,
			Labels: cloneLabels(ip.Labels),
			Source: "ipAddress",
		}}
	}
	if c := app.Container; c != nil && c.Docker != nil {
		switch strings.ToUpper(c.Docker.Network) {
		case "USER":
			return []NetworkAttachment{{Mode: NetworkModeContainer, Labels: map[string]string{}, Source: "docker.network"}}
		case "BRIDGE":
			return []NetworkAttachment{{Mode: NetworkModeBridge, Source: "docker.network"}}
		case "HOST":
			if len(fromNetworks) == 0 {
				return []NetworkAttachment{{Mode: NetworkModeHost, Source: "docker.network"}}
			}
		}
	}
	if len(fromNetworks) > 0 {
		return fromNetworks
	}
	return []NetworkAttachment{{Mode: NetworkModeHost, Source: "default"}}
}

// AppNetworkMode returns the app's overall networking mode, the way
// marathon-lb derives it (§3.2): container if it attaches to any container
// network, else bridge if it uses the bridge, else host.
func AppNetworkMode(app *App) NetworkMode {
	return overallMode(AppNetworks(app))
}

// PodNetworks returns the networks a pod's instances attach to; a pod that
// names none uses host networking.
func PodNetworks(pod *Pod) []NetworkAttachment {
	if pod == nil {
		return nil
	}
	var out []NetworkAttachment
	for _, n := range pod.Networks {
		out = append(out, attachment(n, "networks"))
	}
	if len(out) == 0 {
		return []NetworkAttachment{{Mode: NetworkModeHost, Source: "default"}}
	}
	return out
}

func overallMode(as []NetworkAttachment) NetworkMode {
	mode := NetworkModeHost
	for _, a := range as {
		switch a.Mode {
		case NetworkModeContainer:
			return NetworkModeContainer
		case NetworkModeBridge:
			mode = NetworkModeBridge
		}
	}
	return mode
}

func attachment(n Network, source string) NetworkAttachment {
	mode := n.Mode
	if mode == "" {
		mode = NetworkModeContainer
	}
	a := NetworkAttachment{Mode: mode, Source: source}
	if mode == NetworkModeContainer {
		a.Name = n.Name
		a.Labels = cloneLabels(n.Labels)
	} else if len(n.Labels) > 0 {
		a.Labels = cloneLabels(n.Labels)
	}
	return a
}

func cloneLabels(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return maps.Clone(m)
}

// TaskAddresses returns the task's container addresses (ipAddresses[]),
// in order, without duplicates; entries that are not IP addresses are
// skipped. Empty for host networking (the address is then task.Host) and
// before Mesos has reported the container's network.
func TaskAddresses(task *Task) []netip.Addr {
	if task == nil {
		return nil
	}
	var out []netip.Addr
	for _, ip := range task.IPAddresses {
		out = appendAddr(out, ip.IPAddress)
	}
	return out
}

// PodInstanceAddresses returns the addresses of a pod instance on all its
// networks (networks[].addresses), in order, without duplicates.
func PodInstanceAddresses(inst *PodInstanceStatus) []netip.Addr {
	if inst == nil {
		return nil
	}
	var out []netip.Addr
	for _, n := range inst.Networks {
		for _, s := range n.Addresses {
			out = appendAddr(out, s)
		}
	}
	return out
}

func appendAddr(out []netip.Addr, s string) []netip.Addr {
	a, err := netip.ParseAddr(strings.TrimSpace(s))
	if err != nil {
		return out
	}
	a = a.Unmap()
	for _, b := range out {
		if a == b {
			return out
		}
	}
	return append(out, a)
}
