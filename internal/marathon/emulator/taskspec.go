package emulator

import (
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/weft-sdn/weft/internal/mesos"
	mesosemu "github.com/weft-sdn/weft/internal/mesos/emulator"
)

// Resources of a pod's executor, added to its containers' resources
// (Marathon's default executorResources).
const (
	podExecutorCPUs = 0.1
	podExecutorMem  = 32
	podExecutorDisk = 10
)

// taskSpec builds the TaskInfo Marathon would send for t.
func (s *Server) taskSpec(t *mesosTask) mesosemu.TaskSpec {
	inst := t.inst
	spec := mesosemu.TaskSpec{TaskID: t.id, Name: t.id, FrameworkID: s.cfg.FrameworkID, Role: inst.spec.roleOf()}
	if a := inst.app; a != nil {
		spec.Command = appCommand(a, inst, t)
		spec.NetworkInfos = s.appNetworkInfos(a, t.hostPorts)
		spec.Labels = labelsOf(a.Labels)
		spec.Resources = resources(a.CPUs, a.Mem, a.Disk, a.GPUs, t.hostPorts)
		spec.User = a.User
		spec.Discovery = discoveryJSON(a.ID, appDiscoveryPorts(a, t.hostPorts))
		return spec
	}
	p := inst.pod
	cpus, mem, disk, gpus := p.resources()
	spec.Command = podCommand(p, inst, t)
	spec.NetworkInfos = s.podNetworkInfos(p, t.hostPorts)
	spec.Labels = labelsOf(p.Labels)
	spec.Resources = resources(cpus, mem, disk, gpus, t.hostPorts)
	spec.User = p.User
	spec.Discovery = discoveryJSON(p.ID, podDiscoveryPorts(p, t.hostPorts))
	return spec
}

// resources are what a pod instance takes: its executor's and its
// containers' resources together.
func (p *Pod) resources() (cpus, mem, disk, gpus float64) {
	cpus, mem, disk = podExecutorCPUs, podExecutorMem, podExecutorDisk
	for _, c := range p.Containers {
		cpus, mem, disk, gpus = cpus+c.CPUs, mem+c.Mem, disk+c.Disk, gpus+c.GPUs
	}
	return cpus, mem, disk, gpus
}

func (r *runSpec) roleOf() string {
	if r.app != nil {
		return r.app.Role
	}
	return r.pod.Role
}

func labelsOf(m map[string]string) *mesos.Labels {
	if len(m) == 0 {
		return nil
	}
	var kv []string
	for _, k := range sortedKeys(m) {
		kv = append(kv, k, m[k])
	}
	return mesos.NewLabels(kv...)
}

func resources(cpus, mem, disk, gpus float64, ports []int) mesos.Resources {
	r := mesos.Resources{Scalars: map[string]float64{"cpus": cpus, "mem": mem, "disk": disk}}
	if gpus > 0 {
		r.Scalars["gpus"] = gpus
	}
	if len(ports) > 0 {
		sorted := slices.Clone(ports)
		sort.Ints(sorted)
		var rs []mesos.Range
		for _, p := range sorted {
			if n := len(rs); n > 0 && rs[n-1].End+1 == uint64(p) {
				rs[n-1].End = uint64(p)
				continue
			}
			rs = append(rs, mesos.Range{Begin: uint64(p), End: uint64(p)})
		}
		r.Ranges = map[string][]mesos.Range{"ports": rs}
	}
	return r
}

// portMappingsFor turns one port (host port and container port, 0 =
// same as the host port) into NetworkInfo port mappings, one per
// protocol.
func portMappingsFor(host, container int, protocols []string) []mesos.PortMapping {
	if container == 0 {
		container = host
	}
	var out []mesos.PortMapping
	for _, p := range protocols {
		out = append(out, mesos.PortMapping{HostPort: uint32(host), ContainerPort: uint32(container), Protocol: p})
	}
	return out
}

