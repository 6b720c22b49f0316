package marathon

import (
	"encoding/json"
	"errors"
	"net/netip"
	"time"
)

// Marathon event types (§4.4).
const (
	EventStatusUpdate              = "status_update_event"
	EventInstanceChanged           = "instance_changed_event"
	EventInstanceHealthChanged     = "instance_health_changed_event"
	EventUnknownInstanceTerminated = "unknown_instance_terminated_event"
	EventUnhealthyInstanceKill     = "unhealthy_instance_kill_event"
	EventHealthStatusChanged       = "health_status_changed_event"
	EventFailedHealthCheck         = "failed_health_check_event"
	EventAddHealthCheck            = "add_health_check_event"
	EventRemoveHealthCheck         = "remove_health_check_event"
	EventAPIPost                   = "api_post_event"
	EventPodCreated                = "pod_created_event"
	EventPodUpdated                = "pod_updated_event"
	EventPodDeleted                = "pod_deleted_event"
	EventAppTerminated             = "app_terminated_event"
	EventGroupChangeSuccess        = "group_change_success"
	EventGroupChangeFailed         = "group_change_failed"
	EventDeploymentInfo            = "deployment_info"
	EventDeploymentStepSuccess     = "deployment_step_success"
	EventDeploymentStepFailure     = "deployment_step_failure"
	EventDeploymentSuccess         = "deployment_success"
	EventDeploymentFailed          = "deployment_failed"
	EventStreamAttached            = "event_stream_attached"
	EventStreamDetached            = "event_stream_detached"
	EventSchedulerRegistered       = "scheduler_registered_event"
	EventSchedulerReregistered     = "scheduler_reregistered_event"
	EventSchedulerDisconnected     = "scheduler_disconnected_event"
	EventFrameworkMessage          = "framework_message_event"
)

// Synthetic event types the Stream puts into its channel; Marathon never
// sends them.
const (
	// EventResync marks that the consumer must re-read Marathon's state
	// (a *Resync).
	EventResync = "resync"
	// EventDisconnected marks the loss of the subscription (a
	// *Disconnected).
	EventDisconnected = "disconnected"
)

// DefaultEventTypes is the event_type filter §5 recommends for a client
// that mirrors run specs and tasks. It includes event_stream_attached, the
// event that proves the subscription is live.
var DefaultEventTypes = []string{
	EventStatusUpdate,
	EventInstanceChanged,
	EventInstanceHealthChanged,
	EventHealthStatusChanged,
	EventAPIPost,
	EventAppTerminated,
	EventPodCreated,
	EventPodUpdated,
	EventPodDeleted,
	EventDeploymentSuccess,
	EventDeploymentFailed,
	EventGroupChangeSuccess,
	EventStreamAttached,
}

// Event is a Marathon event, or a marker of the Stream (*Resync,
// *Disconnected). Use a type switch on the pointer types below; events of
// types this package does not model are *RawEvent.
type Event interface {
	// EventType returns the event's type (eventType).
	EventType() string
}

// EventMeta holds what every Marathon event carries.
type EventMeta struct {
	// Type is the eventType (or, if the JSON lacks it, the "event:" line).
	Type string `json:"eventType"`
	// Timestamp is when Marathon published the event (ISO-8601 UTC).
	Timestamp string `json:"timestamp"`
	// Raw is the event's JSON as received.
	Raw json.RawMessage `json:"-"`
}

// EventType returns the event's type.
func (m *EventMeta) EventType() string { return m.Type }

// Time parses Timestamp; the zero time if it does not parse.
func (m *EventMeta) Time() time.Time {
	t, _ := ParseTimestamp(m.Timestamp)
	return t
}

// StatusUpdateEvent is status_update_event: a Mesos status update of an
// app task or a pod container task. TaskStatus is the raw Mesos state.
// For pods AppID is the pod id and TaskID a container's task id.
type StatusUpdateEvent struct {
	EventMeta
	SlaveID     string          `json:"slaveId"`
	AgentID     string          `json:"agentId,omitempty"`
	TaskID      string          `json:"taskId"`
	TaskStatus  string          `json:"taskStatus"`
	Message     string          `json:"message,omitempty"`
	AppID       string          `json:"appId"`
	Host        string          `json:"host"`
	IPAddresses []TaskIPAddress `json:"ipAddresses,omitempty"`
	Ports       []int           `json:"ports,omitempty"`
	Version     string          `json:"version,omitempty"`
}

// Agent returns the agent id (slaveId, or agentId if only that is set).
func (e *StatusUpdateEvent) Agent() string {
	if e.SlaveID != "" {
		return e.SlaveID
	}
	return e.AgentID
}

// Addresses returns the task's container addresses (see TaskAddresses).
func (e *StatusUpdateEvent) Addresses() []netip.Addr {
	return TaskAddresses(&Task{IPAddresses: e.IPAddresses})
}

// InstanceChangedEvent is instance_changed_event: an instance's condition
// or goal changed. AgentID and Host are empty while Scheduled.
type InstanceChangedEvent struct {
	EventMeta
	InstanceID     string `json:"instanceId"`
	Condition      string `json:"condition"`
	RunSpecID      string `json:"runSpecId"`
	AgentID        string `json:"agentId,omitempty"`
	Host           string `json:"host,omitempty"`
	RunSpecVersion string `json:"runSpecVersion,omitempty"`
}

