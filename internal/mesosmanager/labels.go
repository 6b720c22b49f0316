package mesosmanager

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"

	"github.com/weft-sdn/weft/internal/api"
)

// The Contrail Mesos labels of a Marathon network (networks[].labels, or
// ipAddress.labels of a ≤ 1.4 app), as the reference describes them
// (contrail-mesos.md §1.1). They travel to the CNI plugin in the
// NetworkInfo too; the agent uses networks, project-name, domain-name,
// network-subnets and security-groups at ADD, the manager checks them all
// and applies floating-ips.
const (
	// LabelNetworks names the network: a short name (in the project), an
	// fq_name domain:project:network, or a uuid. Absent or empty: the
	// default task network.
	LabelNetworks = "networks"
	// LabelProjectName is the project short names resolve in ("project"
	// or "domain:project"); default default-project.
	LabelProjectName = "project-name"
	// LabelDomainName is the project's domain; default default-domain.
	LabelDomainName = "domain-name"
	// LabelNetworkSubnets is a comma-separated list of CIDRs of the network
	// to allocate from.
	LabelNetworkSubnets = "network-subnets"
	// LabelFloatingIPs is a comma-separated list of "<pool fq_name>" or
	// "<pool fq_name>(<address>)"; a pool fq_name is
	// domain:project:network:pool.
	LabelFloatingIPs = "floating-ips"
	// LabelSecurityGroups is a comma-separated list of security group
	// fq_names (domain:project:name; a short name is in the project).
	LabelSecurityGroups = "security-groups"
)

// maxLabelItems bounds the items of one list label.
const maxLabelItems = 64

// LabelError is a label whose value cannot be used. It names the label.
type LabelError struct {
	Label  string
	Value  string
	Reason string
}

func (e *LabelError) Error() string {
	return fmt.Sprintf("label %q (value %q): %s", e.Label, e.Value, e.Reason)
}

func labelErr(label, value, format string, args ...any) *LabelError {
	return &LabelError{Label: label, Value: value, Reason: fmt.Sprintf(format, args...)}
}

// FloatingIPSpec is one item of the floating-ips label: a floating IP to
// take from Pool, with Address if one is given.
type FloatingIPSpec struct {
	// Pool is the pool's fq_name, domain:project:network:pool.
	Pool string
	// Address is the address asked for; invalid (zero) for any.
	Address netip.Addr
}

// String is the item in the label's own form, "pool(address)" or "pool":
// what the manager stores in Port.FloatingIPs.
func (f FloatingIPSpec) String() string {
	if f.Address.IsValid() {
		return f.Pool + "(" + f.Address.String() + ")"
	}
	return f.Pool
}

// NetworkSpec is what the labels of one managed network attachment ask
// for, validated. Fields of a bad label are left at their zero value; the
// label's error is reported beside the spec.
type NetworkSpec struct {
	// Network is the network the port must be on: an fq_name, a uuid, or
	// api.DefaultTaskNetwork when the networks label is absent or empty.
	// Empty when it cannot be known (a bad networks, project-name or
	// domain-name label).
	Network string
	// Project is the project fq_name (domain:project) short names resolve
	// in; empty when project-name or domain-name is bad.
	Project string
	// Subnets are the network-subnets CIDRs.
	Subnets []netip.Prefix
	// HasFloatingIPs tells that the floating-ips label is present and
	// valid; FloatingIPs are its items.
	HasFloatingIPs bool
	FloatingIPs    []FloatingIPSpec
	// HasSecurityGroups tells that the security-groups label is present
	// and valid; SecurityGroups are its fq_names, without duplicates
	// (possibly none: an empty label asks for no security group).
	HasSecurityGroups bool
	SecurityGroups    []string
	// Labels are all labels as given.
	Labels map[string]string
}

