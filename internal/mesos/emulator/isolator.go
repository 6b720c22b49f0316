package emulator

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/weft-sdn/weft/internal/mesos"
)

// This file follows the network/cni isolator (cni.cpp) step by step:
// prepare, isolate/attach/_attach, _isolate, status, cleanup/detach and
// _recover, with Mesos' error texts.

const mesosArgsKey = "org.apache.mesos"

func (a *Agent) containerDir(cid string) string { return joinPath(a.root, cid) }
func (a *Agent) nsPath(cid string) string       { return joinPath(a.containerDir(cid), "ns") }
func (a *Agent) networkDir(cid, network string) string {
	return joinPath(a.containerDir(cid), network)
}
func (a *Agent) ifDir(cid, network, ifName string) string {
	return joinPath(a.networkDir(cid, network), ifName)
}
func (a *Agent) networkConfigPath(cid, network string) string {
	return joinPath(a.networkDir(cid, network), "network.conf")
}
func (a *Agent) networkInfoPath(cid, network, ifName string) string {
	return joinPath(a.ifDir(cid, network, ifName), "network.info")
}

// prepare picks the CNI networks of a task: NetworkInfos without a name
// are skipped, each named network must be a known CNI network and appear
// once, and gets eth<N> in order.
func (a *Agent) prepare(spec TaskSpec) ([]*containerNetwork, error) {
	var nets []*containerNetwork
	seen := map[string]bool{}
	for _, ni := range spec.NetworkInfos {
		if ni.Name == "" {
			continue
		}
		if _, _, err := a.configs.get(ni.Name); err != nil {
			return nil, err
		}
		if seen[ni.Name] {
			return nil, fmt.Errorf("Attempted to join CNI network '%s' multiple times", ni.Name)
		}
		seen[ni.Name] = true
		nets = append(nets, &containerNetwork{name: ni.Name, ifName: "eth" + strconv.Itoa(len(nets)), info: ni})
	}
	return nets, nil
}

// isolate bind-mounts the task's netns handle, attaches every network in
// parallel and, when all succeeded, writes the network files and sets up
// the container (_isolate).
func (a *Agent) isolate(ctx context.Context, c *container, pid int) error {
	ns := a.nsPath(c.id)
	if err := bindNetns(pid, ns); err != nil {
		return err
	}
	a.log.Info("bind mounted the network namespace handle", "container", c.id, "source", fmt.Sprintf("/proc/%d/ns/net", pid), "target", ns)
	if err := eachNetwork(c, func(n *containerNetwork) error { return a.attach(ctx, c, n, ns) }); err != nil {
		return err
	}
	return a.isolateFiles(ctx, c, pid)
}

// eachNetwork runs fn for every network of c in parallel, as the isolator
// attaches and detaches them, and joins the failures one a line.
func eachNetwork(c *container, fn func(n *containerNetwork) error) error {
	errs := make([]error, len(c.networks))
	var wg sync.WaitGroup
	for i, n := range c.networks {
		wg.Go(func() { errs[i] = fn(n) })
	}
	wg.Wait()
	var msgs []string
	for _, err := range errs {
		if err != nil {
			msgs = append(msgs, err.Error())
		}
	}
	if len(msgs) > 0 {
		return errors.New(strings.Join(msgs, "\n"))
	}
	return nil
}

