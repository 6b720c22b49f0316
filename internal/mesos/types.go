package mesos

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// Protocol is NetworkInfo.Protocol, rendered by its enum name.
type Protocol string

// NetworkInfo.Protocol values. The protobuf default is IPv4.
const (
	IPv4 Protocol = "IPv4"
	IPv6 Protocol = "IPv6"
)

// IPAddress is NetworkInfo.IPAddress. In a request an entry asks for one
// address (the given one when IPAddress is set); in a status it reports
// one. Protocol "" is the protobuf default, IPv4, and is rendered as such.
type IPAddress struct {
	Protocol  Protocol
	IPAddress string
}

// ProtoObject renders a as protobuf JSON: protocol is always present
// because it has a default value.
func (a IPAddress) ProtoObject() Object {
	p := a.Protocol
	if p == "" {
		p = IPv4
	}
	o := Object{{"protocol", string(p)}}
	if a.IPAddress != "" {
		o = append(o, Field{"ip_address", a.IPAddress})
	}
	return o
}

// MarshalJSON renders a as protobuf JSON.
func (a IPAddress) MarshalJSON() ([]byte, error) { return MarshalStout(a.ProtoObject()) }

// PortMapping is NetworkInfo.PortMapping.
type PortMapping struct {
	HostPort      uint32
	ContainerPort uint32
	// Protocol is optional ("tcp", "udp"); empty means unset.
	Protocol string
}

// ProtoObject renders m as protobuf JSON.
func (m PortMapping) ProtoObject() Object {
	o := Object{{"host_port", m.HostPort}, {"container_port", m.ContainerPort}}
	if m.Protocol != "" {
		o = append(o, Field{"protocol", m.Protocol})
	}
	return o
}

// MarshalJSON renders m as protobuf JSON.
func (m PortMapping) MarshalJSON() ([]byte, error) { return MarshalStout(m.ProtoObject()) }

// Label is a mesos.Label. The zero Value is rendered as "value":"" (what
// Marathon sends for an empty label); NoValue marks a label whose value is
// unset, which is rendered without "value".
type Label struct {
	Key     string
	Value   string
	NoValue bool
}

// ProtoObject renders l as protobuf JSON.
func (l Label) ProtoObject() Object {
	o := Object{{"key", l.Key}}
	if !l.NoValue || l.Value != "" {
		o = append(o, Field{"value", l.Value})
	}
	return o
}

// Labels is mesos.Labels. Protobuf JSON wraps the list
// ({"labels":[{"key","value"}]}); /state renders a bare array.
type Labels struct {
	Labels []Label
}

// NewLabels builds Labels from key, value pairs; an odd trailing key gets
// an empty value.
func NewLabels(kv ...string) *Labels {
	l := &Labels{}
	for i := 0; i < len(kv); i += 2 {
		v := ""
		if i+1 < len(kv) {
			v = kv[i+1]
		}
		l.Labels = append(l.Labels, Label{Key: kv[i], Value: v})
	}
	return l
}

// Get returns the value of the first label with key k.
func (l *Labels) Get(k string) (string, bool) {
	if l == nil {
		return "", false
	}
	for _, x := range l.Labels {
		if x.Key == k {
			return x.Value, true
		}
	}
	return "", false
}

// ProtoObject renders l as protobuf JSON; an empty list gives {}.
func (l Labels) ProtoObject() Object {
	if len(l.Labels) == 0 {
		return Object{}
	}
	return Object{{"labels", l.StateArray()}}
}

// StateArray renders l as /state does: a bare array of labels.
func (l Labels) StateArray() []Object { return objects(l.Labels, Label.ProtoObject) }

// MarshalJSON renders l as protobuf JSON ({"labels":[…]}).
func (l Labels) MarshalJSON() ([]byte, error) { return MarshalStout(l.ProtoObject()) }

