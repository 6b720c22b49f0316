// Package api defines Weft's resource model as it travels on the wire: the
// JSON objects of the controller's /v1 API, their validation, the error
// shape, and a client. It links no store or kernel code, so every binary
// (including the CNI plugin) may import it.
package api

import (
	"encoding/json"
	"time"
)

// Kind names a resource type. The string is the JSON "kind" and the etcd
// key segment; Plural is its URL collection.
type Kind string

// Resource kinds.
const (
	KindDomain         Kind = "domain"
	KindProject        Kind = "project"
	KindNetwork        Kind = "network"
	KindPort           Kind = "port"
	KindIPReservation  Kind = "ip_reservation"
	KindNode           Kind = "node"
	KindFloatingIPPool Kind = "floating_ip_pool"
	KindFloatingIP     Kind = "floating_ip"
	KindSecurityGroup  Kind = "security_group"
	KindNetworkPolicy  Kind = "network_policy"
	KindService        Kind = "service"
	KindBlock          Kind = "block"
)

// Defaults created by the controller at start.
const (
	DefaultDomain      = "default-domain"
	DefaultProject     = "default-domain:default-project"
	DefaultTaskNetwork = "default-domain:default-project:mesos-default-pod-task"
	FabricNetwork      = "default-domain:default-project:ip-fabric"
)

// Meta is common to every resource. UUID and FQName identify it; FQName is
// the Contrail-style colon-joined path of names from the domain down
// (domain:project:name). Parent is the FQName of the parent, empty for
// domains and nodes. ResourceVersion is the etcd modification revision the
// object was read at; an update that carries it is a compare-and-swap.
type Meta struct {
	Kind            Kind              `json:"kind"`
	UUID            string            `json:"uuid,omitempty"`
	Name            string            `json:"name"`
	FQName          string            `json:"fq_name,omitempty"`
	Parent          string            `json:"parent,omitempty"`
	Labels          map[string]string `json:"labels,omitempty"`
	CreatedAt       time.Time         `json:"created_at,omitzero"`
	UpdatedAt       time.Time         `json:"updated_at,omitzero"`
	ResourceVersion int64             `json:"resource_version,omitempty"`
}

// GetMeta gives access to the common metadata of any resource.
func (m *Meta) GetMeta() *Meta { return m }

// Object is any resource of the model.
type Object interface {
	GetMeta() *Meta
}

// Domain is the root of the naming hierarchy.
type Domain struct {
	Meta
}

// Project groups networks, ports, security groups and policies of a tenant.
type Project struct {
	Meta
}

// NetworkKind selects the network semantics.
type NetworkKind string

// Network kinds: isolated Contrail-style virtual networks, or DC/OS-style
// overlays.
const (
	NetworkVirtual NetworkKind = "virtual"
	NetworkOverlay NetworkKind = "overlay"
)

// Subnet is one address range of a network. Gateway defaults to the first
// address. BlockPrefix is the prefix length of the per-node address blocks
// carved out of the subnet (default /26 for IPv4, /122 for IPv6, never
// shorter than the subnet).
type Subnet struct {
	CIDR        string `json:"cidr"`
	Gateway     string `json:"gateway,omitempty"`
	BlockPrefix int    `json:"block_prefix,omitempty"`
}

// Network is a VirtualNetwork: an isolated L3 network spanning all nodes.
type Network struct {
	Meta
	NetworkKind NetworkKind `json:"network_kind,omitempty"`
	Subnets     []Subnet    `json:"subnets"`
	// VNI is allocated by the controller when zero.
	VNI int `json:"vni,omitempty"`
	// MTU of container interfaces; 0 lets the agent choose.
	MTU int `json:"mtu,omitempty"`
}

// PortIP is one address of a port.
type PortIP struct {
	Address string `json:"address"`
	Subnet  string `json:"subnet,omitempty"`
	Gateway string `json:"gateway,omitempty"`
}