// InstanceHealthChangedEvent is instance_health_changed_event. Healthy is
// nil when Marathon wrote null (no health information).
type InstanceHealthChangedEvent struct {
	EventMeta
	InstanceID     string `json:"instanceId"`
	RunSpecID      string `json:"runSpecId"`
	RunSpecVersion string `json:"runSpecVersion,omitempty"`
	Healthy        *bool  `json:"healthy"`
}

// UnknownInstanceTerminatedEvent is unknown_instance_terminated_event.
type UnknownInstanceTerminatedEvent struct {
	EventMeta
	InstanceID string `json:"instanceId"`
	RunSpecID  string `json:"runSpecId"`
	Condition  string `json:"condition"`
}

// HealthEvent is one of the Marathon-side health-check events:
// health_status_changed_event, unhealthy_instance_kill_event and
// failed_health_check_event. Which fields are set depends on the type; in
// failed_health_check_event the taskId key holds the instance id, so
// InstanceIDOrTask is the field to use.
type HealthEvent struct {
	EventMeta
	AppID      string `json:"appId"`
	InstanceID string `json:"instanceId,omitempty"`
	TaskID     string `json:"taskId,omitempty"`
	Version    string `json:"version,omitempty"`
	// Alive is set on health_status_changed_event.
	Alive *bool `json:"alive,omitempty"`
	// Reason, Host and SlaveID are set on unhealthy_instance_kill_event.
	Reason  string `json:"reason,omitempty"`
	Host    string `json:"host,omitempty"`
	SlaveID string `json:"slaveId,omitempty"`
	// HealthCheck is the check of failed_health_check_event, raw.
	HealthCheck json.RawMessage `json:"healthCheck,omitempty"`
}

// InstanceIDOrTask returns InstanceID, or TaskID when only that is set
// (failed_health_check_event, and ≤ 1.3 events).
func (e *HealthEvent) InstanceIDOrTask() string {
	if e.InstanceID != "" {
		return e.InstanceID
	}
	return e.TaskID
}

// APIPostEvent is api_post_event: an app was created or changed through
// POST /v2/apps or PUT/PATCH /v2/apps/{id} (only those, §4.4).
type APIPostEvent struct {
	EventMeta
	ClientIP      string `json:"clientIp,omitempty"`
	URI           string `json:"uri,omitempty"`
	AppDefinition *App   `json:"appDefinition,omitempty"`
}

// PodEvent is pod_created_event, pod_updated_event or pod_deleted_event.
// It carries no spec: re-read the pod status.
type PodEvent struct {
	EventMeta
	ClientIP string `json:"clientIp,omitempty"`
	URI      string `json:"uri,omitempty"`
}

// AppTerminatedEvent is app_terminated_event: an app or pod was stopped and
// removed, the reliable deletion signal.
type AppTerminatedEvent struct {
	EventMeta
	AppID string `json:"appId"`
}

// GroupChangeEvent is group_change_success or group_change_failed.
type GroupChangeEvent struct {
	EventMeta
	GroupID string `json:"groupId"`
	Version string `json:"version,omitempty"`
	Reason  string `json:"reason,omitempty"`
}

// DeploymentEvent is one of deployment_info, deployment_step_success,
// deployment_step_failure (Plan and CurrentStep set), deployment_success
// and deployment_failed (ID and Plan set, Reason on failure).
type DeploymentEvent struct {
	EventMeta
	ID          string          `json:"id,omitempty"`
	Plan        *DeploymentPlan `json:"plan,omitempty"`
	CurrentStep *DeploymentStep `json:"currentStep,omitempty"`
	Reason      string          `json:"reason,omitempty"`
}

// DeploymentPlan is the plan of a deployment event ("light" since 1.8: no
// original and target groups).
type DeploymentPlan struct {
	ID      string           `json:"id"`
	Version string           `json:"version,omitempty"`
	Steps   []DeploymentStep `json:"steps,omitempty"`
}

// RunSpecs returns the apps and pods the event's current step (or, if it
// has none, its whole plan) acts on, without duplicates.
func (e *DeploymentEvent) RunSpecs() []string {
	var steps []DeploymentStep
	if e.CurrentStep != nil {
		steps = []DeploymentStep{*e.CurrentStep}
	} else if e.Plan != nil {
		steps = e.Plan.Steps
	}
	seen := map[string]bool{}
	var out []string
	for _, s := range steps {
		for _, a := range s.Actions {
			if id := a.RunSpec(); id != "" && !seen[id] {
				seen[id] = true
				out = append(out, id)
			}
		}
	}
	return out
}

// StreamAttachmentEvent is event_stream_attached or event_stream_detached:
// some client (not necessarily this one) subscribed or left.
type StreamAttachmentEvent struct {
	EventMeta
	RemoteAddress string `json:"remoteAddress"`
}