// UnmarshalJSON accepts both encodings: {"labels":[…]} and a bare array.
func (l *Labels) UnmarshalJSON(data []byte) error {
	v, err := decodeValue(data)
	if err != nil {
		return err
	}
	if arr, ok := v.([]any); ok {
		v = map[string]any{"labels": arr}
	}
	obj, ok := v.(map[string]any)
	if !ok {
		if v == nil {
			*l = Labels{}
			return nil
		}
		return errors.New("labels: expecting a JSON object or array")
	}
	m, err := pbParse(labelsDesc, obj, pbOptions{})
	if err != nil {
		return err
	}
	*l = labelsFromPB(m)
	return nil
}

func labelsFromPB(m *pbMsg) Labels {
	var out Labels
	for _, x := range m.msgs("labels") {
		out.Labels = append(out.Labels, Label{Key: x.str("key"), Value: x.str("value"), NoValue: !x.has("value")})
	}
	return out
}

// NetworkInfo is mesos.NetworkInfo: in a ContainerInfo it asks to join
// the CNI network Name; in ContainerStatus it reports the addresses
// assigned there. A NetworkInfo without a name is skipped by the
// network/cni isolator.
type NetworkInfo struct {
	IPAddresses  []IPAddress
	Name         string
	Groups       []string
	Labels       *Labels
	PortMappings []PortMapping
}

// ProtoObject renders n as protobuf JSON in field declaration order
// (ip_addresses, name, groups, labels, port_mappings), with labels as
// {"labels":[…]}: the value Mesos injects as
// args["org.apache.mesos"].network_info.
func (n NetworkInfo) ProtoObject() Object {
	var o Object
	if len(n.IPAddresses) > 0 {
		o = append(o, Field{"ip_addresses", objects(n.IPAddresses, IPAddress.ProtoObject)})
	}
	if n.Name != "" {
		o = append(o, Field{"name", n.Name})
	}
	if len(n.Groups) > 0 {
		o = append(o, Field{"groups", append([]string(nil), n.Groups...)})
	}
	if n.Labels != nil {
		o = append(o, Field{"labels", n.Labels.ProtoObject()})
	}
	if len(n.PortMappings) > 0 {
		o = append(o, Field{"port_mappings", objects(n.PortMappings, PortMapping.ProtoObject)})
	}
	if o == nil {
		o = Object{}
	}
	return o
}

// StateObject renders n as a master or agent /state does
// (src/common/http.cpp json(NetworkInfo)): groups, labels as a bare array,
// ip_addresses, name, port_mappings, each only if set.
func (n NetworkInfo) StateObject() Object {
	o := Object{}
	if len(n.Groups) > 0 {
		o = append(o, Field{"groups", append([]string(nil), n.Groups...)})
	}
	if n.Labels != nil {
		o = append(o, Field{"labels", n.Labels.StateArray()})
	}
	if len(n.IPAddresses) > 0 {
		o = append(o, Field{"ip_addresses", objects(n.IPAddresses, IPAddress.ProtoObject)})
	}
	if n.Name != "" {
		o = append(o, Field{"name", n.Name})
	}
	if len(n.PortMappings) > 0 {
		o = append(o, Field{"port_mappings", objects(n.PortMappings, PortMapping.ProtoObject)})
	}
	return o
}

// objects renders each of xs with render.
func objects[T any](xs []T, render func(T) Object) []Object {
	out := make([]Object, 0, len(xs))
	for _, x := range xs {
		out = append(out, render(x))
	}
	return out
}

// MarshalJSON renders n as protobuf JSON.
func (n NetworkInfo) MarshalJSON() ([]byte, error) { return MarshalStout(n.ProtoObject()) }

// UnmarshalJSON decodes protobuf JSON like ParseNetworkInfo, and also
// accepts the /state form (labels as a bare array).
func (n *NetworkInfo) UnmarshalJSON(data []byte) error {
	v, err := parseNetworkInfo(data, pbOptions{bareLabels: true})
	if err != nil {
		return err
	}
	*n = v
	return nil
}

