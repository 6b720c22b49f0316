package emulator

import (
	"bufio"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/weft-sdn/weft/internal/mesos"
)

// MesosVersion is the Mesos version the emulator reports in /state.
const MesosVersion = "1.11.0"

// agentInfo is the agent-level part of /state.
type agentInfo struct {
	ID            string
	Hostname      string
	IP            string
	StartTime     time.Time
	Resources     mesos.Resources
	Flags         map[string]string
	FrameworkName string
}

// State renders the agent's /state document (see buildState).
func (a *Agent) State() ([]byte, error) {
	a.mu.Lock()
	live := make([]*container, 0, len(a.containers))
	for _, c := range a.containers {
		live = append(live, c)
	}
	done := append([]*container(nil), a.completed...)
	a.mu.Unlock()
	liveSnap := make([]Container, 0, len(live))
	for _, c := range live {
		liveSnap = append(liveSnap, c.snapshot())
	}
	sortContainers(liveSnap)
	doneSnap := make([]Container, 0, len(done))
	for _, c := range done {
		doneSnap = append(doneSnap, c.snapshot())
	}
	return mesos.MarshalStout(buildState(a.info(), liveSnap, doneSnap))
}

func (a *Agent) info() agentInfo {
	flags := map[string]string{
		"hostname":                     a.cfg.Hostname,
		"isolation":                    "network/cni",
		"network_cni_config_dir":       a.cfg.NetworkCNIConfigDir,
		"network_cni_plugins_dir":      a.cfg.NetworkCNIPluginsDir,
		"network_cni_root_dir_persist": "false",
	}
	if a.cfg.DefaultContainerDNS != "" {
		flags["default_container_dns"] = a.cfg.DefaultContainerDNS
	}
	if a.agentIP != "" {
		flags["ip"] = a.agentIP
	}
	if a.cfg.AgentIP6 != "" {
		flags["ip6"] = a.cfg.AgentIP6
	}
	if rt, ok := strings.CutSuffix(a.root, "/isolators/network/cni"); ok {
		flags["runtime_dir"] = rt
	}
	return agentInfo{
		ID:        a.cfg.AgentID,
		Hostname:  a.cfg.Hostname,
		IP:        a.agentIP,
		StartTime: a.startTime,
		Resources: mesos.Resources{
			Scalars: map[string]float64{"cpus": float64(runtime.NumCPU()), "mem": memTotalMB(), "disk": 0},
			Ranges:  map[string][]mesos.Range{"ports": {{Begin: 31000, End: 32000}}},
		},
		Flags:         flags,
		FrameworkName: a.cfg.FrameworkName,
	}
}

// memTotalMB reads MemTotal from /proc/meminfo, in MB.
func memTotalMB() float64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "MemTotal:"); ok {
			fields := strings.Fields(rest)
			if len(fields) > 0 {
				kb, _ := strconv.ParseFloat(fields[0], 64)
				return float64(int64(kb / 1024))
			}
		}
	}
	return 0
}