// attach runs ADD for one network: checkpoint the configuration with
// args["org.apache.mesos"].network_info injected as network.conf, run the
// plugin with it as stdin, parse and checkpoint its output.
func (a *Agent) attach(ctx context.Context, c *container, n *containerNetwork, netns string) error {
	conf, confPath, err := a.configs.get(n.name)
	if err != nil {
		return fmt.Errorf("Could not get valid CNI configuration for network '%s': %w", n.name, err)
	}
	ifDir := a.ifDir(c.id, n.name, n.ifName)
	if err := os.MkdirAll(ifDir, 0o755); err != nil {
		return fmt.Errorf("Failed to create interface directory for the interface '%s' of the network '%s': %w", n.ifName, n.name, err)
	}
	env := map[string]string{
		"CNI_COMMAND":     "ADD",
		"CNI_CONTAINERID": c.id,
		"CNI_PATH":        a.cfg.NetworkCNIPluginsDir,
		"CNI_IFNAME":      n.ifName,
		"CNI_NETNS":       netns,
		"PATH":            agentPATH(),
	}
	stdin, err := injectNetworkInfo(conf, confPath, n.info)
	if err != nil {
		return err
	}
	plugin, err := a.findPlugin(conf, n.name, confPath, "attach", c.id, true)
	if err != nil {
		return err
	}
	path := a.networkConfigPath(c.id, n.name)
	if err := writeFileAtomic(path, stdin); err != nil {
		return fmt.Errorf("Failed to checkpoint the CNI network configuration '%s': %w", stdin, err)
	}
	a.log.Info("invoking CNI plugin to attach container", "plugin", plugin, "container", c.id, "network", n.name)
	a.log.Debug("using network configuration", "container", c.id, "config", string(stdin))
	run, err := runPlugin(ctx, a.cfg.NetNS, plugin, env, path)
	if err != nil {
		return fmt.Errorf("Failed to execute the CNI plugin '%s': %w", plugin, err)
	}
	if run.exitCode != 0 {
		return fmt.Errorf("The CNI plugin '%s' failed to attach container %s to CNI network '%s': stdout='%s', stderr='%s'",
			plugin, c.id, n.name, run.stdout, run.stderr)
	}
	res, err := mesos.ParseCNIResult(run.stdout)
	if err != nil {
		return fmt.Errorf("Failed to parse the output of the CNI plugin '%s': %w", plugin, err)
	}
	if res.IP4 != nil {
		a.log.Info("got assigned IPv4 address", "ip", res.IP4.IP, "network", n.name, "container", c.id)
	}
	if res.IP6 != nil {
		a.log.Info("got assigned IPv6 address", "ip", res.IP6.IP, "network", n.name, "container", c.id)
	}
	if err := writeFileAtomic(a.networkInfoPath(c.id, n.name, n.ifName), run.stdout); err != nil {
		return fmt.Errorf("Failed to checkpoint the output of CNI plugin '%s': %w", run.stdout, err)
	}
	c.mu.Lock()
	n.result = res
	c.mu.Unlock()
	return nil
}

// injectNetworkInfo adds args["org.apache.mesos"] = {"network_info": ni}
// to a configuration, keeping the other args, and renders the result the
// way Mesos writes network.conf (keys sorted, compact, stout escaping).
func injectNetworkInfo(conf map[string]any, confPath string, ni mesos.NetworkInfo) ([]byte, error) {
	args := map[string]any{}
	if v, ok := conf["args"]; ok {
		m, isObj := v.(map[string]any)
		if !isObj {
			return nil, fmt.Errorf("Invalid 'args' found in CNI network configuration file '%s': %s", confPath, errWrongType)
		}
		for k, x := range m {
			args[k] = x
		}
	}
	if _, ok := args[mesosArgsKey]; ok {
		return nil, errors.New("'org.apache.mesos' in 'args' should not be set in CNI network configuration file. It is reserved by Mesos")
	}
	args[mesosArgsKey] = map[string]any{"network_info": ni.ProtoObject()}
	out := make(map[string]any, len(conf)+1)
	for k, v := range conf {
		out[k] = v
	}
	out["args"] = args
	return mesos.MarshalSorted(out)
}

