package weftctl

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"strings"

	"github.com/weft-sdn/weft/internal/overlay"
)

// runOverlayState prints the overlay master's state: per node and overlay
// the VTEP, the node's subnet, its halves and the status; -o json prints
// DC/OS's /overlay-master/state document as the controller serves it.
func runOverlayState(ctx context.Context, c *cli, _ []string) error {
	raw, err := c.client.OverlayState(ctx)
	if err != nil {
		return err
	}
	return c.renderOverlayState(raw)
}

func (c *cli) renderOverlayState(raw json.RawMessage) error {
	if c.output == outputJSON {
		return c.writeBody(raw, "overlay state")
	}
	st, err := overlay.DecodeState(raw)
	if err != nil {
		return fmt.Errorf("decode overlay state: %w", err)
	}
	t := c.table("AGENT", "OVERLAY", "VTEP", "VTEP_MAC", "SUBNET", "MESOS_HALF", "DOCKER_HALF", "STATUS")
	for _, a := range st.Agents {
		for _, o := range a.Overlays {
			var vtep, mac string
			if o.Backend != nil {
				vtep = join(o.Backend.VXLAN.VTEPIP, o.Backend.VXLAN.VTEPIP6)
				mac = o.Backend.VXLAN.VTEPMAC
			}
			status := ""
			if o.State != nil {
				status = string(o.State.Status)
				if o.State.Error != "" {
					status += ": " + o.State.Error
				}
			}
			t.row(a.IP, o.Info.Name, vtep, mac, join(o.Subnet, o.Subnet6), half(o.MesosBridge), half(o.DockerBridge), status)
		}
	}
	return t.flush()
}

func half(b *overlay.BridgeInfo) string {
	if b == nil {
		return ""
	}
	return b.Name + " " + join(b.IP, b.IP6)
}

func join(parts ...string) string {
	var out []string
	for _, p := range parts {
		if p != "" {
			out = append(out, p)
		}
	}
	return strings.Join(out, ",")
}

// runOverlayUsage prints each overlay's fill level.
func runOverlayUsage(ctx context.Context, c *cli, _ []string) error {
	raw, err := c.client.OverlayUsage(ctx)
	if err != nil {
		return err
	}
	if c.output == outputJSON {
		return c.writeBody(raw, "overlay usage")
	}
	// The columns the table shows, of the controller's OverlayUsage.
	var body struct {
		Overlays []struct {
			Name         string   `json:"name"`
			Enabled      bool     `json:"enabled"`
			Subnet       string   `json:"subnet"`
			Prefix       int      `json:"prefix"`
			Subnets      uint64   `json:"subnets"`
			SubnetsUsed  int      `json:"subnets_used"`
			Subnet6      string   `json:"subnet6"`
			Prefix6      int      `json:"prefix6"`
			Subnets6     uint64   `json:"subnets6"`
			Subnets6Used int      `json:"subnets6_used"`
			Exhausted    bool     `json:"exhausted"`
			FailedNodes  []string `json:"failed_nodes"`
		} `json:"overlays"`
	}
	if err := json.Unmarshal(raw, &body); err != nil {
		return fmt.Errorf("decode overlay usage: %w", err)
	}
	t := c.table("OVERLAY", "SUBNET", "USED", "SUBNET6", "USED6", "EXHAUSTED", "FAILED_NODES")
	for _, o := range body.Overlays {
		used, used6 := "", ""
		if o.Subnet != "" {
			used = fmt.Sprintf("%d/%d of /%d", o.SubnetsUsed, o.Subnets, o.Prefix)
		}
		if o.Subnet6 != "" {
			used6 = fmt.Sprintf("%d/%d of /%d", o.Subnets6Used, o.Subnets6, o.Prefix6)
		}
		name := o.Name
		if !o.Enabled {
			name += " (disabled)"
		}
		t.row(name, o.Subnet, used, o.Subnet6, used6, fmt.Sprint(o.Exhausted), strings.Join(o.FailedNodes, "; "))
	}
	return t.flush()
}

// runOverlayDeleteAgents frees the overlay assignments of agents that are
// gone, by underlay address, and prints the new state.
func runOverlayDeleteAgents(ctx context.Context, c *cli, args []string) error {
	raw, err := c.client.DeleteOverlayAgents(ctx, args)
	if err != nil {
		return err
	}
	return c.renderOverlayState(raw)
}

// overlayCommands are the overlay master's commands.
func overlayCommands() []command {
	return []command{{
		path:    "overlay state",
		summary: "Show each node's VTEP, overlay subnets, halves and status (-o json: DC/OS's /overlay-master/state).",
		setup:   func(*flag.FlagSet) runFunc { return runOverlayState },
	}, {
		path:    "overlay usage",
		summary: "Show how full each overlay is, and the nodes whose assignment failed.",
		setup:   func(*flag.FlagSet) runFunc { return runOverlayUsage },
	}, {
		path:     "overlay delete-agents",
		synopsis: "IP...",
		summary:  "Delete the nodes with these underlay addresses and free their VTEPs and subnets.",
		minArgs:  1,
		maxArgs:  -1,
		setup:    func(*flag.FlagSet) runFunc { return runOverlayDeleteAgents },
	}}
}
