package marathon

import (
	"fmt"
	"strings"
	"time"
)

// Mesos task states as Marathon writes them in Task.State,
// status_update_event.taskStatus and pod ContainerStatus.Status (§3.3,
// §4.4).
const (
	TaskStaging        = "TASK_STAGING"
	TaskStarting       = "TASK_STARTING"
	TaskRunning        = "TASK_RUNNING"
	TaskKilling        = "TASK_KILLING"
	TaskFinished       = "TASK_FINISHED"
	TaskFailed         = "TASK_FAILED"
	TaskKilled         = "TASK_KILLED"
	TaskError          = "TASK_ERROR"
	TaskLost           = "TASK_LOST"
	TaskDropped        = "TASK_DROPPED"
	TaskUnreachable    = "TASK_UNREACHABLE"
	TaskGone           = "TASK_GONE"
	TaskGoneByOperator = "TASK_GONE_BY_OPERATOR"
	TaskUnknown        = "TASK_UNKNOWN"
)

// IsTerminalTaskState tells whether a Mesos task state is terminal: the task
// is gone for good and its network resources can be released. These are
// TASK_FINISHED, TASK_FAILED, TASK_KILLED, TASK_ERROR, TASK_DROPPED,
// TASK_GONE and TASK_GONE_BY_OPERATOR. TASK_UNREACHABLE, TASK_LOST and
// TASK_UNKNOWN are not: see IsUnreachableTaskState and IsUnknownTaskState.
func IsTerminalTaskState(state string) bool {
	switch state {
	case TaskFinished, TaskFailed, TaskKilled, TaskError, TaskDropped, TaskGone, TaskGoneByOperator:
		return true
	}
	return false
}

// IsUnreachableTaskState tells whether the task's agent is partitioned:
// TASK_UNREACHABLE, and TASK_LOST, which Mesos sends instead to frameworks
// that are not partition-aware (rare since Marathon 1.4). The task may come
// back as TASK_RUNNING with the same id (§3.3), so it is neither terminal
// nor healthy; marathon-lb keeps routing to it.
func IsUnreachableTaskState(state string) bool {
	return state == TaskUnreachable || state == TaskLost
}

// IsUnknownTaskState tells whether the state is TASK_UNKNOWN: the Mesos
// master does not know the task (for example after its agent was removed).
// Marathon treats the instance as terminal (condition Unknown) and expunges
// it; whether to release its resources at once is the caller's policy.
func IsUnknownTaskState(state string) bool { return state == TaskUnknown }

// IsActiveTaskState tells whether the task is launched and not yet
// terminal: TASK_STAGING, TASK_STARTING, TASK_RUNNING or TASK_KILLING.
func IsActiveTaskState(state string) bool {
	switch state {
	case TaskStaging, TaskStarting, TaskRunning, TaskKilling:
		return true
	}
	return false
}

// Instance conditions as instance_changed_event and
// unknown_instance_terminated_event carry them (§4.4,
// S:core/condition/Condition.scala).
const (
	ConditionScheduled           = "Scheduled"
	ConditionProvisioned         = "Provisioned"
	ConditionStaging             = "Staging"
	ConditionStarting            = "Starting"
	ConditionRunning             = "Running"
	ConditionKilling             = "Killing"
	ConditionKilled              = "Killed"
	ConditionFinished            = "Finished"
	ConditionFailed              = "Failed"
	ConditionError               = "Error"
	ConditionUnreachable         = "Unreachable"
	ConditionUnreachableInactive = "UnreachableInactive"
	ConditionGone                = "Gone"
	ConditionDropped             = "Dropped"
	ConditionUnknown             = "Unknown"
)

// IsTerminalCondition tells whether an instance condition is terminal:
// Killed, Finished, Failed, Error, Gone or Dropped. Unknown, which Marathon
// also counts as terminal, is reported by IsUnknownCondition so that the
// caller can decide, as for TASK_UNKNOWN.
func IsTerminalCondition(c string) bool {
	switch c {
	case ConditionKilled, ConditionFinished, ConditionFailed, ConditionError, ConditionGone, ConditionDropped:
		return true
	}
	return false
}

// IsUnreachableCondition tells whether the condition is Unreachable or
// UnreachableInactive: the instance may come back.
func IsUnreachableCondition(c string) bool {
	return c == ConditionUnreachable || c == ConditionUnreachableInactive
}

// IsUnknownCondition tells whether the condition is Unknown.
func IsUnknownCondition(c string) bool { return c == ConditionUnknown }

// Pod and pod-instance status values (§3.7).
const (
	PodStatusStable   = "STABLE"
	PodStatusDegraded = "DEGRADED"
	PodStatusTerminal = "TERMINAL"

	PodInstancePending  = "PENDING"
	PodInstanceStaging  = "STAGING"
	PodInstanceStable   = "STABLE"
	PodInstanceDegraded = "DEGRADED"
	PodInstanceTerminal = "TERMINAL"
)

// InstanceIDFromTaskID derives the Marathon instance id from a task id the
// way Marathon's Task.Id parser does (§3.5), so that status_update_event
// (taskId) and instance_changed_event (instanceId) can be correlated:
//
//	grp_app.instance-<uuid>._app.3         → grp_app.instance-<uuid>   (≥ 1.8 app)
//	grp_pod.instance-<uuid>.web.2          → grp_pod.instance-<uuid>   (≥ 1.8 pod)
//	grp_pod.instance-<uuid>.web            → grp_pod.instance-<uuid>   (1.4–1.7 pod)
//	grp_app.marathon-<uuid>.$anon.1        → grp_app.marathon-<uuid>   (resident)
//	grp_app.<uuid>                         → grp_app.marathon-<uuid>   (≤ 1.7 app)
//	grp_app.<uuid>.2                       → grp_app.marathon-<uuid>   (≤ 1.7 resident)
//
// An id that already is an instance id (grp_app.instance-<uuid>) is
// returned as it is. ok is false when the id fits none of these forms.
// Instance ids are
// otherwise opaque: key state by them, do not parse them further.
func InstanceIDFromTaskID(taskID string) (id string, ok bool) {
	// Instance-era ids: <runSpec>.(instance-|marathon-)<uuid>[._]<rest>.
	best := -1
	for _, marker := range []string{".instance-", ".marathon-"} {
		if i := strings.LastIndex(taskID, marker); i > best {
			best = i
		}
	}
	if best > 0 {
		start := best + len(".instance-") // both markers have the same length
		end := start
		for end < len(taskID) && taskID[end] != '.' && taskID[end] != '_' {
			end++
		}
		switch {
		case end > start && end < len(taskID)-1:
			return taskID[:end], true
		case end > start && end == len(taskID):
			// Already an instance id.
			return taskID, true
		}
	}
	// Legacy ids: <runSpec>[._]<uuid>, optionally followed by .<attempt>.
	rest := taskID
	if i := strings.LastIndexByte(rest, '.'); i > 0 && isDigits(rest[i+1:]) {
		rest = rest[:i]
	}
	i := strings.LastIndexAny(rest, "._")
	if i <= 0 || i == len(rest)-1 {
		return "", false
	}
	return rest[:i] + ".marathon-" + rest[i+1:], true
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// ParseTimestamp parses a Marathon time stamp or version
// (yyyy-MM-dd'T'HH:mm:ss.SSS'Z', or any RFC 3339 time).
func ParseTimestamp(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("parse marathon timestamp %q: %w", s, err)
	}
	return t, nil
}
