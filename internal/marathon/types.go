package marathon

import "encoding/json"

// The types below hold what a client that mirrors Marathon's run specs and
// their tasks needs. Fields Marathon writes that are not listed are ignored
// when decoding; null and absent values both leave the zero value (§5,
// "treat null and absent alike"). Time stamps and versions are kept as the
// strings Marathon writes (ISO-8601 UTC with milliseconds): a version is an
// identifier that must round-trip exactly, and ParseTimestamp turns either
// into a time.Time.

// NetworkMode is the mode of a Marathon network (§3.1).
type NetworkMode string

// The network modes of Marathon 1.5+ (S:raml/NetworkConversion.scala).
const (
	// NetworkModeHost is host networking, Marathon's default.
	NetworkModeHost NetworkMode = "host"
	// NetworkModeContainer is a named (CNI or overlay) container network:
	// the task gets its own address. This is the mode a network plugin such
	// as Weft manages.
	NetworkModeContainer NetworkMode = "container"
	// NetworkModeBridge is the agent's bridge (Docker bridge or Mesos
	// mesos-bridge), with ports mapped from the host.
	NetworkModeBridge NetworkMode = "container/bridge"
)

// App is a Marathon application as GET /v2/apps and GET /v2/apps/{id} return
// it, in either the 1.5+ shape (networks, container.portMappings) or the
// ≤ 1.4 shape (ipAddress, ports, container.docker.network,
// container.docker.portMappings).
type App struct {
	ID        string   `json:"id"`
	Cmd       string   `json:"cmd,omitempty"`
	Args      []string `json:"args,omitempty"`
	User      string   `json:"user,omitempty"`
	Instances int      `json:"instances"`
	CPUs      float64  `json:"cpus,omitempty"`
	Mem       float64  `json:"mem,omitempty"`
	Disk      float64  `json:"disk,omitempty"`
	GPUs      int      `json:"gpus,omitempty"`
	// Labels are the app labels (HAPROXY_*, and anything else).
	Labels map[string]string `json:"labels,omitempty"`
	// Constraints are placement constraints, e.g. ["hostname","UNIQUE"].
	Constraints [][]string `json:"constraints,omitempty"`
	// Role is the Mesos role (1.9+).
	Role      string     `json:"role,omitempty"`
	Container *Container `json:"container,omitempty"`
	// Networks is the 1.5+ network list; Marathon always writes it and
	// defaults it to [{"mode":"host"}].
	Networks []Network `json:"networks,omitempty"`
	// IPAddress is the ≤ 1.4 "IP per task" request: present means the app
	// runs on a container network (§3.2). 1.5+ never writes it.
	IPAddress *IPAddressSpec `json:"ipAddress,omitempty"`
	// PortDefinitions are the ports of a host-networking app; Port is the
	// service port.
	PortDefinitions []PortDefinition `json:"portDefinitions,omitempty"`
	// Ports are the ≤ 1.4 service ports (absent in 1.5+ responses).
	Ports        []int        `json:"ports,omitempty"`
	RequirePorts bool         `json:"requirePorts,omitempty"`
	Version      string       `json:"version,omitempty"`
	VersionInfo  *VersionInfo `json:"versionInfo,omitempty"`
	// UnreachableStrategy is an object or the string "disabled"; kept raw.
	UnreachableStrategy json.RawMessage `json:"unreachableStrategy,omitempty"`
	KillSelection       string          `json:"killSelection,omitempty"`

	// Counts, always embedded by GET /v2/apps.
	TasksStaged    int `json:"tasksStaged,omitempty"`
	TasksRunning   int `json:"tasksRunning,omitempty"`
	TasksHealthy   int `json:"tasksHealthy,omitempty"`
	TasksUnhealthy int `json:"tasksUnhealthy,omitempty"`
	// Deployments are the deployments in progress that touch the app.
	Deployments []DeploymentRef `json:"deployments,omitempty"`
	// Tasks are embedded with embed=apps.tasks and on GET /v2/apps/{id};
	// terminal and unreachable tasks are listed too (§3.3).
	Tasks []Task `json:"tasks,omitempty"`
}

// VersionInfo tells when an app was last scaled or changed.
type VersionInfo struct {
	LastScalingAt      string `json:"lastScalingAt,omitempty"`
	LastConfigChangeAt string `json:"lastConfigChangeAt,omitempty"`
}

// DeploymentRef names a deployment in progress.
type DeploymentRef struct {
	ID string `json:"id"`
}

// Container is an app's container: the containerizer, the Docker image, and
// (1.5+) the port mappings of non-host networking.
type Container struct {
	// Type is DOCKER or MESOS.
	Type   string  `json:"type,omitempty"`
	Docker *Docker `json:"docker,omitempty"`
	// PortMappings are the 1.5+ port mappings (bridge and container
	// networks).
	PortMappings []PortMapping `json:"portMappings,omitempty"`
}