// findPlugin resolves the configuration's type on the plugin search path.
func (a *Agent) findPlugin(conf map[string]any, network, confPath, verb, cid string, quoteNetwork bool) (string, error) {
	v, present := conf["type"]
	typ, isStr := v.(string)
	if !present || !isStr {
		suffix := "'"
		if present {
			suffix = "': " + errWrongType
		}
		name := network
		if quoteNetwork {
			name = "'" + network + "'"
		}
		return "", fmt.Errorf("Could not find the CNI plugin to use for network %s with CNI configuration '%s%s", name, confPath, suffix)
	}
	plugin, ok := which(typ, a.cfg.NetworkCNIPluginsDir)
	if !ok {
		return "", fmt.Errorf("Unable to find the plugin %s required to %s %s to network '%s'", typ, verb, cid, network)
	}
	return plugin, nil
}

// isolateFiles writes <root>/<cid>/hostname, hosts and (when some DNS has
// nameservers) resolv.conf, then sets the hostname, brings lo up and
// bind-mounts the files into the task's mount namespace.
func (a *Agent) isolateFiles(ctx context.Context, c *container, pid int) error {
	dir := a.containerDir(c.id)
	hostnamePath := joinPath(dir, "hostname")
	if err := os.WriteFile(hostnamePath, []byte(c.hostname), 0o644); err != nil {
		return fmt.Errorf("Failed to write the hostname to '%s': %w", hostnamePath, err)
	}
	hosts := "127.0.0.1 localhost\n"
	c.mu.Lock()
	results := make([]*mesos.CNIResult, len(c.networks))
	for i, n := range c.networks {
		results[i] = n.result
	}
	c.mu.Unlock()
	for _, r := range results {
		if r != nil && r.IP4 != nil {
			addr, _, err := mesos.ParseIPv4Network(r.IP4.IP)
			if err != nil {
				return fmt.Errorf("Unable to parse the IP address %s for the container: %w", r.IP4.IP, err)
			}
			hosts += addr.String() + " " + c.hostname + "\n"
			break
		}
	}
	hostsPath := joinPath(dir, "hosts")
	if err := os.WriteFile(hostsPath, []byte(hosts), 0o644); err != nil {
		return fmt.Errorf("Failed to write the 'hosts' file at '%s': %w", hostsPath, err)
	}
	var dns mesos.DNS
	for i, n := range c.networks {
		r := results[i]
		switch pn, ok := a.dnsPerNet[n.name]; {
		case r != nil && r.DNS != nil && len(r.DNS.Nameservers) > 0:
			dns.Merge(*r.DNS)
		case ok:
			dns.Merge(pn)
		case a.dnsGlobal != nil:
			dns.Merge(*a.dnsGlobal)
		}
	}
	resolvPath := joinPath(dir, "resolv.conf")
	if len(dns.Nameservers) == 0 {
		if _, err := os.Stat("/etc/resolv.conf"); err != nil {
			return errors.New("Cannot find host's /etc/resolv.conf")
		}
		resolvPath = "/etc/resolv.conf"
		a.log.Info("unable to find DNS nameservers for container, using host '/etc/resolv.conf'", "container", c.id)
	} else {
		a.log.Info("DNS nameservers for container", "container", c.id, "nameservers", strings.Join(dns.Nameservers, ", "))
		if err := os.WriteFile(resolvPath, []byte(dns.ResolvConf()), 0o644); err != nil {
			return fmt.Errorf("Failed to write 'resolv.conf' file at '%s': %w", resolvPath, err)
		}
	}
	const setupFailed = "Failed to setup hostname and network files: "
	if err := setHostname(pid, c.hostname); err != nil {
		return fmt.Errorf(setupFailed+"Failed to set the hostname of the container to '%s': %w", c.hostname, err)
	}
	if err := loopbackUp(a.nsPath(c.id)); err != nil {
		return fmt.Errorf(setupFailed+"Failed to bring up the loopback interface in the new network namespace of pid %d: %w", pid, err)
	}
	files := [][2]string{{"/etc/hosts", hostsPath}, {"/etc/hostname", hostnamePath}, {"/etc/resolv.conf", resolvPath}}
	switch err := bindNetworkFiles(ctx, pid, files); {
	case errors.Is(err, errNoMountTools):
		a.log.Warn("not bind-mounting network files into the task", "container", c.id, "err", err)
	case err != nil:
		return errors.New(setupFailed + err.Error())
	}
	return nil
}