// buildState renders an agent /state document the way
// src/slave/http.cpp does: agent fields, then frameworks (those with a
// live task) and completed_frameworks, each with executors and
// completed_executors. Every task runs under its own command executor
// (executor id = task id, task executor_id ""). Task entries use the
// /state writers of src/common/http.cpp: bare label arrays for task and
// network labels, protobuf JSON for discovery and container.
func buildState(info agentInfo, live, completed []Container) mesos.Object {
	type fw struct {
		live      []Container
		completed []Container
	}
	fws := map[string]*fw{}
	get := func(id string) *fw {
		f, ok := fws[id]
		if !ok {
			f = &fw{}
			fws[id] = f
		}
		return f
	}
	for _, c := range live {
		f := get(c.FrameworkID)
		f.live = append(f.live, c)
	}
	for _, c := range completed {
		f := get(c.FrameworkID)
		f.completed = append(f.completed, c)
	}
	ids := make([]string, 0, len(fws))
	for id := range fws {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	frameworks, completedFrameworks := []mesos.Object{}, []mesos.Object{}
	for _, id := range ids {
		f := fws[id]
		executors, completedExecutors := []mesos.Object{}, []mesos.Object{}
		for _, c := range f.live {
			executors = append(executors, executorObject(info, c, false))
		}
		for _, c := range f.completed {
			completedExecutors = append(completedExecutors, executorObject(info, c, true))
		}
		obj := mesos.Object{
			{Key: "id", Value: id},
			{Key: "name", Value: info.FrameworkName},
			{Key: "user", Value: "root"},
			{Key: "failover_timeout", Value: 604800.0},
			{Key: "checkpoint", Value: true},
			{Key: "hostname", Value: info.Hostname},
			{Key: "role", Value: "*"},
			{Key: "executors", Value: executors},
			{Key: "completed_executors", Value: completedExecutors},
		}
		if len(f.live) > 0 {
			frameworks = append(frameworks, obj)
		} else {
			completedFrameworks = append(completedFrameworks, obj)
		}
	}
	flags := mesos.Object{}
	names := make([]string, 0, len(info.Flags))
	for k := range info.Flags {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		flags = append(flags, mesos.Field{Key: k, Value: info.Flags[k]})
	}
	return mesos.Object{
		{Key: "version", Value: MesosVersion},
		{Key: "build_date", Value: "weft-emulator"},
		{Key: "build_time", Value: 0.0},
		{Key: "build_user", Value: "weft"},
		{Key: "start_time", Value: float64(info.StartTime.UnixNano()) / 1e9},
		{Key: "id", Value: info.ID},
		{Key: "pid", Value: "slave(1)@" + info.IP + ":5051"},
		{Key: "hostname", Value: info.Hostname},
		{Key: "resources", Value: info.Resources.StateObject()},
		{Key: "attributes", Value: mesos.Object{}},
		{Key: "frameworks", Value: frameworks},
		{Key: "completed_frameworks", Value: completedFrameworks},
		{Key: "flags", Value: flags},
	}
}

// executorObject renders the command executor of a container's task.
func executorObject(info agentInfo, c Container, done bool) mesos.Object {
	task := taskOf(info, c)
	tasks, completedTasks := []mesos.Object{}, []mesos.Object{}
	if done || c.State.Terminal() {
		completedTasks = append(completedTasks, task.StateObject())
	} else {
		tasks = append(tasks, task.StateObject())
	}
	return mesos.Object{
		{Key: "id", Value: c.Task.TaskID},
		{Key: "name", Value: "Command Executor (Task: " + c.Task.TaskID + ") (Command: [" + strings.Join(c.Task.Command, ", ") + "])"},
		{Key: "source", Value: c.Task.TaskID},
		{Key: "container", Value: c.ID},
		{Key: "directory", Value: ""},
		{Key: "resources", Value: c.Task.Resources.StateObject()},
		{Key: "role", Value: c.Task.Role},
		{Key: "tasks", Value: tasks},
		{Key: "queued_tasks", Value: []mesos.Object{}},
		{Key: "completed_tasks", Value: completedTasks},
	}
}

// taskOf builds the mesos.Task of a container.
func taskOf(info agentInfo, c Container) mesos.Task {
	t := mesos.Task{
		ID:          c.Task.TaskID,
		Name:        c.Task.Name,
		FrameworkID: c.FrameworkID,
		AgentID:     info.ID,
		State:       c.State,
		Resources:   c.Task.Resources,
		Role:        c.Task.Role,
		Statuses:    c.Statuses,
		User:        c.Task.User,
		Labels:      c.Task.Labels,
		Discovery:   c.Task.Discovery,
	}
	if len(c.Task.NetworkInfos) > 0 || c.Task.Hostname != "" {
		t.Container = &mesos.ContainerInfo{Type: "MESOS", Hostname: c.Task.Hostname, NetworkInfos: c.Task.NetworkInfos}
	}
	return t
}