// ParseNetworkInfo decodes a NetworkInfo from protobuf JSON with stout's
// rules: unknown keys and null values are ignored, an unknown protocol
// name leaves the default (IPv4), a port mapping needs host_port and
// container_port, a type mismatch fails ("Not expecting a JSON string for
// field 'host_port'").
func ParseNetworkInfo(data []byte) (NetworkInfo, error) {
	return parseNetworkInfo(data, pbOptions{})
}

func parseNetworkInfo(data []byte, opts pbOptions) (NetworkInfo, error) {
	obj, err := DecodeObject(data)
	if err != nil {
		return NetworkInfo{}, err
	}
	m, err := pbParse(networkInfoDesc, obj, opts)
	if err != nil {
		return NetworkInfo{}, err
	}
	return networkInfoFromPB(m), nil
}

func networkInfoFromPB(m *pbMsg) NetworkInfo {
	var n NetworkInfo
	for _, a := range m.msgs("ip_addresses") {
		n.IPAddresses = append(n.IPAddresses, IPAddress{Protocol: Protocol(a.str("protocol")), IPAddress: a.str("ip_address")})
	}
	n.Name = m.str("name")
	n.Groups = m.strs("groups")
	if l := m.msg("labels"); l != nil {
		labels := labelsFromPB(l)
		n.Labels = &labels
	}
	for _, p := range m.msgs("port_mappings") {
		n.PortMappings = append(n.PortMappings, PortMapping{
			HostPort:      p.u32("host_port"),
			ContainerPort: p.u32("container_port"),
			Protocol:      p.str("protocol"),
		})
	}
	return n
}

// ContainerID is mesos.ContainerID; nested containers have a Parent.
type ContainerID struct {
	Value  string
	Parent *ContainerID
}

// String renders id as Mesos does for CNI_CONTAINERID: "<parent>.<child>".
func (id ContainerID) String() string {
	if id.Parent != nil {
		return id.Parent.String() + "." + id.Value
	}
	return id.Value
}

// ProtoObject renders id as protobuf JSON: {"value":…,"parent":{…}}.
func (id ContainerID) ProtoObject() Object {
	o := Object{{"value", id.Value}}
	if id.Parent != nil {
		o = append(o, Field{"parent", id.Parent.ProtoObject()})
	}
	return o
}

// MarshalJSON renders id as protobuf JSON.
func (id ContainerID) MarshalJSON() ([]byte, error) { return MarshalStout(id.ProtoObject()) }

// UnmarshalJSON accepts {"value":…,"parent":…} or a bare string.
func (id *ContainerID) UnmarshalJSON(data []byte) error {
	var s string
	if err := json.Unmarshal(data, &s); err == nil {
		*id = ContainerID{Value: s}
		return nil
	}
	var aux struct {
		Value  string       `json:"value"`
		Parent *ContainerID `json:"parent"`
	}
	if err := json.Unmarshal(data, &aux); err != nil {
		return err
	}
	*id = ContainerID{Value: aux.Value, Parent: aux.Parent}
	return nil
}

// TaskState is a mesos.TaskState enum name.
type TaskState string

// Task states.
const (
	TaskStaging     TaskState = "TASK_STAGING"
	TaskStarting    TaskState = "TASK_STARTING"
	TaskRunning     TaskState = "TASK_RUNNING"
	TaskKilling     TaskState = "TASK_KILLING"
	TaskFinished    TaskState = "TASK_FINISHED"
	TaskFailed      TaskState = "TASK_FAILED"
	TaskKilled      TaskState = "TASK_KILLED"
	TaskError       TaskState = "TASK_ERROR"
	TaskLost        TaskState = "TASK_LOST"
	TaskDropped     TaskState = "TASK_DROPPED"
	TaskGone        TaskState = "TASK_GONE"
	TaskUnknown     TaskState = "TASK_UNKNOWN"
	TaskUnreachable TaskState = "TASK_UNREACHABLE"
)

