package marathon

import (
	"context"
	"fmt"
	"net/netip"
	"time"
)

// InstanceKind tells whether an Instance is an app task or a pod instance.
type InstanceKind string

// The kinds of Instance.
const (
	KindAppTask     InstanceKind = "app"
	KindPodInstance InstanceKind = "pod"
)

// Instance is one unit that gets its own network attachment: an app task
// (one Mesos container) or a pod instance (one executor whose containers
// share the network).
type Instance struct {
	// Key is the Snapshot.Instances key: the task id of an app task, the
	// instance id of a pod instance.
	Key  string
	Kind InstanceKind
	// InstanceID is Marathon's instance id: the pod instance id, or for an
	// app task the id derived with InstanceIDFromTaskID ("" if the task id
	// has an unknown form). instance_changed_event carries it.
	InstanceID string
	// RunSpecID is the app or pod id.
	RunSpecID string
	// TaskIDs are the Mesos task ids: the app task's id, or the pod
	// containers' task ids (containerId) in container order.
	TaskIDs []string
	// State is the app task's Mesos state (TASK_RUNNING, …) or the pod
	// instance's status (PENDING, STAGING, STABLE, DEGRADED, TERMINAL).
	State   string
	Host    string
	AgentID string
	// Networks are the run spec's network attachments.
	Networks []NetworkAttachment
	// Addresses are the container-network addresses Mesos reported.
	Addresses []netip.Addr
	// Task is the app task (KindAppTask).
	Task *Task
	// PodInstance is the pod instance status (KindPodInstance).
	PodInstance *PodInstanceStatus
}

// Terminal tells whether the instance is gone for good: a terminal task
// state (IsTerminalTaskState) or a TERMINAL pod instance.
func (i *Instance) Terminal() bool {
	if i.Kind == KindPodInstance {
		return i.State == PodInstanceTerminal
	}
	return IsTerminalTaskState(i.State)
}

// Snapshot is Marathon's run specs and their tasks at one moment, as the
// §5 sync loop needs it after a (re)connect of the event stream.
type Snapshot struct {
	// Taken is when the snapshot was completed.
	Taken time.Time
	// Apps are the apps by id, each with its tasks.
	Apps map[string]*App
	// Pods are the pod statuses by pod id (spec included); empty when
	// Marathon has no pod support.
	Pods map[string]*PodStatus
	// Instances are every app task by task id and every pod instance by
	// instance id, terminal and unreachable ones included: filter on
	// State.
	Instances map[string]*Instance
	// PodsSupported tells whether Marathon answered HEAD /v2/pods.
	PodsSupported bool

	// appByInstance indexes app tasks by derived instance id.
	appByInstance map[string]*Instance
}

// Snapshot reads all apps with their tasks (GET /v2/apps?embed=apps.tasks)
// and, if Marathon supports pods, all pod statuses (GET /v2/pods/::status),
// and indexes them. The two reads are not atomic: take the snapshot after
// the event stream delivered its Resync marker and apply the events queued
// behind it, as §5 describes, and nothing is missed.
func (c *Client) Snapshot(ctx context.Context) (*Snapshot, error) {
	apps, err := c.Apps(ctx)
	if err != nil {
		return nil, fmt.Errorf("snapshot apps: %w", err)
	}
	podsOK, err := c.PodsSupported(ctx)
	if err != nil {
		return nil, fmt.Errorf("snapshot: probe pods: %w", err)
	}
	var pods []PodStatus
	if podsOK {
		if pods, err = c.PodsStatus(ctx); err != nil {
			return nil, fmt.Errorf("snapshot pods: %w", err)
		}
	}
	s := NewSnapshot(apps, pods)
	s.PodsSupported = podsOK
	s.Taken = c.clock.Now()
	return s, nil
}

// NewSnapshot indexes decoded apps (with embedded tasks) and pod statuses.
// PodsSupported is set when pods is non-nil.
func NewSnapshot(apps []App, pods []PodStatus) *Snapshot {
	s := &Snapshot{
		Apps:          make(map[string]*App, len(apps)),
		Pods:          make(map[string]*PodStatus, len(pods)),
		Instances:     make(map[string]*Instance),
		PodsSupported: pods != nil,
		appByInstance: make(map[string]*Instance),
	}
	for i := range apps {
		app := &apps[i]
		s.Apps[app.ID] = app
		nets := AppNetworks(app)
		for j := range app.Tasks {
			t := &app.Tasks[j]
			inst := &Instance{
				Key:       t.ID,
				Kind:      KindAppTask,
				RunSpecID: app.ID,
				TaskIDs:   []string{t.ID},
				State:     t.State,
				Host:      t.Host,
				AgentID:   t.Agent(),
				Networks:  nets,
				Addresses: TaskAddresses(t),
				Task:      t,
			}
			inst.InstanceID, _ = InstanceIDFromTaskID(t.ID)
			if t.AppID != "" {
				inst.RunSpecID = t.AppID
			}
			s.Instances[inst.Key] = inst
			if inst.InstanceID != "" {
				// One task per app instance; should an old terminal task be
				// listed beside its successor, the live one wins.
				if prev, ok := s.appByInstance[inst.InstanceID]; !ok || prev.Terminal() {
					s.appByInstance[inst.InstanceID] = inst
				}
			}
		}
	}
	for i := range pods {
		ps := &pods[i]
		s.Pods[ps.ID] = ps
		nets := PodNetworks(ps.Spec)
		for j := range ps.Instances {
			pi := &ps.Instances[j]
			inst := &Instance{
				Key:         pi.ID,
				Kind:        KindPodInstance,
				InstanceID:  pi.ID,
				RunSpecID:   ps.ID,
				State:       pi.Status,
				Host:        pi.AgentHostname,
				AgentID:     pi.AgentID,
				Networks:    nets,
				Addresses:   PodInstanceAddresses(pi),
				PodInstance: pi,
			}
			for _, cs := range pi.Containers {
				if cs.ContainerID != "" {
					inst.TaskIDs = append(inst.TaskIDs, cs.ContainerID)
				}
			}
			s.Instances[inst.Key] = inst
		}
	}
	return s
}

// InstanceByTaskID finds the instance a task id (status_update_event's
// taskId) belongs to: the app task itself, or the pod instance whose
// container it is.
func (s *Snapshot) InstanceByTaskID(taskID string) (*Instance, bool) {
	if inst, ok := s.Instances[taskID]; ok {
		return inst, true
	}
	if id, ok := InstanceIDFromTaskID(taskID); ok {
		if inst, ok := s.Instances[id]; ok && inst.Kind == KindPodInstance {
			return inst, true
		}
	}
	return nil, false
}

// InstanceByID finds an instance by Marathon instance id
// (instance_changed_event's instanceId), app tasks included.
func (s *Snapshot) InstanceByID(instanceID string) (*Instance, bool) {
	if inst, ok := s.Instances[instanceID]; ok && inst.Kind == KindPodInstance {
		return inst, true
	}
	if s.appByInstance != nil {
		inst, ok := s.appByInstance[instanceID]
		return inst, ok
	}
	for _, inst := range s.Instances {
		if inst.Kind == KindAppTask && inst.InstanceID == instanceID {
			return inst, true
		}
	}
	return nil, false
}