// Port is a container interface on a network (Contrail VMI).
type Port struct {
	Meta
	Network        string   `json:"network"`
	Node           string   `json:"node,omitempty"`
	ContainerID    string   `json:"container_id,omitempty"`
	TaskID         string   `json:"task_id,omitempty"`
	InstanceID     string   `json:"instance_id,omitempty"`
	AppID          string   `json:"app_id,omitempty"`
	Interface      string   `json:"interface,omitempty"`
	MAC            string   `json:"mac,omitempty"`
	IPs            []PortIP `json:"ips,omitempty"`
	SecurityGroups []string `json:"security_groups,omitempty"`
	FloatingIPs    []string `json:"floating_ips,omitempty"`
	State          string   `json:"state,omitempty"`
}

// IPReservation is one address held in a network (Contrail instance-ip).
// Its name is the address; it is unique per network. Owner is the uid of
// whoever holds it (a container id, a task id, a port uuid, an operator
// chosen string). Node is set when the address came from a node's block.
type IPReservation struct {
	Meta
	Network string `json:"network"`
	Address string `json:"address"`
	Owner   string `json:"owner"`
	Node    string `json:"node,omitempty"`
	Port    string `json:"port,omitempty"`
}

// Block is a per-node address block of a network: a prefix of the subnet's
// block length leased to one node, which allocates inside it.
type Block struct {
	Meta
	Network string `json:"network"`
	CIDR    string `json:"cidr"`
	Node    string `json:"node"`
}

// Node is a Mesos agent running a Weft agent.
type Node struct {
	Meta
	UnderlayIP string `json:"underlay_ip"`
	VTEPIP     string `json:"vtep_ip,omitempty"`
	VTEPMAC    string `json:"vtep_mac,omitempty"`
	// VTEPIP6 is the node's IPv6 VTEP address, when the overlay
	// configuration has an IPv6 VTEP subnet.
	VTEPIP6 string `json:"vtep_ip6,omitempty"`
	Status  string `json:"status,omitempty"`
	// Heartbeat is the time of the agent's last heartbeat.
	Heartbeat time.Time `json:"heartbeat,omitzero"`
	// OverlayRole is what the node asks of the overlays when it registers
	// (a DC/OS agent's network_config); nil means an agent with both
	// bridges.
	OverlayRole *OverlayRole `json:"overlay_role,omitempty"`
	// Overlays are the node's assignments in the DC/OS-style overlay
	// networks, made by the controller, with the status the agent reports.
	Overlays []NodeOverlay `json:"overlays,omitempty"`
	// OverlayBackend is the VXLAN device of the overlays on every node.
	OverlayBackend *OverlayBackend `json:"overlay_backend,omitempty"`
}

// OverlayRole is a node's DC/OS network_config: whether it gets a subnet
// in each overlay and which halves of it are bridged. DC/OS masters run
// with both bridges off: they get a VTEP and a subnet, but no bridge.
type OverlayRole struct {
	AllocateSubnet bool `json:"allocate_subnet"`
	MesosBridge    bool `json:"mesos_bridge"`
	DockerBridge   bool `json:"docker_bridge"`
}

// DefaultOverlayRole is the role of an agent that says nothing.
var DefaultOverlayRole = OverlayRole{AllocateSubnet: true, MesosBridge: true, DockerBridge: true}

// Overlay status values of a node's overlay.
const (
	OverlayOK          = "OK"
	OverlayFailed      = "FAILED"
	OverlayConfiguring = "CONFIGURING"
)

// NodeOverlay is one overlay network on one node: the node's subnet of
// the overlay (IPv4 and/or IPv6), split into a Mesos half and a Docker
// half, and the overlay's status on the node. Status is CONFIGURING until
// the agent reports; FAILED carries the reason in Error (also when the
// controller could not allocate a subnet).
type NodeOverlay struct {
	// Name is the overlay's name (dcos); Network its network's fq_name.
	Name    string `json:"name"`
	Network string `json:"network"`
	// OverlaySubnet and OverlaySubnet6 are the overlay's whole address
	// spaces (9.0.0.0/8), Subnet and Subnet6 the node's part (9.0.1.0/24).
	OverlaySubnet  string `json:"overlay_subnet,omitempty"`
	OverlaySubnet6 string `json:"overlay_subnet6,omitempty"`
	Subnet         string `json:"subnet,omitempty"`
	Subnet6        string `json:"subnet6,omitempty"`
	// MesosBridge and DockerBridge are the halves of the node's subnet
	// (absent when the node's role disables that bridge).
	MesosBridge  *OverlayBridge `json:"mesos_bridge,omitempty"`
	DockerBridge *OverlayBridge `json:"docker_bridge,omitempty"`
	Status       string         `json:"status,omitempty"`
	Error        string         `json:"error,omitempty"`
}

