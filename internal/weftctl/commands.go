package weftctl

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/url"
	"strings"

	"github.com/weft-sdn/weft/internal/api"
)

// URL collections used by the commands.
const (
	pluralNetworks       = "networks"
	pluralPorts          = "ports"
	pluralIPReservations = "ip-reservations"
	pluralNodes          = "nodes"
)

// commands is the command tree, in the order of the usage text.
var commands []command

func init() {
	commands = []command{{
		path:     "network create",
		synopsis: "NAME --subnet CIDR [--subnet CIDR]... [--gateway ADDR]... [--block-prefix N]... [--project FQ] [--kind virtual|overlay] [--vni N]",
		summary:  "Create a network. NAME may be DOMAIN:PROJECT:NAME; the i-th --gateway and --block-prefix apply to the i-th --subnet.",
		minArgs:  1, maxArgs: 1,
		setup: setupNetworkCreate,
	}, {
		path:    "network list",
		summary: "List the networks.",
		setup:   func(*flag.FlagSet) runFunc { return runNetworkList },
	}, {
		path:     "network show",
		synopsis: "NAME|FQ|UUID [--project FQ]",
		summary:  "Show one network.",
		minArgs:  1, maxArgs: 1,
		setup: setupNetworkShow,
	}, {
		path:     "network delete",
		synopsis: "NAME|FQ|UUID [--project FQ]",
		summary:  "Delete one network.",
		minArgs:  1, maxArgs: 1,
		setup: setupNetworkDelete,
	}, {
		path:     "ip allocate",
		synopsis: "NETWORK --owner UID [--ip ADDR] [--family ipv4|ipv6|dual] [--node NODE] [--label K=V]... [--project FQ]",
		summary:  "Reserve an address (or one per family) in a network for an owner.",
		minArgs:  1, maxArgs: 1,
		setup: setupIPAllocate,
	}, {
		path:     "ip release",
		synopsis: "ADDR --network NETWORK | --owner UID [--network NETWORK] [--project FQ]",
		summary:  "Release one address of a network, or every address of an owner.",
		minArgs:  0, maxArgs: 1,
		setup: setupIPRelease,
	}, {
		path:     "ip list",
		synopsis: "[--network NETWORK] [--project FQ]",
		summary:  "List reserved addresses.",
		setup:    setupIPList,
	}, {
		path:     "port list",
		synopsis: "[--network NETWORK] [--project FQ]",
		summary:  "List ports (container interfaces).",
		setup:    setupPortList,
	}, {
		path:    "node list",
		summary: "List nodes (agents).",
		setup:   func(*flag.FlagSet) runFunc { return runNodeList },
	}, {
		path:    "version",
		summary: "Print the client's version and the controller's.",
		setup:   func(*flag.FlagSet) runFunc { return runVersion },
	}}
	commands = append(commands, overlayCommands()...)
}

// projectFlag defines --project on fs.
func projectFlag(fs *flag.FlagSet) *string {
	return fs.String("project", api.DefaultProject, "project `FQ` (DOMAIN:PROJECT) in which a short network NAME is looked up")
}

// networkFlag defines --network on fs.
func networkFlag(fs *flag.FlagSet, usage string) *string {
	return fs.String("network", "", usage)
}

// networkRef turns a user's network reference into what the API takes: a
// uuid or a fq_name; a short NAME is completed with project.
func networkRef(cmd, ref, project string) (string, error) {
	switch {
	case ref == "":
		return "", usagef(cmd, "empty network name")
	case api.IsUUID(ref):
		return ref, nil
	case strings.Contains(ref, ":"):
		if !validFQName(ref, 3) {
			return "", usagef(cmd, "network %q: want NAME, DOMAIN:PROJECT:NAME or UUID", ref)
		}
		return ref, nil
	}
	if !validFQName(project, 2) {
		return "", usagef(cmd, "--project %q: want DOMAIN:PROJECT", project)
	}
	return project + ":" + ref, nil
}

