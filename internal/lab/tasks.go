package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"

	marathonemu "github.com/weft-sdn/weft/internal/marathon/emulator"
	"github.com/weft-sdn/weft/internal/mesos"
	"github.com/weft-sdn/weft/internal/mesos/emulator"
)

// CNINetwork is the CNI network name of Weft in the lab: tasks choose the
// Weft network with the `networks` label, as with Contrail. A task's
// further interfaces join per-network CNI networks named after the Weft
// network (Mesos allows one interface per CNI network).
const CNINetwork = "weft"

// TaskRequest describes a task for RunTask.
type TaskRequest struct {
	Name string
	Node string
	// Networks are Weft networks, one interface each (eth0, eth1, …);
	// empty means the default task network.
	Networks []string
	// IP is an explicit address for the first interface.
	IP string
	// IPv6 asks for an IPv6 address too (dual stack).
	IPv6 bool
	// Overlay launches the task on a DC/OS-style overlay instead (the CNI
	// network of that name, which the node's agent writes); Networks, IP
	// and Labels are then not used.
	Overlay string
	Labels  map[string]string
	Command []string
}

// Interface is one interface of a task: its Weft network and addresses.
type Interface struct {
	IfName  string   `json:"ifname"`
	Network string   `json:"network"`
	IPs     []string `json:"ips"`
}

// Task is a task as the lab reports it.
type Task struct {
	Name        string   `json:"name"`
	Node        string   `json:"node"`
	ContainerID string   `json:"container_id"`
	PID         int      `json:"pid,omitempty"`
	State       string   `json:"state"`
	Networks    []string `json:"networks"`
	IPs         []string `json:"ips"`
	// Interfaces are the task's interfaces in order (eth0, eth1, …).
	Interfaces []Interface `json:"interfaces"`
	Netns      string      `json:"netns,omitempty"`
	Error      string      `json:"error,omitempty"`
}

// node is the lab's node of that name.
func (l *Lab) node(name string) (*NodeState, error) {
	for i := range l.Nodes {
		if l.Nodes[i].Name == name {
			return &l.Nodes[i], nil
		}
	}
	names := make([]string, len(l.Nodes))
	for i, n := range l.Nodes {
		names[i] = n.Name
	}
	return nil, fmt.Errorf("no node %q in the lab (nodes: %s)", name, strings.Join(names, ", "))
}

// emulatorClient is a client of the node's Mesos agent emulator, the one
// the Marathon emulator schedules through.
func (n NodeState) emulatorClient() *marathonemu.HTTPAgent {
	return marathonemu.NewHTTPAgent(n.EmulatorSocket, nil)
}