// OverlayBridge is one half of a node's overlay subnet: the bridge's name
// (m-dcos, d-dcos) and the half in CIDR form (9.0.1.0/25; IP6 for IPv6).
type OverlayBridge struct {
	Name string `json:"name"`
	IP   string `json:"ip,omitempty"`
	IP6  string `json:"ip6,omitempty"`
}

// OverlayStatusReport is what an agent reports of its overlays: the
// status of each, by overlay name.
type OverlayStatusReport struct {
	Overlays []OverlayStatus `json:"overlays"`
}

// OverlayStatus is one overlay's status on the reporting node.
type OverlayStatus struct {
	Name   string `json:"name"`
	Status string `json:"status"`
	Error  string `json:"error,omitempty"`
}

// OverlayBackend is the VXLAN device every node uses for the overlays
// (DC/OS: vtep1024, VNI 1024, UDP port 64000).
type OverlayBackend struct {
	VTEPName string `json:"vtep_name"`
	VNI      int    `json:"vni"`
	Port     int    `json:"port"`
	MTU      int    `json:"mtu,omitempty"`
	// VTEPPrefix and VTEPPrefix6 are the prefix lengths of the VTEP
	// subnets, for the addresses put on the device.
	VTEPPrefix  int `json:"vtep_prefix"`
	VTEPPrefix6 int `json:"vtep_prefix6,omitempty"`
}

// FloatingIPPool is a pool of public addresses taken from a network
// (parent: the network).
type FloatingIPPool struct {
	Meta
}

// FloatingIP is a public address of a pool bound to a port's fixed IP.
type FloatingIP struct {
	Meta
	Address string `json:"address,omitempty"`
	Port    string `json:"port,omitempty"`
	FixedIP string `json:"fixed_ip,omitempty"`
}

// Rule directions and ethertypes.
const (
	DirectionIngress = "ingress"
	DirectionEgress  = "egress"
	EtherTypeIPv4    = "IPv4"
	EtherTypeIPv6    = "IPv6"
)

// SecurityGroupRule allows traffic in one direction. Protocol is "any",
// "tcp", "udp", "icmp" or "icmp6". A rule names either a RemoteCIDR or a
// RemoteGroup (fq_name of a security group), or neither (any remote).
type SecurityGroupRule struct {
	Direction   string `json:"direction"`
	EtherType   string `json:"ethertype,omitempty"`
	Protocol    string `json:"protocol,omitempty"`
	PortMin     int    `json:"port_min,omitempty"`
	PortMax     int    `json:"port_max,omitempty"`
	RemoteCIDR  string `json:"remote_cidr,omitempty"`
	RemoteGroup string `json:"remote_group,omitempty"`
}

// SecurityGroup is a set of allow rules applied to ports.
type SecurityGroup struct {
	Meta
	Rules []SecurityGroupRule `json:"rules"`
}

// PolicyRule allows traffic between two networks (fq_names), one way or
// both ("<>").
type PolicyRule struct {
	Source      string `json:"source"`
	Destination string `json:"destination"`
	Direction   string `json:"direction,omitempty"`
	Protocol    string `json:"protocol,omitempty"`
	PortMin     int    `json:"port_min,omitempty"`
	PortMax     int    `json:"port_max,omitempty"`
}

// NetworkPolicy holds rules allowing traffic between networks.
type NetworkPolicy struct {
	Meta
	Rules []PolicyRule `json:"rules"`
}

// ServiceBackend is one backend of a VIP.
type ServiceBackend struct {
	Address string `json:"address"`
	Port    int    `json:"port"`
}