// validFQName reports whether fq has n non-empty colon-separated names.
func validFQName(fq string, n int) bool {
	parts := strings.Split(fq, ":")
	if len(parts) != n {
		return false
	}
	for _, p := range parts {
		if p == "" {
			return false
		}
	}
	return true
}

func flagWasSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) {
		if f.Name == name {
			set = true
		}
	})
	return set
}

func setupNetworkCreate(fs *flag.FlagSet) runFunc {
	const cmd = "network create"
	var subnets, gateways stringList
	var prefixes intList
	fs.Var(&subnets, "subnet", "subnet `CIDR`, IPv4 or IPv6 (repeatable, at least one)")
	fs.Var(&gateways, "gateway", "gateway `ADDR` of the i-th --subnet (repeatable; empty or absent: the controller's default, the first address)")
	fs.Var(&prefixes, "block-prefix", "prefix length `N` of the per-node blocks of the i-th --subnet (repeatable; absent: /26 for IPv4, /122 for IPv6)")
	project := projectFlag(fs)
	kind := fs.String("kind", string(api.NetworkVirtual), "network `KIND`: virtual or overlay")
	vni := fs.Int("vni", 0, "VXLAN network identifier `N` (absent: allocated by the controller)")
	return func(ctx context.Context, c *cli, args []string) error {
		n := api.Network{Meta: api.Meta{Kind: api.KindNetwork}}
		name := args[0]
		if strings.Contains(name, ":") {
			if !validFQName(name, 3) {
				return usagef(cmd, "network name %q: want NAME or DOMAIN:PROJECT:NAME", name)
			}
			i := strings.LastIndex(name, ":")
			n.Name, n.Parent = name[i+1:], name[:i]
			if flagWasSet(fs, "project") && n.Parent != *project {
				return usagef(cmd, "network %q is not in --project %q", name, *project)
			}
		} else {
			if !validFQName(*project, 2) {
				return usagef(cmd, "--project %q: want DOMAIN:PROJECT", *project)
			}
			n.Name, n.Parent = name, *project
		}
		n.FQName = n.Parent + ":" + n.Name
		if len(subnets) == 0 {
			return usagef(cmd, "at least one --subnet is required")
		}
		if len(gateways) > len(subnets) {
			return usagef(cmd, "%d --gateway for %d --subnet: the i-th --gateway applies to the i-th --subnet", len(gateways), len(subnets))
		}
		if len(prefixes) > len(subnets) {
			return usagef(cmd, "%d --block-prefix for %d --subnet: the i-th --block-prefix applies to the i-th --subnet", len(prefixes), len(subnets))
		}
		for i, cidr := range subnets {
			s := api.Subnet{CIDR: cidr}
			if i < len(gateways) {
				s.Gateway = gateways[i]
			}
			if i < len(prefixes) {
				s.BlockPrefix = prefixes[i]
			}
			n.Subnets = append(n.Subnets, s)
		}
		switch api.NetworkKind(*kind) {
		case api.NetworkVirtual, api.NetworkOverlay:
			n.NetworkKind = api.NetworkKind(*kind)
		default:
			return usagef(cmd, "--kind %q: want virtual or overlay", *kind)
		}
		if *vni < 0 {
			return usagef(cmd, "--vni %d: want a positive number", *vni)
		}
		n.VNI = *vni
		var raw json.RawMessage
		if err := c.client.Create(ctx, pluralNetworks, n, &raw); err != nil {
			return err
		}
		return c.renderNetworks([]json.RawMessage{raw}, false)
	}
}

func runNetworkList(ctx context.Context, c *cli, _ []string) error {
	l, err := c.client.List(ctx, pluralNetworks, nil)
	if err != nil {
		return err
	}
	return c.renderNetworks(l.Items, true)
}