// appNetworkInfos maps an app's networks to NetworkInfos as Marathon
// does for a MESOS container: a container network gets its name, its
// labels, one empty IPAddress (an address of the default protocol, IPv4)
// and the port mappings that have a host port (with the allocated host
// port); container/bridge is the CNI network --mesos_bridge_name. For a
// DOCKER container Marathon sends only the name of a container network
// (and nothing for bridge, which Docker handles).
func (s *Server) appNetworkInfos(a *App, hostPorts []int) []mesos.NetworkInfo {
	if a.HostNetworking() {
		return nil
	}
	type hostMapping struct {
		m    PortMapping
		host int
	}
	var withHost []hostMapping
	k := 0
	for _, m := range a.PortMappings {
		if m.HostPort != nil && k < len(hostPorts) {
			withHost = append(withHost, hostMapping{m, hostPorts[k]})
			k++
		}
	}
	docker := a.ContainerType == ContainerDocker
	var out []mesos.NetworkInfo
	for _, n := range a.Networks {
		name := n.Name
		switch {
		case n.Mode == ModeBridge && docker:
			continue
		case n.Mode == ModeBridge:
			name = s.cfg.MesosBridgeName
		case n.Mode != ModeContainer:
			continue
		case docker:
			out = append(out, mesos.NetworkInfo{Name: name})
			continue
		}
		ni := mesos.NetworkInfo{Name: name, IPAddresses: []mesos.IPAddress{{}}, Labels: labelsOf(n.Labels)}
		for _, hm := range withHost {
			if n.Mode == ModeContainer && len(hm.m.NetworkNames) > 0 && !slices.Contains(hm.m.NetworkNames, n.Name) {
				continue
			}
			ni.PortMappings = append(ni.PortMappings, portMappingsFor(hm.host, hm.m.ContainerPort, strings.Split(hm.m.Protocol, ","))...)
		}
		out = append(out, ni)
	}
	return out
}

// podNetworkInfos maps a pod's networks like appNetworkInfos: one set
// for the whole pod (its containers share the network namespace).
func (s *Server) podNetworkInfos(p *Pod, hostPorts []int) []mesos.NetworkInfo {
	if p.HostNetworking() {
		return nil
	}
	var mappings []mesos.PortMapping
	k := 0
	for _, c := range p.Containers {
		for _, e := range c.Endpoints {
			if e.HostPort == nil || k >= len(hostPorts) {
				continue
			}
			cp := 0
			if e.ContainerPort != nil {
				cp = *e.ContainerPort
			}
			mappings = append(mappings, portMappingsFor(hostPorts[k], cp, e.Protocol)...)
			k++
		}
	}
	var out []mesos.NetworkInfo
	for _, n := range p.Networks {
		name := n.Name
		switch n.Mode {
		case ModeBridge:
			name = s.cfg.MesosBridgeName
		case ModeContainer:
		default:
			continue
		}
		out = append(out, mesos.NetworkInfo{Name: name, IPAddresses: []mesos.IPAddress{{}}, Labels: labelsOf(n.Labels), PortMappings: mappings})
	}
	return out
}

// discoveryPort is a DiscoveryInfo port in protobuf JSON.
type discoveryPort struct {
	Number   int           `json:"number"`
	Name     string        `json:"name,omitempty"`
	Protocol string        `json:"protocol"`
	Labels   *mesos.Labels `json:"labels,omitempty"`
}

// discoveryJSON renders the DiscoveryInfo Marathon attaches to a task
// (S:mesos/PortDiscovery.scala): visibility FRAMEWORK, the run spec's
// id as a hostname, and its ports.
func discoveryJSON(id string, ports []discoveryPort) json.RawMessage {
	d := struct {
		Visibility string `json:"visibility"`
		Name       string `json:"name"`
		Ports      struct {
			Ports []discoveryPort `json:"ports"`
		} `json:"ports"`
	}{Visibility: "FRAMEWORK", Name: toHostname(id)}
	d.Ports.Ports = ports
	if d.Ports.Ports == nil {
		d.Ports.Ports = []discoveryPort{}
	}
	b, _ := marshal(d)
	return b
}