// Docker is the docker part of a container.
type Docker struct {
	Image          string `json:"image,omitempty"`
	ForcePullImage bool   `json:"forcePullImage,omitempty"`
	Privileged     bool   `json:"privileged,omitempty"`
	// Network is the ≤ 1.4 Docker network: BRIDGE, HOST, USER or NONE.
	Network string `json:"network,omitempty"`
	// PortMappings are the ≤ 1.4 Docker port mappings.
	PortMappings []PortMapping `json:"portMappings,omitempty"`
}

// PortMapping maps a container port to a host port and a service port.
type PortMapping struct {
	ContainerPort int `json:"containerPort"`
	// HostPort is nil when the mapping asks for no agent port (possible on
	// container networks only); 0 asks for a dynamic one.
	HostPort    *int              `json:"hostPort,omitempty"`
	ServicePort int               `json:"servicePort,omitempty"`
	Protocol    string            `json:"protocol,omitempty"`
	Name        string            `json:"name,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	// NetworkNames restricts the mapping to these container networks.
	NetworkNames []string `json:"networkNames,omitempty"`
}

// PortDefinition is a port of a host-networking app.
type PortDefinition struct {
	// Port is the service port.
	Port     int               `json:"port"`
	Protocol string            `json:"protocol,omitempty"`
	Name     string            `json:"name,omitempty"`
	Labels   map[string]string `json:"labels,omitempty"`
}

// Network is one 1.5+ network entry of an app or pod.
type Network struct {
	Mode NetworkMode `json:"mode,omitempty"`
	// Name is the container network's name; empty for host and bridge, and
	// for a container network it means Marathon's --default_network_name.
	Name   string            `json:"name,omitempty"`
	Labels map[string]string `json:"labels,omitempty"`
}

// IPAddressSpec is the ≤ 1.4 ipAddress of an app (§3.2).
type IPAddressSpec struct {
	// NetworkName is the container network; empty means Marathon's
	// --default_network_name.
	NetworkName string            `json:"networkName,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	Groups      []string          `json:"groups,omitempty"`
	Discovery   *Discovery        `json:"discovery,omitempty"`
}

// Discovery lists the ports an ipAddress app exposes.
type Discovery struct {
	Ports []DiscoveryPort `json:"ports,omitempty"`
}

// DiscoveryPort is one port of an ipAddress app.
type DiscoveryPort struct {
	Number   int               `json:"number"`
	Name     string            `json:"name,omitempty"`
	Protocol string            `json:"protocol,omitempty"`
	Labels   map[string]string `json:"labels,omitempty"`
}

// Task is an app task as GET /v2/tasks, GET /v2/apps/{id}/tasks and
// embed=apps.tasks return it (§3.3). Pod tasks never appear in this form.
type Task struct {
	// ID is the Mesos task id; treat it as opaque (§3.5).
	ID    string `json:"id"`
	AppID string `json:"appId,omitempty"`
	// Host is the agent's hostname.
	Host string `json:"host,omitempty"`
	// SlaveID is the agent id; tasks use slaveId. AgentID is accepted too,
	// in case a writer uses the newer name; Agent returns whichever is set.
	SlaveID string `json:"slaveId,omitempty"`
	AgentID string `json:"agentId,omitempty"`
	// State is a Mesos task state name (TASK_RUNNING, …).
	State     string `json:"state,omitempty"`
	StagedAt  string `json:"stagedAt,omitempty"`
	StartedAt string `json:"startedAt,omitempty"`
	Version   string `json:"version,omitempty"`
	// IPAddresses are the container's addresses as Mesos reported them;
	// may be empty.
	IPAddresses []TaskIPAddress `json:"ipAddresses,omitempty"`
	// Ports are the allocated agent host ports, in declaration order;
	// empty unless the task is active.
	Ports []int `json:"ports,omitempty"`
	// ServicePorts are filled on /v2/tasks only.
	ServicePorts       []int               `json:"servicePorts,omitempty"`
	HealthCheckResults []HealthCheckResult `json:"healthCheckResults,omitempty"`
	Region             string              `json:"region,omitempty"`
	Zone               string              `json:"zone,omitempty"`
	Role               string              `json:"role,omitempty"`
}

// Agent returns the task's agent id (slaveId, or agentId if only that is
// set).
func (t Task) Agent() string {
	if t.SlaveID != "" {
		return t.SlaveID
	}
	return t.AgentID
}

// TaskIPAddress is one address of a task.
type TaskIPAddress struct {
	IPAddress string `json:"ipAddress"`
	// Protocol is IPv4 or IPv6.
	Protocol string `json:"protocol,omitempty"`
}

