package api

// The agent's local API, served on its unix socket to the CNI plugin:
//
//	POST /v1/attach  AttachRequest  -> 200 AttachResult
//	POST /v1/detach  DetachRequest  -> 204
//	POST /v1/check   DetachRequest  -> 204, or an Error saying what drifted
//	POST /v1/gc      GCRequest      -> 204
//	GET  /v1/status                 -> 200 AgentStatus (ready or not, and why)
//
// Errors use the same {"error","field"} body as the controller.

// AttachRequest asks the local agent to give a container an interface on a
// network (CNI ADD).
type AttachRequest struct {
	ContainerID string `json:"container_id"`
	IfName      string `json:"ifname"`
	// Netns is the path of the container's network namespace.
	Netns string `json:"netns"`
	// CNINetwork is the "name" of the CNI configuration.
	CNINetwork string `json:"cni_network,omitempty"`
	// Network is the Weft network: a uuid, an fq_name, or a short name that
	// resolves in Project (default default-domain:default-project). Empty
	// means the default task network.
	Network string `json:"network,omitempty"`
	// Project is the fq_name of the project (domain:project) that short
	// network names resolve in.
	Project string `json:"project,omitempty"`
	// Subnets limits allocation to these subnets of the network.
	Subnets []string `json:"subnets,omitempty"`
	// IPs are explicit addresses asked for (Mesos ip_addresses.ip_address).
	IPs []string `json:"ips,omitempty"`
	// Families asks for one address per entry ("ipv4" or "ipv6") besides
	// the explicit IPs. Empty with no IPs means one IPv4 address.
	Families []string `json:"families,omitempty"`
	// SecurityGroups are fq_names to attach to the port.
	SecurityGroups []string `json:"security_groups,omitempty"`
	// Labels are the NetworkInfo labels, kept on the port.
	Labels map[string]string `json:"labels,omitempty"`
	// MTU of the container interface; 0 takes the network's.
	MTU int `json:"mtu,omitempty"`
}

// AttachedIP is one address given to the interface, in CIDR form with the
// subnet's prefix length (10.0.0.5/24), with its gateway.
type AttachedIP struct {
	Address string `json:"address"`
	Gateway string `json:"gateway,omitempty"`
}

// AttachedRoute is a route inside the container.
type AttachedRoute struct {
	Dst string `json:"dst"`
	GW  string `json:"gw,omitempty"`
}

// DNSConfig is what the container's resolv.conf should hold.
type DNSConfig struct {
	Nameservers []string `json:"nameservers,omitempty"`
	Domain      string   `json:"domain,omitempty"`
	Search      []string `json:"search,omitempty"`
	Options     []string `json:"options,omitempty"`
}

// AttachResult describes the configured interface.
type AttachResult struct {
	Port      string          `json:"port"`
	Network   string          `json:"network"`
	Interface string          `json:"interface"`
	MAC       string          `json:"mac"`
	HostIf    string          `json:"host_interface,omitempty"`
	Sandbox   string          `json:"sandbox,omitempty"`
	MTU       int             `json:"mtu,omitempty"`
	IPs       []AttachedIP    `json:"ips"`
	Routes    []AttachedRoute `json:"routes,omitempty"`
	DNS       DNSConfig       `json:"dns,omitzero"`
}

// DetachRequest removes (CNI DEL) or checks (CNI CHECK) an attachment.
// Netns may be empty (DEL after a reboot).
type DetachRequest struct {
	ContainerID string `json:"container_id"`
	IfName      string `json:"ifname"`
	Netns       string `json:"netns,omitempty"`
	CNINetwork  string `json:"cni_network,omitempty"`
}

// GCRequest lists the attachments a runtime still holds for a CNI network;
// the agent detaches every other attachment of that CNI network.
type GCRequest struct {
	CNINetwork string          `json:"cni_network"`
	Valid      []DetachRequest `json:"valid"`
}

// AgentStatus is the body of GET /v1/status on the local socket.
type AgentStatus struct {
	Ready  bool   `json:"ready"`
	Reason string `json:"reason,omitempty"`
	Node   string `json:"node"`
}