// ParseNetworkLabels validates the labels of a network attachment. Every
// label is checked on its own: a bad one gives a *LabelError and leaves
// the others usable. Labels the manager does not know are kept in
// Labels and not checked.
func ParseNetworkLabels(labels map[string]string) (NetworkSpec, []*LabelError) {
	spec := NetworkSpec{Labels: maps.Clone(labels)}
	if spec.Labels == nil {
		spec.Labels = map[string]string{}
	}
	var errs []*LabelError
	add := func(e *LabelError) {
		if e != nil {
			errs = append(errs, e)
		}
	}

	project, perr := ParseProject(labels)
	add(perr)
	if perr == nil {
		spec.Project = project
	}
	if v, ok := labels[LabelNetworks]; ok {
		n, err := ParseNetworkRef(v, project)
		add(err)
		// A short name resolved in a project that is not known is no
		// answer: leave Network empty rather than guess.
		if err == nil && (perr == nil || !isShortName(v)) {
			spec.Network = n
		}
	} else {
		spec.Network = api.DefaultTaskNetwork
	}
	if v, ok := labels[LabelNetworkSubnets]; ok {
		s, err := ParseSubnets(v)
		add(err)
		spec.Subnets = s
	}
	if v, ok := labels[LabelFloatingIPs]; ok {
		f, err := ParseFloatingIPs(v)
		add(err)
		if err == nil {
			spec.HasFloatingIPs, spec.FloatingIPs = true, f
		}
	}
	if v, ok := labels[LabelSecurityGroups]; ok {
		sg, err := ParseSecurityGroups(v, project)
		add(err)
		// As for networks: short names need a known project.
		if err == nil && (perr == nil || !slices.ContainsFunc(strings.Split(v, ","), isShortName)) {
			spec.HasSecurityGroups, spec.SecurityGroups = true, sg
		}
	}
	return spec, errs
}

// ParseProject returns the project fq_name (domain:project) the
// project-name and domain-name labels give, with the defaults
// default-domain and default-project. project-name may be
// "domain:project", which must then agree with domain-name. On error the
// default project is returned with the error.
func ParseProject(labels map[string]string) (string, *LabelError) {
	domain := api.DefaultDomain
	if v, ok := labels[LabelDomainName]; ok {
		d := strings.TrimSpace(v)
		if d != "" {
			if err := api.ValidName(d); err != nil {
				return api.DefaultProject, labelErr(LabelDomainName, v, "not a domain name: %v", err)
			}
			domain = d
		}
	}
	v, ok := labels[LabelProjectName]
	p := strings.TrimSpace(v)
	if !ok || p == "" {
		return domain + ":" + strings.TrimPrefix(api.DefaultProject, api.DefaultDomain+":"), nil
	}
	if dom, proj, found := strings.Cut(p, ":"); found {
		if err := api.ValidName(dom); err != nil {
			return api.DefaultProject, labelErr(LabelProjectName, v, "must be a project name or domain:project; the domain part %v", err)
		}
		if err := api.ValidName(proj); err != nil {
			return api.DefaultProject, labelErr(LabelProjectName, v, "must be a project name or domain:project; the project part %v", err)
		}
		if d, given := labels[LabelDomainName]; given && strings.TrimSpace(d) != "" && strings.TrimSpace(d) != dom {
			return api.DefaultProject, labelErr(LabelProjectName, v, "domain %q contradicts label %q=%q", dom, LabelDomainName, d)
		}
		return dom + ":" + proj, nil
	}
	if err := api.ValidName(p); err != nil {
		return api.DefaultProject, labelErr(LabelProjectName, v, "not a project name: %v", err)
	}
	return domain + ":" + p, nil
}

// ParseNetworkRef resolves a networks label value: empty is the default
// task network, a uuid or an fq_name domain:project:network stays as it
// is, a short name resolves in project.
func ParseNetworkRef(v, project string) (string, *LabelError) {
	n := strings.TrimSpace(v)
	switch {
	case n == "":
		return api.DefaultTaskNetwork, nil
	case strings.Contains(n, ","):
		return "", labelErr(LabelNetworks, v, "names more than one network; one Marathon network attaches one interface")
	case api.IsUUID(n):
		return strings.ToLower(n), nil
	case strings.Contains(n, ":"):
		parts := strings.Split(n, ":")
		if len(parts) != 3 {
			return "", labelErr(LabelNetworks, v, "must be a network name or an fq_name domain:project:network, not %d parts", len(parts))
		}
		for i, p := range parts {
			if err := api.ValidName(p); err != nil {
				return "", labelErr(LabelNetworks, v, "part %d of the fq_name %v", i+1, err)
			}
		}
		return n, nil
	}
	if err := api.ValidName(n); err != nil {
		return "", labelErr(LabelNetworks, v, "not a network name: %v", err)
	}
	if project == "" {
		project = api.DefaultProject
	}
	return project + ":" + n, nil
}