// HealthCheckResult is the result of a Marathon-side health check.
type HealthCheckResult struct {
	Alive               bool   `json:"alive"`
	ConsecutiveFailures int    `json:"consecutiveFailures,omitempty"`
	FirstSuccess        string `json:"firstSuccess,omitempty"`
	LastSuccess         string `json:"lastSuccess,omitempty"`
	LastFailure         string `json:"lastFailure,omitempty"`
	LastFailureCause    string `json:"lastFailureCause,omitempty"`
	// InstanceID is set from 1.4, TaskID before.
	InstanceID string `json:"instanceId,omitempty"`
	TaskID     string `json:"taskId,omitempty"`
}

// Pod is a pod definition (§3.6).
type Pod struct {
	ID         string            `json:"id"`
	Labels     map[string]string `json:"labels,omitempty"`
	Version    string            `json:"version,omitempty"`
	User       string            `json:"user,omitempty"`
	Containers []PodContainer    `json:"containers,omitempty"`
	// Networks are the pod's networks; empty means host networking.
	Networks []Network   `json:"networks,omitempty"`
	Scaling  *PodScaling `json:"scaling,omitempty"`
	Role     string      `json:"role,omitempty"`
}

// PodScaling is a pod's scaling policy.
type PodScaling struct {
	Kind         string `json:"kind,omitempty"`
	Instances    int    `json:"instances"`
	MaxInstances int    `json:"maxInstances,omitempty"`
}

// PodContainer is one container of a pod.
type PodContainer struct {
	Name      string            `json:"name"`
	Resources *Resources        `json:"resources,omitempty"`
	Endpoints []Endpoint        `json:"endpoints,omitempty"`
	Image     *PodImage         `json:"image,omitempty"`
	Labels    map[string]string `json:"labels,omitempty"`
}

// Resources are the resources of a container or instance.
type Resources struct {
	CPUs float64 `json:"cpus,omitempty"`
	Mem  float64 `json:"mem,omitempty"`
	Disk float64 `json:"disk,omitempty"`
	GPUs int     `json:"gpus,omitempty"`
}

// PodImage is the image of a pod container.
type PodImage struct {
	Kind      string `json:"kind,omitempty"`
	ID        string `json:"id,omitempty"`
	ForcePull bool   `json:"forcePull,omitempty"`
}

// Endpoint is a port of a pod container.
type Endpoint struct {
	Name string `json:"name"`
	// ContainerPort 0 means "the allocated host port" on container
	// networks; unset on host networking.
	ContainerPort int `json:"containerPort,omitempty"`
	// HostPort is nil when no agent port is wanted, 0 for a dynamic one.
	HostPort     *int              `json:"hostPort,omitempty"`
	Protocol     []string          `json:"protocol,omitempty"`
	Labels       map[string]string `json:"labels,omitempty"`
	NetworkNames []string          `json:"networkNames,omitempty"`
}

// PodStatus is an element of GET /v2/pods/::status (§3.7).
type PodStatus struct {
	ID   string `json:"id"`
	Spec *Pod   `json:"spec,omitempty"`
	// Status is DEGRADED, STABLE or TERMINAL.
	Status      string              `json:"status,omitempty"`
	StatusSince string              `json:"statusSince,omitempty"`
	Message     string              `json:"message,omitempty"`
	Instances   []PodInstanceStatus `json:"instances,omitempty"`
	LastUpdated string              `json:"lastUpdated,omitempty"`
	LastChanged string              `json:"lastChanged,omitempty"`
}

// PodInstanceStatus is one instance of a pod.
type PodInstanceStatus struct {
	// ID is the instance id (grp_pod.instance-<uuid>).
	ID string `json:"id"`
	// Status is PENDING, STAGING, STABLE, DEGRADED or TERMINAL.
	Status        string            `json:"status,omitempty"`
	StatusSince   string            `json:"statusSince,omitempty"`
	Message       string            `json:"message,omitempty"`
	Conditions    []StatusCondition `json:"conditions,omitempty"`
	AgentHostname string            `json:"agentHostname,omitempty"`
	// AgentID is written since 1.5.
	AgentID     string     `json:"agentId,omitempty"`
	AgentRegion string     `json:"agentRegion,omitempty"`
	AgentZone   string     `json:"agentZone,omitempty"`
	Resources   *Resources `json:"resources,omitempty"`
	// Networks are the instance's container networks with their addresses.
	Networks      []PodNetworkStatus `json:"networks,omitempty"`
	Containers    []ContainerStatus  `json:"containers,omitempty"`
	SpecReference string             `json:"specReference,omitempty"`
	LastUpdated   string             `json:"lastUpdated,omitempty"`
	LastChanged   string             `json:"lastChanged,omitempty"`
	Role          string             `json:"role,omitempty"`
}

// PodNetworkStatus is a network of a pod instance with its addresses.
type PodNetworkStatus struct {
	Name      string   `json:"name,omitempty"`
	Addresses []string `json:"addresses,omitempty"`
}

