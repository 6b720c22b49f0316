package cni

import (
	"maps"
	"slices"

	"github.com/weft-sdn/weft/internal/api"
)

// AttachRequest builds the agent request of an ADD for the container's
// interface ifName in netns.
//
// Network is the networks label, else the config's weft.network, else
// empty (the agent's default task network). Project is domain-name:
// project-name from the labels (defaults default-domain and
// default-project) when either label is present, else the config's
// weft.project.
func (c *NetConf) AttachRequest(containerID, ifName, netns string) api.AttachRequest {
	sel := c.Selection
	req := api.AttachRequest{
		ContainerID:    containerID,
		IfName:         ifName,
		Netns:          netns,
		CNINetwork:     c.Name,
		Network:        sel.Network,
		Project:        c.Project,
		Subnets:        slices.Clone(sel.Subnets),
		IPs:            slices.Clone(sel.IPs),
		Families:       slices.Clone(sel.Families),
		SecurityGroups: slices.Clone(sel.SecurityGroups),
		Labels:         maps.Clone(sel.Labels),
		MTU:            c.MTU,
	}
	if req.Network == "" {
		req.Network = c.Network
	}
	if sel.Domain != "" || sel.Project != "" {
		dom, proj := sel.Domain, sel.Project
		if dom == "" {
			dom = DefaultDomain
		}
		if proj == "" {
			proj = DefaultProjectName
		}
		req.Project = dom + ":" + proj
	}
	if req.Project == "" {
		req.Project = DefaultProject
	}
	return req
}

// DetachRequest builds the agent request of a DEL or CHECK. netns may be
// empty (DEL after a reboot).
func (c *NetConf) DetachRequest(containerID, ifName, netns string) api.DetachRequest {
	return api.DetachRequest{
		ContainerID: containerID,
		IfName:      ifName,
		Netns:       netns,
		CNINetwork:  c.Name,
	}
}

// GCRequest builds the agent request of a GC from cni.dev/valid-attachments.
func (c *NetConf) GCRequest() api.GCRequest {
	req := api.GCRequest{CNINetwork: c.Name, Valid: []api.DetachRequest{}}
	for _, a := range c.ValidAttachments {
		req.Valid = append(req.Valid, api.DetachRequest{
			ContainerID: a.ContainerID,
			IfName:      a.IfName,
			CNINetwork:  c.Name,
		})
	}
	return req
}

// resultVersion is the cniVersion of results and errors printed for a
// config of version v: 0.1.0 and 0.2.0 configs get the 0.2.0 shape (what
// Mesos parses), others their own version.
func resultVersion(v string) string {
	if v == "" || v == "0.1.0" || v == "0.2.0" {
		return "0.2.0"
	}
	return v
}

// isLegacyVersion reports whether v prints ip4/ip6 results.
func isLegacyVersion(v string) bool {
	return resultVersion(v) == "0.2.0"
}