// Service is a layer-4 load-balanced VIP, addressed by IP or by name.
type Service struct {
	Meta
	Network  string           `json:"network,omitempty"`
	VIP      string           `json:"vip,omitempty"`
	Port     int              `json:"port"`
	Protocol string           `json:"protocol,omitempty"`
	Backends []ServiceBackend `json:"backends,omitempty"`
}

// List is the body of a list response.
type List struct {
	Kind     Kind              `json:"kind"`
	Revision int64             `json:"revision"`
	Items    []json.RawMessage `json:"items"`
}

// EventType of a watch event.
type EventType string

// Watch event types.
const (
	EventAdded    EventType = "ADDED"
	EventModified EventType = "MODIFIED"
	EventDeleted  EventType = "DELETED"
)

// WatchEvent is one line of the /v1/watch stream. For DELETED the object
// is the last state before deletion.
type WatchEvent struct {
	Kind     Kind            `json:"kind"`
	Type     EventType       `json:"type"`
	Object   json.RawMessage `json:"object"`
	Revision int64           `json:"revision"`
}

// AllocateRequest asks the IPAM for addresses in a network: one per family
// requested (Family "ipv4", "ipv6" or "dual"; default ipv4, or the family
// of IP when given), or exactly IP when given. Node makes the allocation
// come from that node's blocks, leasing one when needed. Count (automatic
// allocation only; default 1, at most MaxAllocateCount) asks for that many
// addresses per family, reserved in as few store transactions as
// possible; fewer come back when the network runs out.
type AllocateRequest struct {
	Network string            `json:"network"`
	Owner   string            `json:"owner"`
	IP      string            `json:"ip,omitempty"`
	Family  string            `json:"family,omitempty"`
	Node    string            `json:"node,omitempty"`
	Port    string            `json:"port,omitempty"`
	Labels  map[string]string `json:"labels,omitempty"`
	Count   int               `json:"count,omitempty"`
}

// MaxAllocateCount bounds AllocateRequest.Count.
const MaxAllocateCount = 256

// AllocateResponse lists the reservations made.
type AllocateResponse struct {
	Reservations []IPReservation `json:"reservations"`
}

// ReleaseRequest releases by address (with network), by owner (optionally
// limited to one network), or everything of a node.
type ReleaseRequest struct {
	Network string `json:"network,omitempty"`
	IP      string `json:"ip,omitempty"`
	Owner   string `json:"owner,omitempty"`
	Node    string `json:"node,omitempty"`
}

// ReleaseResponse lists the addresses released (now in quarantine).
type ReleaseResponse struct {
	Released []IPReservation `json:"released"`
}

// BlockRequest leases (POST) or returns (DELETE) a block of a network for
// a node.
type BlockRequest struct {
	Network string `json:"network"`
	Node    string `json:"node"`
	Family  string `json:"family,omitempty"`
	CIDR    string `json:"cidr,omitempty"`
}

// Version is the body of /v1/version.
type Version struct {
	Version   string `json:"version"`
	GoVersion string `json:"go_version"`
}

// AssignRequest hands a reservation over to a new owner (POST
// /v1/ipam/assign): the address must be held by FromOwner. Agents reserve
// spare addresses ahead of need under an owner of their own and assign
// them to a container after the attach, so that no controller round trip
// sits on the attach path while no address is ever held twice.
type AssignRequest struct {
	Network   string            `json:"network"`
	IP        string            `json:"ip"`
	FromOwner string            `json:"from_owner"`
	Owner     string            `json:"owner"`
	Port      string            `json:"port,omitempty"`
	Labels    map[string]string `json:"labels,omitempty"`
}

// LeaseRequest takes or renews a lease (PUT /v1/leases/{name}).
type LeaseRequest struct {
	Holder     string `json:"holder"`
	TTLSeconds int    `json:"ttl_seconds"`
}

// Lease is a named, expiring lock held by one replica of a component
// (leader election of singleton loops).
type Lease struct {
	Name        string    `json:"name"`
	Holder      string    `json:"holder"`
	TTLSeconds  int       `json:"ttl_seconds"`
	AcquiredAt  time.Time `json:"acquired_at"`
	RenewedAt   time.Time `json:"renewed_at"`
	Transitions int       `json:"transitions"`
}