// ensureCNINetwork writes the per-network CNI configuration for a Weft
// network on every node, as an operator would install it.
func (l *Lab) ensureCNINetwork(network string) error {
	for _, n := range l.Nodes {
		path := filepath.Join(n.CNIConfigDir, network+".conf")
		if _, err := os.Stat(path); err == nil {
			continue
		}
		conf := fmt.Sprintf(`{"cniVersion":"0.2.0","name":%q,"type":"weft-cni","weft":{"socket":%q,"network":%q}}`+"\n", network, n.AgentSocket, network)
		if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// RunTask launches a task on a node through its Mesos agent emulator, with
// NetworkInfos as Marathon would send them.
func (l *Lab) RunTask(ctx context.Context, req TaskRequest) (Task, error) {
	n, err := l.node(req.Node)
	if err != nil {
		return Task{}, err
	}
	if req.Name == "" {
		return Task{}, errors.New("a task needs a name")
	}
	if existing, err := l.FindTask(ctx, req.Name); err == nil && existing.State != string(mesos.TaskKilled) {
		return Task{}, fmt.Errorf("task %q runs already on %s; kill it first", req.Name, existing.Node)
	}
	nets := req.Networks
	if len(nets) == 0 {
		nets = []string{""}
	}
	var infos []mesos.NetworkInfo
	if req.Overlay != "" {
		infos = append(infos, mesos.NetworkInfo{Name: req.Overlay, IPAddresses: []mesos.IPAddress{{Protocol: mesos.IPv4}}})
		nets = nil
	}
	for i, net := range nets {
		info := mesos.NetworkInfo{Name: CNINetwork}
		var kv []string
		if i == 0 {
			if net != "" {
				kv = append(kv, "networks", net)
			}
			keys := make([]string, 0, len(req.Labels))
			for k := range req.Labels {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				kv = append(kv, k, req.Labels[k])
			}
		} else {
			if net == "" {
				return Task{}, errors.New("only the first interface may use the default network")
			}
			if err := l.ensureCNINetwork(net); err != nil {
				return Task{}, err
			}
			info.Name = net
		}
		if len(kv) > 0 {
			info.Labels = mesos.NewLabels(kv...)
		}
		ip := mesos.IPAddress{Protocol: mesos.IPv4}
		if i == 0 && req.IP != "" {
			ip.IPAddress = req.IP
			if strings.Contains(req.IP, ":") {
				ip.Protocol = mesos.IPv6
			}
		}
		info.IPAddresses = []mesos.IPAddress{ip}
		if i == 0 && req.IPv6 {
			info.IPAddresses = append(info.IPAddresses, mesos.IPAddress{Protocol: mesos.IPv6})
		}
		infos = append(infos, info)
	}
	cmd := req.Command
	if len(cmd) == 0 {
		cmd = []string{filepath.Join(l.BinDir, "weft"), "lab", "responder", "--name", req.Name}
	}
	spec := emulator.TaskSpec{TaskID: req.Name, Name: req.Name, Command: cmd, NetworkInfos: infos, Hostname: req.Name}
	c, err := n.emulatorClient().Launch(ctx, spec)
	if err != nil {
		return Task{}, fmt.Errorf("%s: %w", n.Name, err)
	}
	if c.State != mesos.TaskRunning {
		msg := c.Error
		if msg == "" {
			msg = c.Status.Message
		}
		return taskOf(*n, c), fmt.Errorf("task %s on %s is %s: %s", req.Name, n.Name, c.State, msg)
	}
	return taskOf(*n, c), nil
}

func taskOf(n NodeState, c emulator.Container) Task {
	t := Task{Name: c.Task.TaskID, Node: n.Name, ContainerID: c.ID, PID: c.PID, State: string(c.State), Error: c.Error}
	for _, net := range c.Networks {
		t.Networks = append(t.Networks, net.Name+"/"+net.IfName)
	}
	if c.Status.ContainerStatus != nil {
		for i, ni := range c.Status.ContainerStatus.NetworkInfos {
			itf := Interface{IfName: fmt.Sprintf("eth%d", i), Network: weftNetwork(ni)}
			for _, a := range ni.IPAddresses {
				if a.IPAddress != "" {
					t.IPs = append(t.IPs, a.IPAddress)
					itf.IPs = append(itf.IPs, a.IPAddress)
				}
			}
			t.Interfaces = append(t.Interfaces, itf)
		}
	}
	if !c.Destroyed {
		t.Netns = filepath.Join(n.EmulatorRoot, c.ID, "ns")
	}
	return t
}

// weftNetwork names the Weft network of a NetworkInfo as the lab launches
// them: the `networks` label on the weft CNI network, else the CNI network
// named after the Weft network.
func weftNetwork(ni mesos.NetworkInfo) string {
	if ni.Labels != nil {
		if v, ok := ni.Labels.Get("networks"); ok {
			return v
		}
	}
	if ni.Name == CNINetwork {
		return "mesos-default-pod-task"
	}
	return ni.Name
}

// Tasks lists the tasks of every node, live ones first.
func (l *Lab) Tasks(ctx context.Context) ([]Task, error) {
	var out []Task
	for _, n := range l.Nodes {
		cs, err := n.emulatorClient().Containers(ctx)
		if err != nil {
			return nil, err
		}
		for _, c := range cs {
			out = append(out, taskOf(n, c))
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if a, b := out[i].Netns != "", out[j].Netns != ""; a != b {
			return a
		}
		return out[i].Name < out[j].Name
	})
	return out, nil
}

// FindTask returns the live task with the name (or its last record).
func (l *Lab) FindTask(ctx context.Context, name string) (Task, error) {
	ts, err := l.Tasks(ctx)
	if err != nil {
		return Task{}, err
	}
	for _, t := range ts {
		if t.Name == name {
			return t, nil
		}
	}
	return Task{}, fmt.Errorf("no task %q in the lab", name)
}

// KillTask kills a task; its networks are detached (CNI DEL) by the
// emulator as Mesos does.
func (l *Lab) KillTask(ctx context.Context, name string) error {
	t, err := l.FindTask(ctx, name)
	if err != nil {
		return err
	}
	n, err := l.node(t.Node)
	if err != nil {
		return err
	}
	_, err = n.emulatorClient().Kill(ctx, t.ContainerID)
	return err
}

// killAllTasks asks every node's emulator to kill its live tasks, so that
// their networks are detached cleanly before the lab goes.
func (l *Lab) killAllTasks(ctx context.Context) {
	for _, n := range l.Nodes {
		emu := n.emulatorClient()
		cs, err := emu.Containers(ctx)
		if err != nil {
			continue
		}
		for _, c := range cs {
			if !c.Destroyed {
				_, _ = emu.Kill(ctx, c.ID)
			}
		}
	}
}

// Exec runs cmd inside the network namespace of a live task and returns
// its exit code.
func (l *Lab) Exec(ctx context.Context, task string, cmd []string, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
	t, err := l.FindTask(ctx, task)
	if err != nil {
		return 0, err
	}
	if t.Netns == "" {
		return 0, fmt.Errorf("task %s is not running (%s)", task, t.State)
	}
	c := exec.CommandContext(ctx, "nsenter", append([]string{"--net=" + t.Netns}, cmd...)...)
	c.Stdin, c.Stdout, c.Stderr = stdin, stdout, stderr
	err = c.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), nil
	}
	return 0, err
}