// ParseSubnets parses a network-subnets value: comma-separated CIDRs
// without host bits. Empty items are skipped.
func ParseSubnets(v string) ([]netip.Prefix, *LabelError) {
	var out []netip.Prefix
	for item := range strings.SplitSeq(v, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		if len(out) == maxLabelItems {
			return nil, labelErr(LabelNetworkSubnets, v, "more than %d subnets", maxLabelItems)
		}
		p, err := netip.ParsePrefix(item)
		if err != nil {
			return nil, labelErr(LabelNetworkSubnets, v, "%q is not a CIDR", item)
		}
		if p.Addr().Zone() != "" {
			return nil, labelErr(LabelNetworkSubnets, v, "%q must not have a zone", item)
		}
		if p.Masked() != p {
			return nil, labelErr(LabelNetworkSubnets, v, "%q has host bits set (did you mean %s?)", item, p.Masked())
		}
		out = append(out, p)
	}
	return out, nil
}

// ParseFloatingIPs parses a floating-ips value: comma-separated items
// "pool" or "pool(address)", pool being a floating IP pool's fq_name
// domain:project:network:pool. Empty items are skipped; the same address
// may not be asked for twice.
func ParseFloatingIPs(v string) ([]FloatingIPSpec, *LabelError) {
	var out []FloatingIPSpec
	seen := map[netip.Addr]bool{}
	for item := range strings.SplitSeq(v, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		if len(out) == maxLabelItems {
			return nil, labelErr(LabelFloatingIPs, v, "more than %d floating IPs", maxLabelItems)
		}
		pool, addrText := item, ""
		if i := strings.IndexByte(item, '('); i >= 0 {
			if !strings.HasSuffix(item, ")") || strings.Count(item, "(") != 1 || strings.Count(item, ")") != 1 {
				return nil, labelErr(LabelFloatingIPs, v, "%q must be pool or pool(address)", item)
			}
			pool, addrText = strings.TrimSpace(item[:i]), strings.TrimSpace(item[i+1:len(item)-1])
			if addrText == "" {
				return nil, labelErr(LabelFloatingIPs, v, "%q has empty parentheses; leave them out to take any address", item)
			}
		} else if strings.ContainsRune(item, ')') {
			return nil, labelErr(LabelFloatingIPs, v, "%q must be pool or pool(address)", item)
		}
		parts := strings.Split(pool, ":")
		if len(parts) != 4 {
			return nil, labelErr(LabelFloatingIPs, v, "pool %q must be an fq_name domain:project:network:pool", pool)
		}
		for i, p := range parts {
			if err := api.ValidName(p); err != nil {
				return nil, labelErr(LabelFloatingIPs, v, "pool %q: part %d %v", pool, i+1, err)
			}
		}
		f := FloatingIPSpec{Pool: pool}
		if addrText != "" {
			a, err := api.ParseAddr(addrText)
			if err != nil {
				return nil, labelErr(LabelFloatingIPs, v, "%q is not an IP address", addrText)
			}
			if seen[a] {
				return nil, labelErr(LabelFloatingIPs, v, "address %s is asked for twice", a)
			}
			seen[a] = true
			f.Address = a
		}
		out = append(out, f)
	}
	return out, nil
}

// ParseSecurityGroups parses a security-groups value: comma-separated
// security group fq_names domain:project:name, or short names in project.
// Duplicates are dropped; an empty value gives none.
func ParseSecurityGroups(v, project string) ([]string, *LabelError) {
	if project == "" {
		project = api.DefaultProject
	}
	out := []string{}
	for item := range strings.SplitSeq(v, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		if len(out) == maxLabelItems {
			return nil, labelErr(LabelSecurityGroups, v, "more than %d security groups", maxLabelItems)
		}
		fq := item
		if strings.Contains(item, ":") {
			parts := strings.Split(item, ":")
			if len(parts) != 3 {
				return nil, labelErr(LabelSecurityGroups, v, "%q must be a security group fq_name domain:project:name", item)
			}
			for i, p := range parts {
				if err := api.ValidName(p); err != nil {
					return nil, labelErr(LabelSecurityGroups, v, "%q: part %d %v", item, i+1, err)
				}
			}
		} else {
			if err := api.ValidName(item); err != nil {
				return nil, labelErr(LabelSecurityGroups, v, "%q is not a security group name: %v", item, err)
			}
			fq = project + ":" + item
		}
		if !slices.Contains(out, fq) {
			out = append(out, fq)
		}
	}
	return out, nil
}

// isShortName tells whether a label item is a bare name that resolves in
// the project (not empty, not an fq_name, not a uuid).
func isShortName(v string) bool {
	v = strings.TrimSpace(v)
	return v != "" && !strings.Contains(v, ":") && !api.IsUUID(v)
}