// getNetwork reads the network ref names, as the controller sent it.
func (c *cli) getNetwork(ctx context.Context, cmd, ref, project string) (json.RawMessage, api.Network, error) {
	var raw json.RawMessage
	var n api.Network
	ref, err := networkRef(cmd, ref, project)
	if err != nil {
		return nil, n, err
	}
	if api.IsUUID(ref) {
		err = c.client.Get(ctx, pluralNetworks, ref, &raw)
	} else {
		err = c.client.GetByFQName(ctx, pluralNetworks, ref, &raw)
	}
	if err != nil {
		return nil, n, err
	}
	if err := json.Unmarshal(raw, &n); err != nil {
		return nil, n, fmt.Errorf("decode network %s: %w", ref, err)
	}
	return raw, n, nil
}

func setupNetworkShow(fs *flag.FlagSet) runFunc {
	project := projectFlag(fs)
	return func(ctx context.Context, c *cli, args []string) error {
		raw, n, err := c.getNetwork(ctx, "network show", args[0], *project)
		if err != nil {
			return err
		}
		if c.output == outputJSON {
			return c.writeJSON(raw)
		}
		return c.showNetwork(n)
	}
}

func setupNetworkDelete(fs *flag.FlagSet) runFunc {
	project := projectFlag(fs)
	return func(ctx context.Context, c *cli, args []string) error {
		raw, n, err := c.getNetwork(ctx, "network delete", args[0], *project)
		if err != nil {
			return err
		}
		if n.UUID == "" {
			return fmt.Errorf("network %s has no uuid", args[0])
		}
		if err := c.client.Delete(ctx, pluralNetworks, n.UUID); err != nil {
			return err
		}
		if c.output == outputJSON {
			return c.writeJSON(raw)
		}
		_, err = fmt.Fprintf(c.stdout, "network %s deleted (uuid %s)\n", n.FQName, n.UUID)
		return err
	}
}

func setupIPAllocate(fs *flag.FlagSet) runFunc {
	const cmd = "ip allocate"
	var labels stringList
	owner := fs.String("owner", "", "`UID` of the holder of the address: a container id, a task id, any string (required)")
	ip := fs.String("ip", "", "the exact address `ADDR` to reserve (absent: the next free one)")
	family := fs.String("family", "", "address `FAMILY`: ipv4, ipv6 or dual (absent: ipv4, or the family of --ip)")
	node := fs.String("node", "", "allocate from the address blocks of node `NODE`")
	fs.Var(&labels, "label", "label `K=V` of the reservation (repeatable)")
	project := projectFlag(fs)
	return func(ctx context.Context, c *cli, args []string) error {
		network, err := networkRef(cmd, args[0], *project)
		if err != nil {
			return err
		}
		if *owner == "" {
			return usagef(cmd, "--owner is required")
		}
		switch *family {
		case "", "ipv4", "ipv6", "dual":
		default:
			return usagef(cmd, "--family %q: want ipv4, ipv6 or dual", *family)
		}
		req := api.AllocateRequest{Network: network, Owner: *owner, IP: *ip, Family: *family, Node: *node}
		for _, kv := range labels {
			k, v, ok := strings.Cut(kv, "=")
			if !ok || k == "" {
				return usagef(cmd, "--label %q: want KEY=VALUE", kv)
			}
			if req.Labels == nil {
				req.Labels = map[string]string{}
			}
			if _, dup := req.Labels[k]; dup {
				return usagef(cmd, "--label %q: key %q given twice", kv, k)
			}
			req.Labels[k] = v
		}
		resp, err := c.client.Allocate(ctx, req)
		if err != nil {
			return err
		}
		return c.renderReservations(resp.Reservations)
	}
}