// SchedulerEvent is scheduler_registered_event,
// scheduler_reregistered_event or scheduler_disconnected_event.
type SchedulerEvent struct {
	EventMeta
	FrameworkID string `json:"frameworkId,omitempty"`
	Master      string `json:"master,omitempty"`
}

// RawEvent is an event of a type this package does not model; Data is its
// JSON. Marathon adds event types over time (§4.4): ignore what you do not
// know.
type RawEvent struct {
	EventMeta
}

// Data returns the event's JSON.
func (e *RawEvent) Data() json.RawMessage { return e.Raw }

// Resync is the Stream's marker that the consumer must re-read Marathon's
// state (Client.Snapshot) and treat what it holds as stale. The Stream
// sends it after every (re)connect just before the connection's first
// event, when the subscription is known to be live (§5 step 3), so every
// change after the snapshot arrives as an event behind the marker.
type Resync struct {
	// Reason says why: "connected", "reconnected", or "undecodable
	// event" when an event could not be decoded (the subscription stays
	// up; the event is dropped and logged).
	Reason string
	// URL is the URL the stream is connected to (after redirects).
	URL string
	// Connection counts the stream's successful connections, from 1.
	Connection int
	// At is when the first event of the connection arrived.
	At time.Time
}

// EventType returns EventResync.
func (*Resync) EventType() string { return EventResync }

// Disconnected is the Stream's marker that the subscription was lost
// (EOF, error, idle timeout, overflow of the queue) or could not be
// established; events may be missed until the next Resync. Err says why: an
// *APIError for a non-200 answer (401/403: check the credentials).
type Disconnected struct {
	Err error
	// Delay is how long the stream waits before reconnecting.
	Delay time.Duration
	At    time.Time
}

// EventType returns EventDisconnected.
func (*Disconnected) EventType() string { return EventDisconnected }

// DecodeEvent decodes one event from its "event:" name and JSON data. The
// type is taken from the JSON's eventType, falling back to name. Types this
// package does not model give a *RawEvent; data that is not a JSON object,
// and known types whose fields have the wrong JSON type, give a
// *DecodeError.
func DecodeEvent(name string, data []byte) (Event, error) {
	// The envelope is read leniently, so that an unknown event type with
	// an odd field still passes through as a RawEvent.
	var head struct {
		Type      json.RawMessage `json:"eventType"`
		Timestamp json.RawMessage `json:"timestamp"`
	}
	if err := decodeJSON("event "+name, data, &head); err != nil {
		return nil, err
	}
	meta := EventMeta{Type: jsonString(head.Type), Timestamp: jsonString(head.Timestamp)}
	if meta.Type == "" {
		meta.Type = name
	}
	if meta.Type == "" {
		return nil, &DecodeError{What: "event", Path: "$.eventType", Err: errors.New("no event type")}
	}
	var ev Event
	var meta2 *EventMeta
	switch meta.Type {
	case EventStatusUpdate:
		e := &StatusUpdateEvent{}
		ev, meta2 = e, &e.EventMeta
	case EventInstanceChanged:
		e := &InstanceChangedEvent{}
		ev, meta2 = e, &e.EventMeta
	case EventInstanceHealthChanged:
		e := &InstanceHealthChangedEvent{}
		ev, meta2 = e, &e.EventMeta
	case EventUnknownInstanceTerminated:
		e := &UnknownInstanceTerminatedEvent{}
		ev, meta2 = e, &e.EventMeta
	case EventHealthStatusChanged, EventUnhealthyInstanceKill, EventFailedHealthCheck:
		e := &HealthEvent{}
		ev, meta2 = e, &e.EventMeta
	case EventAPIPost:
		e := &APIPostEvent{}
		ev, meta2 = e, &e.EventMeta
	case EventPodCreated, EventPodUpdated, EventPodDeleted:
		e := &PodEvent{}
		ev, meta2 = e, &e.EventMeta
	case EventAppTerminated:
		e := &AppTerminatedEvent{}
		ev, meta2 = e, &e.EventMeta
	case EventGroupChangeSuccess, EventGroupChangeFailed:
		e := &GroupChangeEvent{}
		ev, meta2 = e, &e.EventMeta
	case EventDeploymentInfo, EventDeploymentStepSuccess, EventDeploymentStepFailure,
		EventDeploymentSuccess, EventDeploymentFailed:
		e := &DeploymentEvent{}
		ev, meta2 = e, &e.EventMeta
	case EventStreamAttached, EventStreamDetached:
		e := &StreamAttachmentEvent{}
		ev, meta2 = e, &e.EventMeta
	case EventSchedulerRegistered, EventSchedulerReregistered, EventSchedulerDisconnected:
		e := &SchedulerEvent{}
		ev, meta2 = e, &e.EventMeta
	default:
		e := &RawEvent{EventMeta: meta}
		e.Raw = json.RawMessage(data)
		return e, nil
	}
	if err := decodeJSON("event "+meta.Type, data, ev); err != nil {
		return nil, err
	}
	*meta2 = meta
	meta2.Raw = json.RawMessage(data)
	return ev, nil
}

// jsonString returns raw's value if it is a JSON string, else "".
func jsonString(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return ""
	}
	return s
}