// discoveryPortsFor makes the DiscoveryInfo ports of one declared port:
// with a host port, scope "host" and the host port's number; without,
// scope "container", the container port and the network's name.
func discoveryPortsFor(name string, protocols []string, labels map[string]string, host, container int, hasHost bool, network string) []discoveryPort {
	var out []discoveryPort
	for _, proto := range protocols {
		var kv []string
		for _, k := range sortedKeys(labels) {
			kv = append(kv, k, labels[k])
		}
		num := host
		if hasHost {
			kv = append(kv, "network-scope", "host")
		} else {
			num = container
			kv = append(kv, "network-scope", "container")
			if network != "" {
				kv = append(kv, "network-name", network)
			}
		}
		out = append(out, discoveryPort{Number: num, Name: name, Protocol: proto, Labels: mesos.NewLabels(kv...)})
	}
	return out
}

func firstContainerNetwork(nets []Network) string {
	for _, n := range nets {
		if n.Mode == ModeContainer {
			return n.Name
		}
	}
	return ""
}

func appDiscoveryPorts(a *App, hostPorts []int) []discoveryPort {
	var out []discoveryPort
	if a.HostNetworking() {
		for i, d := range a.PortDefinitions {
			if i < len(hostPorts) {
				out = append(out, discoveryPortsFor(d.Name, strings.Split(d.Protocol, ","), d.Labels, hostPorts[i], 0, true, "")...)
			}
		}
		return out
	}
	k := 0
	for _, m := range a.PortMappings {
		network := firstContainerNetwork(a.Networks)
		if len(m.NetworkNames) > 0 {
			network = m.NetworkNames[0]
		}
		host := 0
		if m.HostPort != nil && k < len(hostPorts) {
			host = hostPorts[k]
			k++
		}
		out = append(out, discoveryPortsFor(m.Name, strings.Split(m.Protocol, ","), m.Labels, host, m.ContainerPort, m.HostPort != nil, network)...)
	}
	return out
}

func podDiscoveryPorts(p *Pod, hostPorts []int) []discoveryPort {
	var out []discoveryPort
	k := 0
	network := firstContainerNetwork(p.Networks)
	for _, c := range p.Containers {
		for _, e := range c.Endpoints {
			host, cp := 0, 0
			if e.HostPort != nil && k < len(hostPorts) {
				host = hostPorts[k]
				k++
			}
			if e.ContainerPort != nil {
				cp = *e.ContainerPort
			}
			out = append(out, discoveryPortsFor(e.Name, e.Protocol, e.Labels, host, cp, e.HostPort != nil, network)...)
		}
	}
	return out
}

// envArgs renders environment variables as env(1) arguments, sorted.
func envArgs(env map[string]string) []string {
	var out []string
	for _, k := range sortedKeys(env) {
		if k == "" || strings.ContainsAny(k, "=") || strings.HasPrefix(k, "-") {
			continue
		}
		out = append(out, k+"="+env[k])
	}
	return out
}