func setupIPRelease(fs *flag.FlagSet) runFunc {
	const cmd = "ip release"
	owner := fs.String("owner", "", "release every address held by `UID`")
	network := networkFlag(fs, "`NETWORK` of ADDR (required with ADDR), or the only network in which to release --owner's addresses")
	project := projectFlag(fs)
	return func(ctx context.Context, c *cli, args []string) error {
		var req api.ReleaseRequest
		if len(args) == 1 {
			req.IP = args[0]
			if *network == "" {
				return usagef(cmd, "releasing address %s needs --network", args[0])
			}
		} else if *owner == "" {
			return usagef(cmd, "give an ADDR with --network, or --owner")
		}
		req.Owner = *owner
		if *network != "" {
			ref, err := networkRef(cmd, *network, *project)
			if err != nil {
				return err
			}
			req.Network = ref
		}
		resp, err := c.client.Release(ctx, req)
		if err != nil {
			return err
		}
		return c.renderReservations(resp.Released)
	}
}

// listFiltered lists plural, limited to one network when network is set.
func (c *cli) listFiltered(ctx context.Context, cmd, plural, network, project string) (api.List, error) {
	var q url.Values
	if network != "" {
		ref, err := networkRef(cmd, network, project)
		if err != nil {
			return api.List{}, err
		}
		q = url.Values{"network": {ref}}
	}
	return c.client.List(ctx, plural, q)
}

func setupIPList(fs *flag.FlagSet) runFunc {
	network := networkFlag(fs, "list only the addresses of `NETWORK`")
	project := projectFlag(fs)
	return func(ctx context.Context, c *cli, _ []string) error {
		l, err := c.listFiltered(ctx, "ip list", pluralIPReservations, *network, *project)
		if err != nil {
			return err
		}
		if c.output == outputJSON {
			return c.writeJSON(items(l.Items))
		}
		rs, err := decodeItems[api.IPReservation](l.Items, pluralIPReservations)
		if err != nil {
			return err
		}
		return c.renderReservations(rs)
	}
}

func setupPortList(fs *flag.FlagSet) runFunc {
	network := networkFlag(fs, "list only the ports of `NETWORK`")
	project := projectFlag(fs)
	return func(ctx context.Context, c *cli, _ []string) error {
		l, err := c.listFiltered(ctx, "port list", pluralPorts, *network, *project)
		if err != nil {
			return err
		}
		if c.output == outputJSON {
			return c.writeJSON(items(l.Items))
		}
		ports, err := decodeItems[api.Port](l.Items, pluralPorts)
		if err != nil {
			return err
		}
		t := c.table("NAME", "NETWORK", "NODE", "CONTAINER", "IPS")
		for _, p := range ports {
			ips := make([]string, len(p.IPs))
			for i, ip := range p.IPs {
				ips[i] = ip.Address
			}
			t.row(p.Name, p.Network, p.Node, p.ContainerID, strings.Join(ips, ","))
		}
		return t.flush()
	}
}

func runNodeList(ctx context.Context, c *cli, _ []string) error {
	l, err := c.client.List(ctx, pluralNodes, nil)
	if err != nil {
		return err
	}
	if c.output == outputJSON {
		return c.writeJSON(items(l.Items))
	}
	nodes, err := decodeItems[api.Node](l.Items, pluralNodes)
	if err != nil {
		return err
	}
	t := c.table("NAME", "UNDERLAY", "VTEP_IP", "VTEP_MAC", "STATUS")
	for _, n := range nodes {
		t.row(n.Name, n.UnderlayIP, n.VTEPIP, n.VTEPMAC, n.Status)
	}
	return t.flush()
}

// versions is the JSON output of "weftctl version".
type versions struct {
	Client api.Version  `json:"client"`
	Server *api.Version `json:"server,omitempty"`
}

func runVersion(ctx context.Context, c *cli, _ []string) error {
	v := versions{Client: api.Version{Version: clientVersion(), GoVersion: goVersion}}
	sv, err := c.client.Version(ctx)
	if err == nil {
		v.Server = &sv
	}
	if c.output == outputJSON {
		if err != nil {
			return err
		}
		return c.writeJSON(v)
	}
	fmt.Fprintf(c.stdout, "Client: %s (%s)\n", v.Client.Version, v.Client.GoVersion)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(c.stdout, "Server: %s (%s)\n", sv.Version, sv.GoVersion)
	return err
}