// Terminal reports whether s is a terminal task state.
func (s TaskState) Terminal() bool {
	switch s {
	case TaskFinished, TaskFailed, TaskKilled, TaskError, TaskLost, TaskDropped, TaskGone:
		return true
	}
	return false
}

// TaskStatus.Source values.
const (
	SourceMaster   = "SOURCE_MASTER"
	SourceAgent    = "SOURCE_AGENT"
	SourceExecutor = "SOURCE_EXECUTOR"
)

// TaskStatus.Reason values used by the emulator.
const (
	ReasonContainerLaunchFailed = "REASON_CONTAINER_LAUNCH_FAILED"
	ReasonCommandExecutorFailed = "REASON_COMMAND_EXECUTOR_FAILED"
	ReasonExecutorTerminated    = "REASON_EXECUTOR_TERMINATED"
)

// TaskStatus is mesos.TaskStatus (the fields Weft uses).
type TaskStatus struct {
	TaskID          string
	State           TaskState
	Message         string
	Source          string
	Reason          string
	AgentID         string
	ExecutorID      string
	Timestamp       float64
	Healthy         *bool
	Labels          *Labels
	ContainerStatus *ContainerStatus
}

// ProtoObject renders s as protobuf JSON in declaration order, with the
// v1 API's agent_id and ids wrapped as {"value":…}.
func (s TaskStatus) ProtoObject() Object {
	o := Object{{"task_id", Object{{"value", s.TaskID}}}, {"state", string(s.State)}}
	if s.Message != "" {
		o = append(o, Field{"message", s.Message})
	}
	if s.Source != "" {
		o = append(o, Field{"source", s.Source})
	}
	if s.Reason != "" {
		o = append(o, Field{"reason", s.Reason})
	}
	if s.AgentID != "" {
		o = append(o, Field{"agent_id", Object{{"value", s.AgentID}}})
	}
	if s.ExecutorID != "" {
		o = append(o, Field{"executor_id", Object{{"value", s.ExecutorID}}})
	}
	if s.Timestamp != 0 {
		o = append(o, Field{"timestamp", s.Timestamp})
	}
	if s.Healthy != nil {
		o = append(o, Field{"healthy", *s.Healthy})
	}
	if s.Labels != nil {
		o = append(o, Field{"labels", s.Labels.ProtoObject()})
	}
	if s.ContainerStatus != nil {
		o = append(o, Field{"container_status", s.ContainerStatus.ProtoObject()})
	}
	return o
}

// StateObject renders s as /state does (json(TaskStatus)): state,
// timestamp, labels as a bare array, container_status, healthy.
func (s TaskStatus) StateObject() Object {
	o := Object{{"state", string(s.State)}, {"timestamp", s.Timestamp}}
	if s.Labels != nil {
		o = append(o, Field{"labels", s.Labels.StateArray()})
	}
	if s.ContainerStatus != nil {
		o = append(o, Field{"container_status", s.ContainerStatus.StateObject()})
	}
	if s.Healthy != nil {
		o = append(o, Field{"healthy", *s.Healthy})
	}
	return o
}

// MarshalJSON renders s as protobuf JSON.
func (s TaskStatus) MarshalJSON() ([]byte, error) { return MarshalStout(s.ProtoObject()) }

