package emulator

import (
	"net"
	"sort"
	"strconv"
	"time"
)

// appObject is the app as the 1.5+ writer renders it, with its version.
func (s *Server) appObject(spec *runSpec) map[string]any {
	m := spec.app.object()
	m["version"] = formatTime(spec.version)
	m["versionInfo"] = map[string]any{
		"lastScalingAt":      formatTime(spec.lastScalingAt),
		"lastConfigChangeAt": formatTime(spec.lastConfigChangeAt),
	}
	return m
}

// appEmbed selects the embedded fields of an app (InfoEmbedResolver).
type appEmbed struct {
	tasks, counts, deployments, lastTaskFailure, readiness bool
}

// embedSet parses repeatable embed parameters, stripping the "apps.",
// "app." and "group.apps." prefixes; unknown values are ignored.
func embedSet(values []string) map[string]bool {
	out := map[string]bool{}
	for _, v := range values {
		for _, p := range []string{"group.apps.", "apps.", "app."} {
			if len(v) > len(p) && v[:len(p)] == p {
				v = v[len(p):]
				break
			}
		}
		out[v] = true
	}
	return out
}

// appInfo renders an app with the selected embedded fields.
func (s *Server) appInfo(spec *runSpec, e appEmbed) map[string]any {
	m := s.appObject(spec)
	insts := s.instancesOf(spec.id)
	if e.counts {
		staged, running := 0, 0
		for _, i := range insts {
			switch i.condition {
			case condProvisioned, condStaging, condStarting:
				staged++
			case condRunning:
				running++
			}
		}
		m["tasksStaged"], m["tasksRunning"], m["tasksHealthy"], m["tasksUnhealthy"] = staged, running, 0, 0
	}
	if e.deployments || e.tasks {
		refs := []any{}
		for _, d := range s.deploymentsOf(spec.id) {
			refs = append(refs, map[string]any{"id": d.id})
		}
		m["deployments"] = refs
	}
	if e.tasks {
		tasks := []any{}
		for _, i := range insts {
			if t := s.taskObject(i, false); t != nil {
				tasks = append(tasks, t)
			}
		}
		m["tasks"] = tasks
	}
	if e.lastTaskFailure && spec.lastFailure != nil {
		m["lastTaskFailure"] = spec.lastFailure
	}
	if e.readiness {
		m["readinessCheckResults"] = []any{}
	}
	return m
}

// servicePortsOf are an app's service ports in declaration order.
func servicePortsOf(a *App) []int {
	out := []int{}
	if a.HostNetworking() {
		for _, d := range a.PortDefinitions {
			out = append(out, d.Port)
		}
		return out
	}
	for _, m := range a.PortMappings {
		out = append(out, m.ServicePort)
	}
	return out
}

// taskObject renders an app instance's task (S:raml/TaskConversion.scala);
// nil while the instance has no task (Scheduled). servicePorts is filled
// on /v2/tasks only.
func (s *Server) taskObject(inst *instance, servicePorts bool) map[string]any {
	t := inst.task
	if t == nil || inst.app == nil {
		return nil
	}
	ips := t.ips
	if ips == nil {
		ips = []ipAddress{}
	}
	m := map[string]any{
		"id": t.id, "appId": inst.spec.id, "host": t.agent.cfg.Hostname, "slaveId": t.agent.cfg.ID,
		"state": t.stateName(), "ipAddresses": ips, "ports": t.portsOf(t.id), "role": inst.app.Role,
	}
	if !t.terminal() {
		m["stagedAt"] = formatTime(t.stagedAt)
		if !t.startedAt.IsZero() {
			m["startedAt"] = formatTime(t.startedAt)
		}
		m["version"] = formatTime(inst.version)
	}
	if servicePorts {
		if sp := servicePortsOf(inst.spec.app); len(sp) > 0 {
			m["servicePorts"] = sp
		}
	}
	if r := t.agent.cfg.Region; r != "" {
		m["region"] = r
	}
	if z := t.agent.cfg.Zone; z != "" {
		m["zone"] = z
	}
	return m
}

// podObject renders a pod definition with its version.
func (s *Server) podObject(spec *runSpec) map[string]any {
	m := spec.pod.object()
	m["version"] = formatTime(spec.version)
	return m
}

// podInstanceState maps an instance condition to a pod instance status
// (S:raml/PodStatusConversion.scala).
func podInstanceState(cond string) string {
	switch cond {
	case condScheduled, condProvisioned:
		return "PENDING"
	case condStaging, condStarting:
		return "STAGING"
	case condRunning:
		return "STABLE"
	case condUnreachable:
		return "DEGRADED"
	default:
		return "TERMINAL"
	}
}

// podInstanceStatus renders one pod instance of ::status.
func (s *Server) podInstanceStatus(inst *instance) map[string]any {
	status := podInstanceState(inst.condition)
	since := formatTime(inst.since)
	m := map[string]any{
		"id": inst.id, "status": status, "statusSince": since, "conditions": []any{},
		"specReference": "/v2/pods" + inst.spec.id + "::versions/" + formatTime(inst.version),
		"lastUpdated":   since, "lastChanged": since, "role": inst.pod.Role,
	}
	if status == "DEGRADED" {
		m["message"] = "pod instance has become unreachable"
	}
	cpus, mem, disk, gpus := inst.pod.resources()
	m["resources"] = map[string]any{"cpus": cpus, "mem": mem, "disk": disk, "gpus": gpus}
	networks := []any{}
	containers := []any{}
	if t := inst.task; t != nil {
		m["agentHostname"] = t.agent.cfg.Hostname
		m["agentId"] = t.agent.cfg.ID
		if r := t.agent.cfg.Region; r != "" {
			m["agentRegion"] = r
		}
		if z := t.agent.cfg.Zone; z != "" {
			m["agentZone"] = z
		}
		byName := map[string][]string{}
		var names []string
		for _, n := range t.networks {
			if n.Name == "" {
				continue
			}
			if _, ok := byName[n.Name]; !ok {
				names = append(names, n.Name)
				byName[n.Name] = []string{}
			}
			for _, a := range n.IPAddresses {
				if a.IPAddress != "" && !contains(byName[n.Name], a.IPAddress) {
					byName[n.Name] = append(byName[n.Name], a.IPAddress)
				}
			}
		}
		for _, n := range names {
			networks = append(networks, map[string]any{"name": n, "addresses": byName[n]})
		}
		k := 0
		for _, c := range inst.pod.Containers {
			id := podTaskID(inst.id, c.Name, inst.incarnation)
			cm := map[string]any{
				"name": c.Name, "status": t.stateName(), "statusSince": since, "containerId": id, "conditions": []any{},
				"resources":   map[string]any{"cpus": c.CPUs, "mem": c.Mem, "disk": c.Disk, "gpus": c.GPUs},
				"lastUpdated": since, "lastChanged": since,
			}
			endpoints := []any{}
			for _, e := range c.Endpoints {
				ep := map[string]any{"name": e.Name}
				if e.HostPort != nil && k < len(t.hostPorts) {
					ep["allocatedHostPort"] = t.hostPorts[k]
					k++
				}
				endpoints = append(endpoints, ep)
			}
			if !t.terminal() {
				cm["endpoints"] = endpoints
			}
			containers = append(containers, cm)
		}
	}
	m["networks"] = networks
	m["containers"] = containers
	return m
}

// podStatus renders GET /v2/pods/{id}::status.
func (s *Server) podStatus(spec *runSpec) map[string]any {
	insts := s.instancesOf(spec.id)
	out := []any{}
	stable := 0
	latest := spec.version
	for _, i := range insts {
		st := s.podInstanceStatus(i)
		if st["status"] == "STABLE" {
			stable++
		}
		if i.since.After(latest) {
			latest = i.since
		}
		out = append(out, st)
	}
	status := "DEGRADED"
	if stable == spec.target() && len(insts) == spec.target() {
		status = "STABLE"
	}
	since := formatTime(latest)
	return map[string]any{
		"id": spec.id, "spec": s.podObject(spec), "status": status, "statusSince": since,
		"instances": out, "lastUpdated": since, "lastChanged": since,
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// info renders GET /v2/info (S:api/v2/InfoResource.scala).
func (s *Server) info(self string) map[string]any {
	host, portStr, err := net.SplitHostPort(self)
	if err != nil {
		host, portStr = self, "8080"
	}
	port, _ := strconv.Atoi(portStr)
	var defaultNetwork any
	if s.cfg.DefaultNetworkName != "" {
		defaultNetwork = s.cfg.DefaultNetworkName
	}
	return map[string]any{
		"name": "marathon", "version": Version, "buildref": "unknown", "elected": true, "leader": self,
		"frameworkId": s.cfg.FrameworkID,
		"marathon_config": map[string]any{
			"access_control_allow_origin": nil, "checkpoint": true, "decline_offer_duration": 120000,
			"default_network_name": defaultNetwork, "env_vars_prefix": nil, "executor": "//cmd",
			"failover_timeout": 604800, "features": []any{}, "framework_name": "marathon", "ha": true,
			"hostname": host, "launch_token": 100, "launch_token_refresh_interval": 30000,
			"leader_proxy_connection_timeout_ms": 5000, "leader_proxy_read_timeout_ms": 10000,
			"local_port_max": 20000, "local_port_min": 10000, "master": "zk://localhost:2181/mesos",
			"max_instances_per_offer": 5, "mesos_bridge_name": s.cfg.MesosBridgeName,
			"mesos_heartbeat_failure_threshold": 5, "mesos_heartbeat_interval": 15000,
			"mesos_leader_ui_url": nil, "mesos_role": nil, "mesos_user": "root",
			"min_revive_offers_interval": 5000, "offer_matching_timeout": 3000,
			"on_elected_prepare_timeout": 180000, "reconciliation_initial_delay": 15000,
			"reconciliation_interval": 600000, "scale_apps_initial_delay": 15000,
			"scale_apps_interval": 300000, "store_cache": true, "task_launch_confirm_timeout": 300000,
			"task_launch_timeout": 300000, "task_lost_expunge_initial_delay": 300000,
			"task_lost_expunge_interval": 30000, "task_reservation_timeout": 20000, "webui_url": nil,
		},
		"zookeeper_config": map[string]any{
			"zk": "zk://localhost:2181/marathon", "zk_compression": true, "zk_compression_threshold": 65536,
			"zk_connection_timeout": 10000, "zk_max_node_size": 1024000, "zk_max_versions": 50,
			"zk_session_timeout": 10000, "zk_timeout": 10000,
		},
		"http_config": map[string]any{"http_port": port, "https_port": 8443},
	}
}

// sortedSpecs returns the live apps (or pods) sorted by id.
func (s *Server) sortedSpecs(pods bool) []*runSpec {
	var out []*runSpec
	for _, r := range s.specs {
		if r.isPod() == pods {
			out = append(out, r)
		}
	}
	sort.Slice(out, func(a, b int) bool { return out[a].id < out[b].id })
	return out
}

// nextVersionLocked returns a version timestamp later than any given
// before (versions are millisecond timestamps).
func (s *Server) nextVersionLocked() time.Time {
	v := s.now().UTC().Truncate(time.Millisecond)
	if !v.After(s.lastVersion) {
		v = s.lastVersion.Add(time.Millisecond)
	}
	s.lastVersion = v
	return v
}
