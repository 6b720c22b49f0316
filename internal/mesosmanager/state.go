package mesosmanager

import (
	"net/netip"
	"slices"
	"sort"
	"time"

	"github.com/weft-sdn/weft/internal/api"
	"github.com/weft-sdn/weft/internal/marathon"
)

// Labels the manager puts on the ports it looks after. Only ports that
// carry LabelManagedBy=ManagedByValue and a task_id are ever deleted by a
// resync; the agent never sets them.
const (
	LabelManagedBy    = "weft/managed-by"
	ManagedByValue    = "mesos-manager"
	LabelMarathonHost = "weft/marathon-host"
	LabelMesosAgentID = "weft/mesos-agent-id"
	// LabelFloatingIPPort marks a floating IP the manager created for a
	// port (value: the port's uuid).
	LabelFloatingIPPort = "weft/port"
)

// managerLabelKeys are the label keys the manager owns on a port.
var managerLabelKeys = []string{LabelManagedBy, LabelMarathonHost, LabelMesosAgentID}

// isManagedPort tells whether the manager tagged the port: only such ports
// may be removed for a task Marathon no longer has.
func isManagedPort(p *api.Port) bool {
	return p.TaskID != "" && p.Labels[LabelManagedBy] == ManagedByValue
}

// attachment is one managed network of a run spec, with its labels
// parsed.
type attachment struct {
	// Name is the Marathon network name.
	Name string
	// Source tells where it came from: "networks", "ipAddress",
	// "docker.network".
	Source string
	Spec   NetworkSpec
	Errors []*LabelError
}

// runSpec is an app or pod as the manager keeps it. It is never changed
// once stored (a change stores a new one), so readers need no lock beyond
// the map access.
type runSpec struct {
	ID      string
	Kind    marathon.InstanceKind
	Version string
	// Networks are the names of every container network of the spec.
	Networks []string
	// Managed are the attachments on managed networks, in order.
	Managed []attachment
}

// instance is an app task (Key = task id) or a pod instance (Key =
// instance id) the manager follows. Stored values are never modified:
// an update stores a changed copy (copy on write), so the introspection
// page can read them while the loop works.
type instance struct {
	Key        string
	Kind       marathon.InstanceKind
	AppID      string
	TaskID     string
	InstanceID string
	Host       string
	AgentID    string
	State      string
	Addresses  []netip.Addr
	// ContainerID is the Mesos container id, when the master told.
	ContainerID string
	// EventTime is the Marathon time stamp of the last status applied.
	EventTime time.Time
	// UnreachableSince is when the task was first seen UNREACHABLE,
	// LOST or UNKNOWN; zero otherwise.
	UnreachableSince time.Time
	// Releasing is the reason of a release that has not finished yet (it
	// is retried).
	Releasing string
	// Ports are the uuids of the ports matched to the task.
	Ports []string
	// Synced tells that the metadata of every matched port is applied.
	Synced bool
	// NextRetry is when a reconcile or release is tried again; zero for
	// none. Retries counts the attempts.
	NextRetry time.Time
	Retries   int
	Updated   time.Time
}

func (i *instance) clone() *instance {
	c := *i
	c.Addresses = slices.Clone(i.Addresses)
	c.Ports = slices.Clone(i.Ports)
	return &c
}

// pending is 1 when a retry of the instance is scheduled, else 0 (also
// for nil).
func (i *instance) pending() int {
	if i == nil || i.NextRetry.IsZero() {
		return 0
	}
	return 1
}

// liveForPorts tells whether the task may keep its ports: it is not in a
// terminal state (UNREACHABLE and UNKNOWN wait for the grace period).
func (i *instance) liveForPorts() bool {
	if i.Kind == marathon.KindPodInstance {
		return i.State != marathon.PodInstanceTerminal
	}
	return !marathon.IsTerminalTaskState(i.State)
}

// waitingState tells whether the state starts the unreachable grace
// period.
func waitingState(kind marathon.InstanceKind, state, message string) bool {
	if kind == marathon.KindPodInstance {
		return state == marathon.PodInstanceDegraded && containsFold(message, "unreachable")
	}
	return marathon.IsUnreachableTaskState(state) || marathon.IsUnknownTaskState(state)
}

// Problem is something the manager could not do as asked, most often a
// bad label; the introspection page lists them until they are fixed or
// the task is gone.
type Problem struct {
	// Task is the task id (pod: the instance id) the problem is about.
	Task string `json:"task"`
	App  string `json:"app,omitempty"`
	// Label is the label at fault; empty for problems that are not about
	// one.
	Label    string    `json:"label,omitempty"`
	Value    string    `json:"value,omitempty"`
	Message  string    `json:"message"`
	Since    time.Time `json:"since"`
	LastSeen time.Time `json:"last_seen"`
	Count    int       `json:"count"`
}

type problemKey struct{ task, label, message string }