// appEnv is the environment Marathon gives an app task
// (S:mesos/EnvironmentHelper.scala, main variables), then the app's own.
func appEnv(a *App, inst *instance, t *mesosTask) map[string]string {
	env := map[string]string{
		"MARATHON_APP_ID":            a.ID,
		"MARATHON_APP_VERSION":       formatTime(inst.version),
		"MARATHON_APP_RESOURCE_CPUS": strconv.FormatFloat(a.CPUs, 'f', -1, 64),
		"MARATHON_APP_RESOURCE_MEM":  strconv.FormatFloat(a.Mem, 'f', -1, 64),
		"MARATHON_APP_RESOURCE_DISK": strconv.FormatFloat(a.Disk, 'f', -1, 64),
		"MARATHON_APP_RESOURCE_GPUS": strconv.FormatFloat(a.GPUs, 'f', -1, 64),
		"MESOS_TASK_ID":              t.id,
		"HOST":                       t.agent.cfg.Hostname,
		"MARATHON_APP_LABELS":        strings.Join(sortedKeys(a.Labels), " "),
	}
	for k, v := range a.Labels {
		env["MARATHON_APP_LABEL_"+strings.ToUpper(envName(k))] = v
	}
	var ports []string
	if a.HostNetworking() {
		for i, d := range a.PortDefinitions {
			if i >= len(t.hostPorts) {
				break
			}
			p := strconv.Itoa(t.hostPorts[i])
			ports = append(ports, p)
			if d.Name != "" {
				env["PORT_"+strings.ToUpper(envName(d.Name))] = p
			}
		}
	} else {
		k := 0
		for _, m := range a.PortMappings {
			host := 0
			if m.HostPort != nil && k < len(t.hostPorts) {
				host = t.hostPorts[k]
				k++
			}
			port := m.ContainerPort
			if port == 0 {
				port = host
			}
			if port == 0 {
				continue
			}
			p := strconv.Itoa(port)
			ports = append(ports, p)
			if m.Name != "" {
				env["PORT_"+strings.ToUpper(envName(m.Name))] = p
			}
		}
	}
	for i, p := range ports {
		env[fmt.Sprintf("PORT%d", i)] = p
	}
	if len(ports) > 0 {
		env["PORT"] = ports[0]
		env["PORTS"] = strings.Join(ports, ",")
	}
	for k, v := range a.Env {
		env[k] = v
	}
	return env
}

// envName makes a label or port name usable in a variable name.
func envName(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' {
			return r
		}
		return '_'
	}, s)
}

// appCommand is the task's argv: env(1) with the environment, then
// `sh -c <cmd>` (a shell command), the args, or a sleep for an app that
// only names a container image.
func appCommand(a *App, inst *instance, t *mesosTask) []string {
	argv := append([]string{"env"}, envArgs(appEnv(a, inst, t))...)
	switch {
	case a.Cmd != nil:
		return append(argv, "sh", "-c", *a.Cmd)
	case len(a.Args) > 0:
		return append(argv, a.Args...)
	default:
		return append(argv, "sleep", "infinity")
	}
}

// podCommand runs every container of the pod in one process tree (the
// pod is one Mesos container here): each container's command in the
// background with its environment, then wait.
func podCommand(p *Pod, inst *instance, t *mesosTask) []string {
	var parts []string
	next := 0 // index into t.hostPorts
	for _, c := range p.Containers {
		env := map[string]string{"MARATHON_APP_ID": p.ID, "MESOS_TASK_ID": podTaskID(inst.id, c.Name, inst.incarnation), "HOST": t.agent.cfg.Hostname}
		for k, v := range p.Env {
			env[k] = v
		}
		for k, v := range c.Env {
			env[k] = v
		}
		for _, e := range c.Endpoints {
			switch {
			case e.HostPort != nil && next < len(t.hostPorts):
				env["ENDPOINT_"+strings.ToUpper(envName(e.Name))] = strconv.Itoa(t.hostPorts[next])
				next++
			case e.ContainerPort != nil:
				env["ENDPOINT_"+strings.ToUpper(envName(e.Name))] = strconv.Itoa(*e.ContainerPort)
			}
		}
		words := []string{"env"}
		words = append(words, envArgs(env)...)
		switch {
		case c.Shell != "":
			words = append(words, "sh", "-c", c.Shell)
		case len(c.Argv) > 0:
			words = append(words, c.Argv...)
		default:
			words = append(words, "sleep", "infinity")
		}
		quoted := make([]string, len(words))
		for i, w := range words {
			quoted[i] = shellQuote(w)
		}
		parts = append(parts, strings.Join(quoted, " ")+" &")
	}
	parts = append(parts, "wait")
	return []string{"sh", "-c", strings.Join(parts, " ")}
}

func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
