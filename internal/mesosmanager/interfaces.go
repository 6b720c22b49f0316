package mesosmanager

import (
	"context"
	"time"

	"github.com/weft-sdn/weft/internal/api"
	"github.com/weft-sdn/weft/internal/marathon"
)

// MarathonSource is what the manager reads from Marathon: a snapshot of
// apps, pods and their tasks, single run specs to refresh after an event,
// and the event stream. Implementations: NewMarathonSource (the REST
// client and event stream of package marathon) and FakeMarathon.
type MarathonSource interface {
	// Snapshot reads every app with its tasks and every pod status.
	Snapshot(ctx context.Context) (*marathon.Snapshot, error)
	// App reads one app with its tasks; a missing app is an error for
	// which marathon.IsNotFound is true.
	App(ctx context.Context, id string) (*marathon.App, error)
	// PodStatus reads one pod's status; missing: marathon.IsNotFound.
	PodStatus(ctx context.Context, id string) (*marathon.PodStatus, error)
	// Events subscribes to the event stream until ctx ends. The channel
	// carries Marathon events in order with the *marathon.Resync marker
	// before the first event of every connection and *marathon.Disconnected
	// when one is lost; it is closed when ctx ends.
	Events(ctx context.Context) (<-chan marathon.Event, error)
}

// Controller is what the manager does in the controller. Errors are
// *api.Error values where the controller answered, so errors.Is works
// with api.ErrNotFound, api.ErrConflict and api.ErrInvalid.
// Implementations: NewHTTPController and FakeController.
type Controller interface {
	// ListPorts lists the ports on node, or every port when node is "".
	ListPorts(ctx context.Context, node string) ([]api.Port, error)
	// GetPort reads one port by uuid.
	GetPort(ctx context.Context, uuid string) (api.Port, error)
	// UpdatePort replaces the port p.UUID with p. A non-zero
	// p.ResourceVersion makes it a compare-and-swap that fails with
	// api.ErrConflict when the port changed.
	UpdatePort(ctx context.Context, p api.Port) (api.Port, error)
	// DeletePort deletes a port; a missing one is not an error.
	DeletePort(ctx context.Context, uuid string) error
	// Release returns addresses to the IPAM (by owner, address or node).
	Release(ctx context.Context, req api.ReleaseRequest) error
	// ListNodes lists the registered nodes.
	ListNodes(ctx context.Context) ([]api.Node, error)
	// DeleteNode deletes a node by uuid; the controller releases everything
	// it held. A missing node is not an error.
	DeleteNode(ctx context.Context, uuid string) error
	// Exists tells whether an object of kind with the fq_name exists.
	Exists(ctx context.Context, kind api.Kind, fqName string) (bool, error)
	// ListFloatingIPs lists every floating IP.
	ListFloatingIPs(ctx context.Context) ([]api.FloatingIP, error)
	// CreateFloatingIP creates a floating IP (Parent is its pool).
	CreateFloatingIP(ctx context.Context, f api.FloatingIP) error
	// DeleteFloatingIP deletes a floating IP; a missing one is not an
	// error.
	DeleteFloatingIP(ctx context.Context, uuid string) error
	// AcquireLease takes or renews the lease name for holder. When another
	// holder has it, the error wraps api.ErrConflict and the returned lease
	// names that holder (when it could be read).
	AcquireLease(ctx context.Context, name, holder string, ttl time.Duration) (api.Lease, error)
	// ReleaseLease gives the lease up if holder has it.
	ReleaseLease(ctx context.Context, name, holder string) error
}

// MesosSource reads the Mesos master's view of its agents and of the
// containers of tasks. Implementations: NewMesosMaster (the master's
// /master/state) and FakeMesos.
type MesosSource interface {
	State(ctx context.Context) (*MesosState, error)
}

// MesosState is what the manager takes from the master's state.
type MesosState struct {
	// Agents are the registered agents.
	Agents []MesosAgent
	// Containers maps a task id to the id of the (top-level) Mesos
	// container the task runs in: the container the CNI plugin was called
	// for, whose id the agent stores on the port.
	Containers map[string]string
}

// MesosAgent is one registered Mesos agent.
type MesosAgent struct {
	ID       string `json:"id"`
	Hostname string `json:"hostname"`
	// IP is the address of the agent's libprocess pid
	// (slave(1)@<ip>:5051), when known.
	IP     string `json:"ip,omitempty"`
	Active bool   `json:"active"`
}

// Clock is the manager's time source, injectable for tests.
type Clock interface {
	Now() time.Time
}

// systemClock is the real clock.
type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }
