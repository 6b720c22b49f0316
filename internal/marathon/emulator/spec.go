package emulator

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"regexp"
	"slices"
	"sort"
	"strings"
)

// Network modes of the 1.5 networking API.
const (
	ModeHost      = "host"
	ModeBridge    = "container/bridge"
	ModeContainer = "container"
)

// Container types.
const (
	ContainerMesos  = "MESOS"
	ContainerDocker = "DOCKER"
)

// Network is one entry of an app's or pod's `networks`.
type Network struct {
	Mode   string
	Name   string
	Labels map[string]string
}

func (n Network) object() map[string]any {
	m := map[string]any{"mode": n.Mode}
	if n.Name != "" {
		m["name"] = n.Name
	}
	if len(n.Labels) > 0 {
		m["labels"] = n.Labels
	}
	return m
}

// PortMapping is an entry of an app's container.portMappings. A nil
// HostPort means "no agent port" (container networks only).
type PortMapping struct {
	ContainerPort int
	HostPort      *int
	ServicePort   int
	Protocol      string
	Name          string
	Labels        map[string]string
	NetworkNames  []string
}

func (p PortMapping) object() map[string]any {
	m := map[string]any{"containerPort": p.ContainerPort, "servicePort": p.ServicePort, "protocol": p.Protocol, "labels": nonNil(p.Labels)}
	if p.HostPort != nil {
		m["hostPort"] = *p.HostPort
	}
	if p.Name != "" {
		m["name"] = p.Name
	}
	if len(p.NetworkNames) > 0 {
		m["networkNames"] = p.NetworkNames
	}
	return m
}

// PortDefinition is an entry of a host-networking app's portDefinitions;
// Port is the service port.
type PortDefinition struct {
	Port     int
	Protocol string
	Name     string
	Labels   map[string]string
}

func (p PortDefinition) object() map[string]any {
	m := map[string]any{"port": p.Port, "protocol": p.Protocol, "labels": nonNil(p.Labels)}
	if p.Name != "" {
		m["name"] = p.Name
	}
	return m
}

// App is a validated app definition in the 1.5+ networking API (legacy
// ipAddress, docker.network, ports and uris already translated).
type App struct {
	ID        string
	Cmd       *string
	Args      []string
	User      string
	Env       map[string]string // string values only (secrets are left out)
	Instances int
	CPUs      float64
	Mem       float64
	Disk      float64
	GPUs      float64
	Labels    map[string]string
	Networks  []Network
	// ContainerType is "" when the app has no container.
	ContainerType   string
	PortMappings    []PortMapping
	PortDefinitions []PortDefinition
	RequirePorts    bool
	BackoffSeconds  float64
	BackoffFactor   float64
	MaxLaunchDelay  float64
	KillSelection   string
	Role            string

	container map[string]json.RawMessage // other container fields, verbatim
	docker    map[string]json.RawMessage // container.docker minus network/portMappings
	extra     map[string]json.RawMessage // pass-through fields, verbatim
}

// HostNetworking reports whether the app uses the host network.
func (a *App) HostNetworking() bool { return len(a.Networks) == 0 || a.Networks[0].Mode == ModeHost }

// appPassThrough are the App fields Marathon accepts and echoes without
// the emulator acting on them; they are returned only when not empty,
// as Marathon ≥ 1.9 does.
var appPassThrough = []string{
	"acceptedResourceRoles", "check", "constraints", "dependencies", "env", "executor", "fetch",
	"healthChecks", "readinessChecks", "residency", "resourceLimits", "secrets",
	"taskKillGracePeriodSeconds", "tty", "unreachableStrategy", "upgradeStrategy", "user",
}

type appInput struct {
	ID                    *string                    `json:"id"`
	Cmd                   *string                    `json:"cmd"`
	Args                  []string                   `json:"args"`
	User                  *string                    `json:"user"`
	Env                   map[string]json.RawMessage `json:"env"`
	Instances             *int                       `json:"instances"`
	Cpus                  *float64                   `json:"cpus"`
	Mem                   *float64                   `json:"mem"`
	Disk                  *float64                   `json:"disk"`
	Gpus                  *float64                   `json:"gpus"`
	Labels                map[string]string          `json:"labels"`
	Networks              []networkInput             `json:"networks"`
	Container             *containerInput            `json:"container"`
	PortDefinitions       []portDefinitionInput      `json:"portDefinitions"`
	Ports                 []int                      `json:"ports"`
	RequirePorts          *bool                      `json:"requirePorts"`
	IPAddress             *ipAddressInput            `json:"ipAddress"`
	URIs                  []string                   `json:"uris"`
	Fetch                 json.RawMessage            `json:"fetch"`
	BackoffSeconds        *float64                   `json:"backoffSeconds"`
	BackoffFactor         *float64                   `json:"backoffFactor"`
	MaxLaunchDelaySeconds *float64                   `json:"maxLaunchDelaySeconds"`
	KillSelection         *string                    `json:"killSelection"`
	Role                  *string                    `json:"role"`
}

type networkInput struct {
	Mode   *string           `json:"mode"`
	Name   *string           `json:"name"`
	Labels map[string]string `json:"labels"`
}

type containerInput struct {
	Type         *string            `json:"type"`
	Docker       *dockerInput       `json:"docker"`
	PortMappings []portMappingInput `json:"portMappings"`
}

type dockerInput struct {
	Image        *string            `json:"image"`
	Network      *string            `json:"network"`
	PortMappings []portMappingInput `json:"portMappings"`
}

type portMappingInput struct {
	ContainerPort *int              `json:"containerPort"`
	HostPort      *int              `json:"hostPort"`
	ServicePort   *int              `json:"servicePort"`
	Protocol      *string           `json:"protocol"`
	Name          *string           `json:"name"`
	Labels        map[string]string `json:"labels"`
	NetworkNames  []string          `json:"networkNames"`
}

type portDefinitionInput struct {
	Port     *int              `json:"port"`
	Protocol *string           `json:"protocol"`
	Name     *string           `json:"name"`
	Labels   map[string]string `json:"labels"`
}

type ipAddressInput struct {
	NetworkName *string           `json:"networkName"`
	Labels      map[string]string `json:"labels"`
	Discovery   *struct {
		Ports []struct {
			Number   *int              `json:"number"`
			Name     *string           `json:"name"`
			Protocol *string           `json:"protocol"`
			Labels   map[string]string `json:"labels"`
		} `json:"ports"`
	} `json:"discovery"`
}

// maxDefinition bounds a definition body.
const maxDefinition = 4 << 20

// decodeObject parses data as one JSON object (no trailing data).
func decodeObject(data []byte) (map[string]json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	var raw map[string]json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		return nil, invalidJSON(err)
	}
	if raw == nil {
		return nil, invalidJSON(errors.New("expected a JSON object"))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, invalidJSON(errors.New("trailing data after the JSON object"))
	}
	return raw, nil
}

// DecodeApp parses and validates an app definition as POST /v2/apps
// does. defaultNetwork is --default_network_name (used by container
// networks without a name and by the legacy ipAddress form); empty means
// none. A *DefinitionError describes a refused definition.
func DecodeApp(data []byte, defaultNetwork string) (*App, error) {
	raw, err := decodeObject(data)
	if err != nil {
		return nil, err
	}
	var in appInput
	if err := json.Unmarshal(data, &in); err != nil {
		return nil, invalidJSON(err)
	}
	return buildApp(raw, &in, defaultNetwork)
}

func buildApp(raw map[string]json.RawMessage, in *appInput, defaultNetwork string) (*App, error) {
	var v validation
	a := &App{
		Instances: 1, CPUs: 1, Mem: 128, BackoffSeconds: 1, BackoffFactor: 1.15, MaxLaunchDelay: 3600,
		KillSelection: "YOUNGEST_FIRST", Role: "*", Labels: map[string]string{},
		extra: map[string]json.RawMessage{},
	}
	if in.ID == nil || *in.ID == "" {
		v.add("/id", "must not be empty")
	} else {
		id, ok := canonicalID(*in.ID)
		if !ok {
			v.add("/id", "%s", idPatternMessage)
		}
		a.ID = id
	}
	for _, k := range appPassThrough {
		if r, ok := raw[k]; ok && !emptyJSON(r) {
			a.extra[k] = r
		}
	}
	if in.Fetch == nil && len(in.URIs) > 0 {
		var fetch []map[string]any
		for _, u := range in.URIs {
			fetch = append(fetch, map[string]any{"uri": u, "extract": true, "executable": false, "cache": false})
		}
		a.extra["fetch"], _ = marshal(fetch)
	}
	a.Cmd, a.Args = in.Cmd, in.Args
	if in.User != nil {
		a.User = *in.User
	}
	a.Env = map[string]string{}
	for k, r := range in.Env {
		var s string
		if err := json.Unmarshal(r, &s); err == nil {
			a.Env[k] = s
			continue
		}
		var sec struct {
			Secret *string `json:"secret"`
		}
		if err := json.Unmarshal(r, &sec); err != nil || sec.Secret == nil {
			v.add("/env("+k+")", "must be a string or a secret reference")
		}
	}
	setInt(&a.Instances, in.Instances)
	setFloat(&a.CPUs, in.Cpus)
	setFloat(&a.Mem, in.Mem)
	setFloat(&a.Disk, in.Disk)
	setFloat(&a.GPUs, in.Gpus)
	setFloat(&a.BackoffSeconds, in.BackoffSeconds)
	setFloat(&a.BackoffFactor, in.BackoffFactor)
	setFloat(&a.MaxLaunchDelay, in.MaxLaunchDelaySeconds)
	if in.KillSelection != nil {
		a.KillSelection = *in.KillSelection
	}
	if in.Role != nil && *in.Role != "" {
		a.Role = *in.Role
	}
	if in.RequirePorts != nil {
		a.RequirePorts = *in.RequirePorts
	}
	maps.Copy(a.Labels, in.Labels)

	if a.Instances < 0 {
		v.add("/instances", "got %d, expected 0 or more", a.Instances)
	}
	for _, f := range []struct {
		path string
		val  float64
	}{{"/cpus", a.CPUs}, {"/mem", a.Mem}, {"/disk", a.Disk}, {"/gpus", a.GPUs}, {"/backoffSeconds", a.BackoffSeconds}, {"/maxLaunchDelaySeconds", a.MaxLaunchDelay}} {
		if f.val < 0 {
			v.add(f.path, "got %v, expected 0.0 or more", f.val)
		}
	}
	if a.BackoffFactor < 1 {
		v.add("/backoffFactor", "got %v, expected 1.0 or more", a.BackoffFactor)
	}
	if a.KillSelection != "YOUNGEST_FIRST" && a.KillSelection != "OLDEST_FIRST" {
		v.add("/killSelection", "error.unknown.enum.literal (YOUNGEST_FIRST, OLDEST_FIRST)")
	}
	if a.Cmd != nil && a.Args != nil {
		v.add("/", "AppDefinition must either contain a 'cmd' or a 'args', but not both")
	}

	// Container.
	var mappings []portMappingInput
	mappingsPath := "/container/portMappings"
	var dockerNetwork string
	if c := in.Container; c != nil {
		a.ContainerType = ContainerMesos
		if c.Type != nil {
			a.ContainerType = *c.Type
		}
		if a.ContainerType != ContainerMesos && a.ContainerType != ContainerDocker {
			v.add("/container/type", "error.unknown.enum.literal (MESOS, DOCKER)")
		}
		var craw map[string]json.RawMessage
		_ = json.Unmarshal(raw["container"], &craw)
		a.container = map[string]json.RawMessage{}
		for k, r := range craw {
			if k != "type" && k != "docker" && k != "portMappings" {
				a.container[k] = r
			}
		}
		mappings = c.PortMappings
		if d := c.Docker; d != nil {
			var draw map[string]json.RawMessage
			_ = json.Unmarshal(craw["docker"], &draw)
			a.docker = map[string]json.RawMessage{}
			for k, r := range draw {
				if k != "network" && k != "portMappings" {
					a.docker[k] = r
				}
			}
			if d.Network != nil {
				dockerNetwork = *d.Network
			}
			if mappings == nil && d.PortMappings != nil {
				mappings, mappingsPath = d.PortMappings, "/container/docker/portMappings"
			}
			if a.ContainerType == ContainerDocker && (d.Image == nil || *d.Image == "") {
				v.add("/container/docker/image", "must not be empty")
			}
		} else if a.ContainerType == ContainerDocker {
			v.add("/container/docker", "must not be empty")
		}
	}
	if a.Cmd == nil && a.Args == nil && in.Container == nil {
		v.add("/", "AppDefinition must either contain one of 'cmd' or 'args', and/or a 'container'.")
	}

	// Networks: the 1.5 form, or a translation of the ≤ 1.4 form.
	switch {
	case in.Networks != nil && (in.IPAddress != nil || dockerNetwork != ""):
		v.add("/networks", "networks cannot be combined with the deprecated ipAddress or container.docker.network")
	case in.Networks != nil:
		a.Networks = buildNetworks(&v, in.Networks, defaultNetwork, true)
	case in.IPAddress != nil:
		if dockerNetwork != "" && dockerNetwork != "USER" {
			v.add("/ipAddress", "ipAddress/discovery is not allowed for Docker containers using %s networks", dockerNetwork)
		}
		n := Network{Mode: ModeContainer, Labels: in.IPAddress.Labels}
		if in.IPAddress.NetworkName != nil {
			n.Name = *in.IPAddress.NetworkName
		}
		a.Networks = buildNetworks(&v, []networkInput{{Mode: ptr(n.Mode), Name: ptr(n.Name), Labels: n.Labels}}, defaultNetwork, true)
		if d := in.IPAddress.Discovery; d != nil && mappings == nil {
			for _, p := range d.Ports {
				mappings = append(mappings, portMappingInput{ContainerPort: p.Number, Name: p.Name, Protocol: p.Protocol, Labels: p.Labels})
			}
			mappingsPath = "/ipAddress/discovery/ports"
			if a.ContainerType == "" {
				a.ContainerType = ContainerMesos
				a.container = map[string]json.RawMessage{}
			}
		}
	case dockerNetwork != "":
		switch dockerNetwork {
		case "HOST":
			a.Networks = []Network{{Mode: ModeHost}}
		case "BRIDGE":
			a.Networks = []Network{{Mode: ModeBridge}}
		case "USER":
			a.Networks = buildNetworks(&v, []networkInput{{Mode: ptr(ModeContainer)}}, defaultNetwork, true)
		default:
			v.add("/container/docker/network", "error.unknown.enum.literal (HOST, BRIDGE, USER)")
		}
	}
	if len(a.Networks) == 0 {
		a.Networks = []Network{{Mode: ModeHost}}
	}

	// Ports.
	if a.HostNetworking() {
		defs := in.PortDefinitions
		if defs == nil && in.Ports != nil {
			for _, p := range in.Ports {
				defs = append(defs, portDefinitionInput{Port: ptr(p)})
			}
		}
		if defs == nil {
			defs = []portDefinitionInput{{Port: ptr(0), Name: ptr("default")}}
		}
		names := map[string]bool{}
		for i, d := range defs {
			path := fmt.Sprintf("/portDefinitions(%d)", i)
			pd := PortDefinition{Protocol: "tcp", Labels: nonNil(d.Labels)}
			if d.Port != nil {
				pd.Port = *d.Port
			}
			if d.Protocol != nil {
				pd.Protocol = *d.Protocol
			}
			if d.Name != nil {
				pd.Name = *d.Name
			}
			checkPort(&v, path+"/port", pd.Port)
			checkProtocol(&v, path+"/protocol", pd.Protocol)
			if pd.Name != "" {
				if names[pd.Name] {
					v.add("/portDefinitions", "Port names must be unique.")
				}
				names[pd.Name] = true
			}
			a.PortDefinitions = append(a.PortDefinitions, pd)
		}
	} else {
		if a.ContainerType == "" {
			a.ContainerType = ContainerMesos
			a.container = map[string]json.RawMessage{}
		}
		bridge := a.Networks[0].Mode == ModeBridge
		var containerNets []string
		for _, n := range a.Networks {
			if n.Mode == ModeContainer {
				containerNets = append(containerNets, n.Name)
			}
		}
		names := map[string]bool{}
		for i, m := range mappings {
			path := fmt.Sprintf("%s(%d)", mappingsPath, i)
			pm := PortMapping{Protocol: "tcp", Labels: nonNil(m.Labels), HostPort: m.HostPort, NetworkNames: m.NetworkNames}
			if m.ContainerPort != nil {
				pm.ContainerPort = *m.ContainerPort
			}
			if m.ServicePort != nil {
				pm.ServicePort = *m.ServicePort
			}
			if m.Protocol != nil {
				pm.Protocol = *m.Protocol
			}
			if m.Name != nil {
				pm.Name = *m.Name
			}
			if bridge && pm.HostPort == nil {
				pm.HostPort = ptr(0)
			}
			checkPort(&v, path+"/containerPort", pm.ContainerPort)
			checkPort(&v, path+"/servicePort", pm.ServicePort)
			if pm.HostPort != nil {
				checkPort(&v, path+"/hostPort", *pm.HostPort)
			}
			checkProtocol(&v, path+"/protocol", pm.Protocol)
			if pm.Name != "" {
				if names[pm.Name] {
					v.add(mappingsPath, "Port names must be unique.")
				}
				names[pm.Name] = true
			}
			for _, nn := range pm.NetworkNames {
				if !slices.Contains(containerNets, nn) {
					v.add(path+"/networkNames", "networkNames must refer to container networks of the app: %s", nn)
				}
			}
			if pm.HostPort != nil && len(containerNets) > 1 && len(pm.NetworkNames) != 1 {
				v.add(path+"/networkNames", "must contain exactly one network name when hostPort is set and there is more than one container network")
			}
			a.PortMappings = append(a.PortMappings, pm)
		}
	}
	if err := v.err(); err != nil {
		return nil, err
	}
	return a, nil
}

// buildNetworks validates a `networks` array: host and
// container/bridge stand alone and carry no name; container networks
// need a name (or the default network) and must be distinct.
func buildNetworks(v *validation, in []networkInput, defaultNetwork string, allowBridge bool) []Network {
	var out []Network
	seen := map[string]bool{}
	for i, n := range in {
		path := fmt.Sprintf("/networks(%d)", i)
		nw := Network{Mode: ModeContainer, Labels: n.Labels}
		if n.Mode != nil {
			nw.Mode = *n.Mode
		}
		if n.Name != nil {
			nw.Name = *n.Name
		}
		switch nw.Mode {
		case ModeHost, ModeBridge:
			if nw.Mode == ModeBridge && !allowBridge {
				v.add(path+"/mode", "error.unknown.enum.literal (host, container)")
			}
			if nw.Name != "" {
				v.add(path+"/name", "must be empty for %s networking", nw.Mode)
			}
			if len(in) > 1 {
				v.add("/networks", "%s networking may not be combined with other networks", nw.Mode)
			}
		case ModeContainer:
			if nw.Name == "" {
				nw.Name = defaultNetwork
			}
			if nw.Name == "" {
				v.add(path+"/name", "network name must be specified when container network is selected")
			} else if seen[nw.Name] {
				v.add("/networks", "duplicate container network name %q", nw.Name)
			}
			seen[nw.Name] = true
		default:
			v.add(path+"/mode", "error.unknown.enum.literal (host, container, container/bridge)")
		}
		out = append(out, nw)
	}
	return out
}

func checkPort(v *validation, path string, p int) {
	if p < 0 || p > 65535 {
		v.add(path, "got %d, expected between 0 and 65535", p)
	}
}

var protocolRE = regexp.MustCompile(`^(tcp|udp)(,(tcp|udp))*$`)

func checkProtocol(v *validation, path, p string) {
	if !protocolRE.MatchString(p) {
		v.add(path, "is not one of (tcp,udp,udp,tcp)")
	}
}

// object renders the app as Marathon's 1.5+ writer does (without
// version, versionInfo and embedded fields, which the server adds).
func (a *App) object() map[string]any {
	m := map[string]any{}
	for k, r := range a.extra {
		m[k] = r
	}
	m["id"] = a.ID
	if a.Cmd != nil {
		m["cmd"] = *a.Cmd
	}
	if a.Args != nil {
		m["args"] = a.Args
	}
	m["instances"] = a.Instances
	m["cpus"] = a.CPUs
	m["mem"] = a.Mem
	m["disk"] = a.Disk
	m["gpus"] = a.GPUs
	m["backoffSeconds"] = a.BackoffSeconds
	m["backoffFactor"] = a.BackoffFactor
	m["maxLaunchDelaySeconds"] = a.MaxLaunchDelay
	m["labels"] = a.Labels
	m["killSelection"] = a.KillSelection
	m["role"] = a.Role
	m["requirePorts"] = a.RequirePorts
	if _, ok := m["executor"]; !ok {
		m["executor"] = ""
	}
	if _, ok := m["upgradeStrategy"]; !ok {
		m["upgradeStrategy"] = map[string]any{"minimumHealthCapacity": 1, "maximumOverCapacity": 1}
	}
	if _, ok := m["unreachableStrategy"]; !ok {
		m["unreachableStrategy"] = map[string]any{"inactiveAfterSeconds": 300, "expungeAfterSeconds": 600}
	}
	nets := make([]any, 0, len(a.Networks))
	for _, n := range a.Networks {
		nets = append(nets, n.object())
	}
	m["networks"] = nets
	if a.HostNetworking() {
		defs := make([]any, 0, len(a.PortDefinitions))
		for _, d := range a.PortDefinitions {
			defs = append(defs, d.object())
		}
		m["portDefinitions"] = defs
	}
	if a.ContainerType != "" {
		c := map[string]any{}
		for k, r := range a.container {
			c[k] = r
		}
		c["type"] = a.ContainerType
		if _, ok := c["volumes"]; !ok {
			c["volumes"] = []any{}
		}
		if a.docker != nil {
			d := map[string]any{}
			for k, r := range a.docker {
				d[k] = r
			}
			if a.ContainerType == ContainerDocker {
				for k, def := range map[string]any{"forcePullImage": false, "privileged": false, "parameters": []any{}} {
					if _, ok := d[k]; !ok {
						d[k] = def
					}
				}
			}
			c["docker"] = d
		}
		if !a.HostNetworking() {
			pms := make([]any, 0, len(a.PortMappings))
			for _, p := range a.PortMappings {
				pms = append(pms, p.object())
			}
			c["portMappings"] = pms
		}
		m["container"] = c
	}
	return m
}

// Pod is a validated pod definition.
type Pod struct {
	ID         string
	Instances  int
	Labels     map[string]string
	Env        map[string]string
	Networks   []Network
	Containers []PodContainer
	User       string
	Role       string
	// MaxInstances is scaling.maxInstances, nil when unset.
	MaxInstances *int

	raw map[string]json.RawMessage // pass-through fields, verbatim
}

// HostNetworking reports whether the pod uses the host network.
func (p *Pod) HostNetworking() bool { return len(p.Networks) == 0 || p.Networks[0].Mode == ModeHost }

// PodContainer is one container of a pod.
type PodContainer struct {
	Name string
	// Shell or Argv is the container's exec command; both empty means
	// none (the emulator then keeps the container alive with a sleep).
	Shell     string
	Argv      []string
	Env       map[string]string
	CPUs      float64
	Mem       float64
	Disk      float64
	GPUs      float64
	Endpoints []Endpoint
}

// Endpoint is a pod container endpoint.
type Endpoint struct {
	Name          string
	ContainerPort *int
	HostPort      *int
	Protocol      []string
	Labels        map[string]string
}

// podPassThrough are the Pod fields echoed verbatim.
var podPassThrough = []string{
	"containers", "environment", "executorResources", "labels", "legacySharedCgroups", "linuxInfo",
	"role", "scheduling", "secrets", "user", "volumes",
}

type podInput struct {
	ID          *string                    `json:"id"`
	Labels      map[string]string          `json:"labels"`
	Environment map[string]json.RawMessage `json:"environment"`
	User        *string                    `json:"user"`
	Role        *string                    `json:"role"`
	Networks    []networkInput             `json:"networks"`
	Scaling     *struct {
		Kind         *string `json:"kind"`
		Instances    *int    `json:"instances"`
		MaxInstances *int    `json:"maxInstances"`
	} `json:"scaling"`
	Containers []struct {
		Name *string `json:"name"`
		Exec *struct {
			Command *struct {
				Shell *string  `json:"shell"`
				Argv  []string `json:"argv"`
			} `json:"command"`
		} `json:"exec"`
		Resources *struct {
			Cpus *float64 `json:"cpus"`
			Mem  *float64 `json:"mem"`
			Disk *float64 `json:"disk"`
			Gpus *float64 `json:"gpus"`
		} `json:"resources"`
		Endpoints []struct {
			Name          *string           `json:"name"`
			ContainerPort *int              `json:"containerPort"`
			HostPort      *int              `json:"hostPort"`
			Protocol      []string          `json:"protocol"`
			Labels        map[string]string `json:"labels"`
		} `json:"endpoints"`
		Environment map[string]json.RawMessage `json:"environment"`
	} `json:"containers"`
}

var containerNameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]*[a-z0-9]+)*$`)

// DecodePod parses and validates a pod definition as POST /v2/pods does.
func DecodePod(data []byte, defaultNetwork string) (*Pod, error) {
	raw, err := decodeObject(data)
	if err != nil {
		return nil, err
	}
	var in podInput
	if err := json.Unmarshal(data, &in); err != nil {
		return nil, invalidJSON(err)
	}
	var v validation
	p := &Pod{Instances: 1, Labels: nonNil(in.Labels), Env: stringValues(in.Environment), Role: "*", raw: map[string]json.RawMessage{}}
	if in.ID == nil || *in.ID == "" {
		v.add("/id", "must not be empty")
	} else {
		id, ok := canonicalID(*in.ID)
		if !ok {
			v.add("/id", "%s", idPatternMessage)
		}
		p.ID = id
	}
	for _, k := range podPassThrough {
		if r, ok := raw[k]; ok && !emptyJSON(r) {
			p.raw[k] = r
		}
	}
	if in.User != nil {
		p.User = *in.User
	}
	if in.Role != nil && *in.Role != "" {
		p.Role = *in.Role
	}
	if s := in.Scaling; s != nil {
		if s.Kind != nil && *s.Kind != "fixed" {
			v.add("/scaling/kind", "error.unknown.enum.literal (fixed)")
		}
		setInt(&p.Instances, s.Instances)
		p.MaxInstances = s.MaxInstances
		if s.MaxInstances != nil && *s.MaxInstances < p.Instances {
			v.add("/scaling/maxInstances", "got %d, expected %d or more", *s.MaxInstances, p.Instances)
		}
	}
	if p.Instances < 0 {
		v.add("/scaling/instances", "got %d, expected 0 or more", p.Instances)
	}
	if in.Networks != nil {
		p.Networks = buildNetworks(&v, in.Networks, defaultNetwork, true)
	}
	if len(p.Networks) == 0 {
		p.Networks = []Network{{Mode: ModeHost}}
	}
	if len(in.Containers) == 0 {
		v.add("/containers", "must not be empty")
	}
	names := map[string]bool{}
	endpoints := map[string]bool{}
	for i, c := range in.Containers {
		path := fmt.Sprintf("/containers(%d)", i)
		pc := PodContainer{Env: stringValues(c.Environment)}
		if c.Name != nil {
			pc.Name = *c.Name
		}
		if !containerNameRE.MatchString(pc.Name) {
			v.add(path+"/name", "must fully match regular expression '%s'", containerNameRE.String())
		} else if names[pc.Name] {
			v.add("/containers", "container names are not unique")
		}
		names[pc.Name] = true
		if c.Exec != nil && c.Exec.Command != nil {
			if c.Exec.Command.Shell != nil {
				pc.Shell = *c.Exec.Command.Shell
			}
			pc.Argv = c.Exec.Command.Argv
		}
		if r := c.Resources; r != nil {
			setFloat(&pc.CPUs, r.Cpus)
			setFloat(&pc.Mem, r.Mem)
			setFloat(&pc.Disk, r.Disk)
			setFloat(&pc.GPUs, r.Gpus)
		}
		for _, f := range []struct {
			path string
			val  float64
		}{{"/cpus", pc.CPUs}, {"/mem", pc.Mem}, {"/disk", pc.Disk}, {"/gpus", pc.GPUs}} {
			if f.val < 0 {
				v.add(path+"/resources"+f.path, "got %v, expected 0.0 or more", f.val)
			}
		}
		for j, e := range c.Endpoints {
			epath := fmt.Sprintf("%s/endpoints(%d)", path, j)
			ep := Endpoint{ContainerPort: e.ContainerPort, HostPort: e.HostPort, Protocol: e.Protocol, Labels: nonNil(e.Labels)}
			if e.Name != nil {
				ep.Name = *e.Name
			}
			if ep.Name == "" {
				v.add(epath+"/name", "must not be empty")
			} else if endpoints[ep.Name] {
				v.add("/containers", "endpoint names are not unique")
			}
			endpoints[ep.Name] = true
			if len(ep.Protocol) == 0 {
				ep.Protocol = []string{"tcp"}
			}
			for _, proto := range ep.Protocol {
				if proto != "tcp" && proto != "udp" {
					v.add(epath+"/protocol", "is not one of (tcp,udp)")
				}
			}
			if ep.ContainerPort != nil {
				checkPort(&v, epath+"/containerPort", *ep.ContainerPort)
			}
			if ep.HostPort != nil {
				checkPort(&v, epath+"/hostPort", *ep.HostPort)
			}
			if p.HostNetworking() && ep.HostPort == nil {
				ep.HostPort = ptr(0)
			}
			pc.Endpoints = append(pc.Endpoints, ep)
		}
		p.Containers = append(p.Containers, pc)
	}
	if err := v.err(); err != nil {
		return nil, err
	}
	return p, nil
}

// object renders the pod definition (without version).
func (p *Pod) object() map[string]any {
	m := map[string]any{}
	for k, r := range p.raw {
		m[k] = r
	}
	m["id"] = p.ID
	nets := make([]any, 0, len(p.Networks))
	for _, n := range p.Networks {
		nets = append(nets, n.object())
	}
	m["networks"] = nets
	scaling := map[string]any{"kind": "fixed", "instances": p.Instances}
	if p.MaxInstances != nil {
		scaling["maxInstances"] = *p.MaxInstances
	}
	m["scaling"] = scaling
	return m
}

// emptyJSON reports whether r is null, "", [] or {}.
func emptyJSON(r json.RawMessage) bool {
	s := strings.TrimSpace(string(r))
	switch s {
	case "", "null", `""`:
		return true
	}
	if len(s) >= 2 && (s[0] == '[' || s[0] == '{') && strings.TrimSpace(s[1:len(s)-1]) == "" {
		return true
	}
	return false
}

func stringValues(in map[string]json.RawMessage) map[string]string {
	out := map[string]string{}
	for k, r := range in {
		var s string
		if json.Unmarshal(r, &s) == nil {
			out[k] = s
		}
	}
	return out
}

func nonNil(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func setInt(dst *int, src *int) {
	if src != nil {
		*dst = *src
	}
}

func setFloat(dst *float64, src *float64) {
	if src != nil {
		*dst = *src
	}
}

func ptr[T any](v T) *T { return &v }