// containerStatus is the isolator's status() merged into the agent's
// ContainerStatus: one NetworkInfo per attached network, copied from the
// framework's with ip_addresses replaced by the plugin's (IPv4 without
// prefix, IPv6 as returned). With none, the agent reports its own
// address. A bad ip4 address fails the isolator's status, and the status
// carries no network_infos at all.
func (a *Agent) containerStatus(c *container) *mesos.ContainerStatus {
	c.mu.Lock()
	defer c.mu.Unlock()
	cs := &mesos.ContainerStatus{ContainerID: &mesos.ContainerID{Value: c.id}}
	if c.proc != nil {
		cs.ExecutorPID = uint32(c.proc.PID)
	}
	var nis []mesos.NetworkInfo
	for _, n := range c.networks {
		if n.result == nil {
			continue
		}
		addrs, err := n.result.IPAddresses()
		if err != nil {
			a.log.Warn("failed to get container status", "container", c.id, "err", err)
			return cs
		}
		ni := n.info
		ni.IPAddresses = addrs
		nis = append(nis, ni)
	}
	if len(nis) == 0 && a.agentIP != "" {
		ni := mesos.NetworkInfo{IPAddresses: []mesos.IPAddress{{IPAddress: a.agentIP}}}
		if a.cfg.AgentIP6 != "" {
			ni.IPAddresses = append(ni.IPAddresses, mesos.IPAddress{Protocol: mesos.IPv6, IPAddress: a.cfg.AgentIP6})
		}
		nis = append(nis, ni)
	}
	cs.NetworkInfos = nis
	return cs
}

// cleanup detaches every network in parallel; when all succeeded it
// unmounts the netns handle and removes the container directory. On
// failure everything stays for a later attempt.
func (a *Agent) cleanup(ctx context.Context, c *container) error {
	if err := eachNetwork(c, func(n *containerNetwork) error { return a.detach(ctx, c, n) }); err != nil {
		return err
	}
	dir := a.containerDir(c.id)
	ns := a.nsPath(c.id)
	if _, err := os.Lstat(ns); err == nil {
		handle, err := isNetnsHandle(ns)
		if err != nil {
			return err
		}
		if handle {
			if err := unmountNetns(ns); err != nil {
				return err
			}
			a.log.Info("unmounted the network namespace handle", "path", ns, "container", c.id)
		}
	}
	if _, err := os.Lstat(dir); err == nil {
		if err := os.RemoveAll(dir); err != nil {
			return fmt.Errorf("Failed to remove the container directory '%s': %w", dir, err)
		}
		a.log.Info("removed the container directory", "path", dir)
	}
	return nil
}