// ContainerStatus is the status of one container of a pod instance.
type ContainerStatus struct {
	Name string `json:"name"`
	// Status is the Mesos task state of the container's task.
	Status      string            `json:"status,omitempty"`
	StatusSince string            `json:"statusSince,omitempty"`
	Message     string            `json:"message,omitempty"`
	Conditions  []StatusCondition `json:"conditions,omitempty"`
	// ContainerID is the Mesos task id of the container.
	ContainerID string                    `json:"containerId,omitempty"`
	Endpoints   []ContainerEndpointStatus `json:"endpoints,omitempty"`
	Resources   *Resources                `json:"resources,omitempty"`
	LastUpdated string                    `json:"lastUpdated,omitempty"`
	LastChanged string                    `json:"lastChanged,omitempty"`
}

// ContainerEndpointStatus is an endpoint of a running pod container.
type ContainerEndpointStatus struct {
	Name              string `json:"name"`
	AllocatedHostPort int    `json:"allocatedHostPort,omitempty"`
	Healthy           *bool  `json:"healthy,omitempty"`
}

// StatusCondition is a condition of a pod instance or container.
type StatusCondition struct {
	Name        string `json:"name"`
	Value       string `json:"value,omitempty"`
	Reason      string `json:"reason,omitempty"`
	LastChanged string `json:"lastChanged,omitempty"`
	LastUpdated string `json:"lastUpdated,omitempty"`
}

// Info is GET /v2/info (§2.3).
type Info struct {
	Name     string `json:"name"`
	Version  string `json:"version"`
	Buildref string `json:"buildref,omitempty"`
	// Elected tells whether the answering node is the leader.
	Elected bool `json:"elected"`
	// Leader is host:port of the leader, empty if there is none.
	Leader         string         `json:"leader,omitempty"`
	FrameworkID    string         `json:"frameworkId,omitempty"`
	MarathonConfig MarathonConfig `json:"marathon_config"`
	HTTPConfig     HTTPConfig     `json:"http_config"`
}

// MarathonConfig is the part of Info.marathon_config a client uses.
type MarathonConfig struct {
	// DefaultNetworkName is the container network an app gets when its
	// network or ipAddress names none.
	DefaultNetworkName string   `json:"default_network_name,omitempty"`
	MesosBridgeName    string   `json:"mesos_bridge_name,omitempty"`
	Features           []string `json:"features,omitempty"`
	FrameworkName      string   `json:"framework_name,omitempty"`
	Hostname           string   `json:"hostname,omitempty"`
	Master             string   `json:"master,omitempty"`
	WebUIURL           string   `json:"webui_url,omitempty"`
	HA                 bool     `json:"ha,omitempty"`
}

// HTTPConfig is Info.http_config.
type HTTPConfig struct {
	HTTPPort  int `json:"http_port,omitempty"`
	HTTPSPort int `json:"https_port,omitempty"`
}

// Leader is GET /v2/leader.
type Leader struct {
	// Leader is the leader's host:port.
	Leader string `json:"leader"`
}

// Group is a group of the run-spec tree (GET /v2/groups).
type Group struct {
	ID           string   `json:"id"`
	Apps         []App    `json:"apps,omitempty"`
	Pods         []Pod    `json:"pods,omitempty"`
	Groups       []Group  `json:"groups,omitempty"`
	Dependencies []string `json:"dependencies,omitempty"`
	Version      string   `json:"version,omitempty"`
}

// Deployment is an element of GET /v2/deployments.
type Deployment struct {
	ID             string             `json:"id"`
	Version        string             `json:"version,omitempty"`
	AffectedApps   []string           `json:"affectedApps,omitempty"`
	AffectedPods   []string           `json:"affectedPods,omitempty"`
	Steps          []DeploymentStep   `json:"steps,omitempty"`
	CurrentActions []DeploymentAction `json:"currentActions,omitempty"`
	// CurrentStep is the 1-based index of the step in progress.
	CurrentStep int `json:"currentStep,omitempty"`
	TotalSteps  int `json:"totalSteps,omitempty"`
}

// DeploymentStep is one step of a deployment plan.
type DeploymentStep struct {
	Actions []DeploymentAction `json:"actions,omitempty"`
}

// DeploymentAction is one action of a deployment step. It names an app or
// a pod.
type DeploymentAction struct {
	// Action is StartApplication, StopApplication, ScaleApplication,
	// RestartApplication, StartPod, StopPod, ScalePod, RestartPod or
	// ResolveArtifacts.
	Action string `json:"action"`
	App    string `json:"app,omitempty"`
	Pod    string `json:"pod,omitempty"`
}

// RunSpec returns the app or pod the action is about.
func (a DeploymentAction) RunSpec() string {
	if a.App != "" {
		return a.App
	}
	return a.Pod
}