// UnmarshalJSON accepts the protobuf JSON of MarshalJSON (v0 slave_id or
// v1 agent_id) and the /state form.
func (s *TaskStatus) UnmarshalJSON(data []byte) error {
	var aux struct {
		TaskID          json.RawMessage  `json:"task_id"`
		State           TaskState        `json:"state"`
		Message         string           `json:"message"`
		Source          string           `json:"source"`
		Reason          string           `json:"reason"`
		AgentID         json.RawMessage  `json:"agent_id"`
		SlaveID         json.RawMessage  `json:"slave_id"`
		ExecutorID      json.RawMessage  `json:"executor_id"`
		Timestamp       float64          `json:"timestamp"`
		Healthy         *bool            `json:"healthy"`
		Labels          *Labels          `json:"labels"`
		ContainerStatus *ContainerStatus `json:"container_status"`
	}
	if err := json.Unmarshal(data, &aux); err != nil {
		return err
	}
	var err error
	*s = TaskStatus{State: aux.State, Message: aux.Message, Source: aux.Source, Reason: aux.Reason,
		Timestamp: aux.Timestamp, Healthy: aux.Healthy, Labels: aux.Labels, ContainerStatus: aux.ContainerStatus}
	if s.TaskID, err = idValue(aux.TaskID); err != nil {
		return fmt.Errorf("task_id: %w", err)
	}
	if s.AgentID, err = idValue(aux.AgentID); err != nil {
		return fmt.Errorf("agent_id: %w", err)
	}
	if s.AgentID == "" {
		if s.AgentID, err = idValue(aux.SlaveID); err != nil {
			return fmt.Errorf("slave_id: %w", err)
		}
	}
	if s.ExecutorID, err = idValue(aux.ExecutorID); err != nil {
		return fmt.Errorf("executor_id: %w", err)
	}
	return nil
}

// idValue decodes a Mesos id given as "x" or {"value":"x"}.
func idValue(raw json.RawMessage) (string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s, nil
	}
	var v struct {
		Value string `json:"value"`
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		return "", err
	}
	return v.Value, nil
}

// ContainerStatus is mesos.ContainerStatus (without cgroup_info).
type ContainerStatus struct {
	ContainerID  *ContainerID
	NetworkInfos []NetworkInfo
	ExecutorPID  uint32
}

// ProtoObject renders s as protobuf JSON: container_id, network_infos
// (labels wrapped), executor_pid.
func (s ContainerStatus) ProtoObject() Object {
	o := Object{}
	if s.ContainerID != nil {
		o = append(o, Field{"container_id", s.ContainerID.ProtoObject()})
	}
	if len(s.NetworkInfos) > 0 {
		o = append(o, Field{"network_infos", objects(s.NetworkInfos, NetworkInfo.ProtoObject)})
	}
	if s.ExecutorPID != 0 {
		o = append(o, Field{"executor_pid", s.ExecutorPID})
	}
	return o
}

// StateObject renders s as /state does: container_id as protobuf JSON,
// network_infos with bare label arrays.
func (s ContainerStatus) StateObject() Object {
	o := Object{}
	if s.ContainerID != nil {
		o = append(o, Field{"container_id", s.ContainerID.ProtoObject()})
	}
	if len(s.NetworkInfos) > 0 {
		o = append(o, Field{"network_infos", objects(s.NetworkInfos, NetworkInfo.StateObject)})
	}
	return o
}

// MarshalJSON renders s as protobuf JSON.
func (s ContainerStatus) MarshalJSON() ([]byte, error) { return MarshalStout(s.ProtoObject()) }

// UnmarshalJSON accepts protobuf JSON and the /state form.
func (s *ContainerStatus) UnmarshalJSON(data []byte) error {
	var aux struct {
		ContainerID  *ContainerID  `json:"container_id"`
		NetworkInfos []NetworkInfo `json:"network_infos"`
		ExecutorPID  uint32        `json:"executor_pid"`
	}
	if err := json.Unmarshal(data, &aux); err != nil {
		return err
	}
	*s = ContainerStatus{ContainerID: aux.ContainerID, NetworkInfos: aux.NetworkInfos, ExecutorPID: aux.ExecutorPID}
	return nil
}

// ContainerInfo is the part of mesos.ContainerInfo a task's /state entry
// shows for a Mesos container joining CNI networks.
type ContainerInfo struct {
	// Type is "MESOS" or "DOCKER".
	Type         string
	Hostname     string
	NetworkInfos []NetworkInfo
}