// detach runs DEL for one network with the checkpointed network.conf as
// stdin; CNI_NETNS is passed only while the netns handle is still a live
// bind mount. Success removes the interface directory.
func (a *Agent) detach(ctx context.Context, c *container, n *containerNetwork) error {
	confPath := a.networkConfigPath(c.id, n.name)
	if _, err := os.Stat(confPath); err != nil {
		a.log.Warn("skip detach since network config file does not exist", "container", c.id, "network", n.name)
		return nil
	}
	env := map[string]string{
		"CNI_COMMAND":     "DEL",
		"CNI_CONTAINERID": c.id,
		"CNI_PATH":        a.cfg.NetworkCNIPluginsDir,
		"CNI_IFNAME":      n.ifName,
		"PATH":            agentPATH(),
	}
	ns := a.nsPath(c.id)
	handle, err := isNetnsHandle(ns)
	if err != nil {
		return err
	}
	if handle {
		env["CNI_NETNS"] = ns
	}
	conf, err := readNetworkConfigJSON(n.name, confPath)
	if err != nil {
		return fmt.Errorf("Failed to parse CNI network configuration file: '%s': %w", confPath, err)
	}
	plugin, err := a.findPlugin(conf, n.name, confPath, "detach", c.id, false)
	if err != nil {
		return err
	}
	a.log.Info("invoking CNI plugin to detach container", "plugin", plugin, "container", c.id, "network", n.name)
	run, err := runPlugin(ctx, a.cfg.NetNS, plugin, env, confPath)
	if err != nil {
		return fmt.Errorf("Failed to execute the CNI plugin '%s': %w", plugin, err)
	}
	if run.exitCode == 0 {
		ifDir := a.ifDir(c.id, n.name, n.ifName)
		if err := os.RemoveAll(ifDir); err != nil {
			return fmt.Errorf("Failed to remove interface directory '%s': %w", ifDir, err)
		}
		return nil
	}
	return fmt.Errorf("The CNI plugin '%s' failed to detach container %s from CNI network '%s': stdout='%s', stderr='%s'",
		plugin, c.id, n.name, run.stdout, run.stderr)
}

// recoverNetworks rebuilds a container's networks from its directory
// (the isolator's _recover): one interface directory per network,
// network.info parsed when present. infos are the NetworkInfos the task
// asked for, when known.
func (a *Agent) recoverNetworks(cid string, infos []mesos.NetworkInfo) ([]*containerNetwork, error) {
	dir := a.containerDir(cid)
	names, err := subdirs(dir)
	if err != nil {
		return nil, fmt.Errorf("Failed to list CNI network names: Unable to list the CNI network information directory '%s': %w", dir, err)
	}
	var nets []*containerNetwork
	for _, name := range names {
		netDir := a.networkDir(cid, name)
		ifs, err := subdirs(netDir)
		if err != nil {
			return nil, fmt.Errorf("Failed to list interfaces for network '%s': Unable to list the CNI network directory '%s': %w", name, netDir, err)
		}
		if len(ifs) == 0 {
			continue
		}
		if len(ifs) != 1 {
			return nil, fmt.Errorf("More than one interfaces detected for network '%s'", name)
		}
		n := &containerNetwork{name: name, ifName: ifs[0], info: mesos.NetworkInfo{Name: name}}
		for _, ni := range infos {
			if ni.Name == name {
				n.info = ni
			}
		}
		infoPath := a.networkInfoPath(cid, name, n.ifName)
		if _, err := os.Stat(infoPath); err != nil {
			a.log.Warn("the checkpointed CNI plugin output does not exist", "path", infoPath, "container", cid)
			nets = append(nets, n)
			continue
		}
		data, err := os.ReadFile(infoPath)
		if err != nil {
			return nil, fmt.Errorf("Failed to read CNI network information file '%s': %w", infoPath, err)
		}
		res, err := mesos.ParseCNIResult(data)
		if err != nil {
			return nil, fmt.Errorf("Failed to parse CNI network information file '%s': %w", infoPath, err)
		}
		n.result = res
		nets = append(nets, n)
	}
	sortByIfName(nets)
	return nets, nil
}

// subdirs lists the directories in dir.
func subdirs(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		if st, err := os.Stat(filepath.Join(dir, e.Name())); err == nil && st.IsDir() {
			out = append(out, e.Name())
		}
	}
	return out, nil
}

// sortByIfName orders networks eth0, eth1, …, eth10.
func sortByIfName(nets []*containerNetwork) {
	key := func(s string) (int, string) {
		n, err := strconv.Atoi(strings.TrimPrefix(s, "eth"))
		if err != nil || !strings.HasPrefix(s, "eth") {
			return 1 << 30, s
		}
		return n, s
	}
	sort.SliceStable(nets, func(i, j int) bool {
		ni, si := key(nets[i].ifName)
		nj, sj := key(nets[j].ifName)
		if ni != nj {
			return ni < nj
		}
		return si < sj
	})
}