// SyncState is the state of the sync with Marathon, as the introspection
// page shows it.
type SyncState struct {
	Leader          bool      `json:"leader"`
	StreamConnected bool      `json:"stream_connected"`
	Reconnects      int       `json:"reconnects"`
	LastDisconnect  string    `json:"last_disconnect,omitempty"`
	ResyncCount     int       `json:"resync_count"`
	ResyncErrors    int       `json:"resync_errors"`
	LastResync      time.Time `json:"last_resync,omitzero"`
	LastResyncError string    `json:"last_resync_error,omitempty"`
	LastResyncTook  string    `json:"last_resync_took,omitempty"`
	Pending         int       `json:"pending"`
	PortsUpdated    int       `json:"ports_updated"`
	PortsReleased   int       `json:"ports_released"`
}

// LastEvent describes the last Marathon event handled.
type LastEvent struct {
	Type      string    `json:"type"`
	Received  time.Time `json:"received,omitzero"`
	Timestamp string    `json:"timestamp,omitempty"`
	LagMillis int64     `json:"lag_ms"`
}

// PortView is a port the manager looks after, as the introspection page
// shows it.
type PortView struct {
	UUID           string   `json:"uuid"`
	FQName         string   `json:"fq_name"`
	Network        string   `json:"network"`
	Node           string   `json:"node,omitempty"`
	ContainerID    string   `json:"container_id,omitempty"`
	Interface      string   `json:"interface,omitempty"`
	IPs            []string `json:"ips,omitempty"`
	AppID          string   `json:"app_id,omitempty"`
	TaskID         string   `json:"task_id,omitempty"`
	InstanceID     string   `json:"instance_id,omitempty"`
	SecurityGroups []string `json:"security_groups,omitempty"`
	FloatingIPs    []string `json:"floating_ips,omitempty"`
}

func viewOf(p *api.Port) PortView {
	v := PortView{
		UUID: p.UUID, FQName: p.FQName, Network: p.Network, Node: p.Node, ContainerID: p.ContainerID,
		Interface: p.Interface, AppID: p.AppID, TaskID: p.TaskID, InstanceID: p.InstanceID,
		SecurityGroups: slices.Clone(p.SecurityGroups), FloatingIPs: slices.Clone(p.FloatingIPs),
	}
	for _, ip := range p.IPs {
		v.IPs = append(v.IPs, ip.Address)
	}
	return v
}

// TaskView is a followed task or pod instance, as the introspection page
// shows it.
type TaskView struct {
	Key              string    `json:"key"`
	Kind             string    `json:"kind"`
	AppID            string    `json:"app_id"`
	TaskID           string    `json:"task_id,omitempty"`
	InstanceID       string    `json:"instance_id,omitempty"`
	Host             string    `json:"host,omitempty"`
	AgentID          string    `json:"agent_id,omitempty"`
	State            string    `json:"state"`
	Addresses        []string  `json:"addresses,omitempty"`
	ContainerID      string    `json:"container_id,omitempty"`
	Managed          bool      `json:"managed"`
	Ports            []string  `json:"ports,omitempty"`
	Synced           bool      `json:"synced"`
	UnreachableSince time.Time `json:"unreachable_since,omitzero"`
	Releasing        string    `json:"releasing,omitempty"`
	NextRetry        time.Time `json:"next_retry,omitzero"`
	Retries          int       `json:"retries,omitempty"`
}

// AppView is a followed app or pod, as the introspection page shows it.
type AppView struct {
	ID       string               `json:"id"`
	Kind     string               `json:"kind"`
	Version  string               `json:"version,omitempty"`
	Networks []string             `json:"networks,omitempty"`
	Managed  []ManagedNetworkView `json:"managed_networks,omitempty"`
}

// ManagedNetworkView is one managed network of an app with what its
// labels ask for.
type ManagedNetworkView struct {
	Name           string            `json:"name"`
	Source         string            `json:"source"`
	Network        string            `json:"network,omitempty"`
	Subnets        []string          `json:"subnets,omitempty"`
	SecurityGroups []string          `json:"security_groups,omitempty"`
	FloatingIPs    []string          `json:"floating_ips,omitempty"`
	Labels         map[string]string `json:"labels,omitempty"`
	LabelErrors    []string          `json:"label_errors,omitempty"`
}

func appViewOf(s *runSpec) AppView {
	v := AppView{ID: s.ID, Kind: string(s.Kind), Version: s.Version, Networks: slices.Clone(s.Networks)}
	for _, a := range s.Managed {
		m := ManagedNetworkView{Name: a.Name, Source: a.Source, Network: a.Spec.Network, Labels: a.Spec.Labels,
			SecurityGroups: a.Spec.SecurityGroups}
		for _, p := range a.Spec.Subnets {
			m.Subnets = append(m.Subnets, p.String())
		}
		for _, f := range a.Spec.FloatingIPs {
			m.FloatingIPs = append(m.FloatingIPs, f.String())
		}
		for _, e := range a.Errors {
			m.LabelErrors = append(m.LabelErrors, e.Error())
		}
		v.Managed = append(v.Managed, m)
	}
	return v
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