// ProtoObject renders c as protobuf JSON (type, hostname, network_infos).
func (c ContainerInfo) ProtoObject() Object {
	o := Object{{"type", c.Type}}
	if c.Hostname != "" {
		o = append(o, Field{"hostname", c.Hostname})
	}
	if len(c.NetworkInfos) > 0 {
		o = append(o, Field{"network_infos", objects(c.NetworkInfos, NetworkInfo.ProtoObject)})
	}
	return o
}

// Range is an inclusive range of a ranges resource (ports).
type Range struct {
	Begin uint64 `json:"begin"`
	End   uint64 `json:"end"`
}

// Resources are a task's or agent's resources: scalars (cpus, mem, disk,
// gpus, …) and ranges (ports).
type Resources struct {
	Scalars map[string]float64 `json:"scalars,omitempty"`
	Ranges  map[string][]Range `json:"ranges,omitempty"`
}

// StateObject renders r as /state does: cpus, gpus, mem and disk always
// (as doubles), other scalars, then ranges as "[b-e, b-e]" strings.
func (r Resources) StateObject() Object {
	o := Object{}
	fixed := []string{"cpus", "gpus", "mem", "disk"}
	for _, k := range fixed {
		o = append(o, Field{k, r.Scalars[k]})
	}
	var others []string
	for k := range r.Scalars {
		if k != "cpus" && k != "gpus" && k != "mem" && k != "disk" {
			others = append(others, k)
		}
	}
	sort.Strings(others)
	for _, k := range others {
		o = append(o, Field{k, r.Scalars[k]})
	}
	var ranges []string
	for k := range r.Ranges {
		ranges = append(ranges, k)
	}
	sort.Strings(ranges)
	for _, k := range ranges {
		o = append(o, Field{k, FormatRanges(r.Ranges[k])})
	}
	return o
}

// FormatRanges renders ranges like Mesos' stringify(Value::Ranges):
// "[31000-31005, 31010-31010]".
func FormatRanges(rs []Range) string {
	parts := make([]string, 0, len(rs))
	for _, r := range rs {
		parts = append(parts, strconv.FormatUint(r.Begin, 10)+"-"+strconv.FormatUint(r.End, 10))
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

// Task is a mesos.Task as a master or agent /state lists it.
type Task struct {
	ID          string
	Name        string
	FrameworkID string
	// ExecutorID is empty for tasks run by the command executor.
	ExecutorID string
	AgentID    string
	State      TaskState
	Resources  Resources
	Role       string
	Statuses   []TaskStatus
	User       string
	Labels     *Labels
	// Discovery is a DiscoveryInfo already rendered as protobuf JSON; it
	// is copied verbatim.
	Discovery json.RawMessage
	Container *ContainerInfo
}

// StateObject renders t as /state does (src/common/http.cpp json(Task)):
// id, name, framework_id, executor_id, slave_id, state, resources, role,
// statuses, then user, labels (bare array), discovery and container
// (protobuf JSON) when set.
func (t Task) StateObject() Object {
	o := Object{
		{"id", t.ID},
		{"name", t.Name},
		{"framework_id", t.FrameworkID},
		{"executor_id", t.ExecutorID},
		{"slave_id", t.AgentID},
		{"state", string(t.State)},
		{"resources", t.Resources.StateObject()},
		{"role", t.Role},
		{"statuses", objects(t.Statuses, TaskStatus.StateObject)},
	}
	if t.User != "" {
		o = append(o, Field{"user", t.User})
	}
	if t.Labels != nil {
		o = append(o, Field{"labels", t.Labels.StateArray()})
	}
	if len(t.Discovery) > 0 {
		o = append(o, Field{"discovery", t.Discovery})
	}
	if t.Container != nil {
		o = append(o, Field{"container", t.Container.ProtoObject()})
	}
	return o
}

// MarshalJSON renders t in its /state form.
func (t Task) MarshalJSON() ([]byte, error) { return MarshalStout(t.StateObject()) }
