package mesosmanager

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/weft-sdn/weft/internal/api"
	"github.com/weft-sdn/weft/internal/marathon"
)

// Bounds of the reconciler's retries and caches.
const (
	maxRetryDelay    = time.Minute
	nodeCacheTTL     = 10 * time.Second
	existsCacheTTL   = 10 * time.Second
	maxUpdateRetries = 4
	// maxPortWaits bounds the retries of a task whose port is not in the
	// controller (about ten minutes with the default retry interval);
	// then the next status update or resync tries again.
	maxPortWaits = 12
	// tombstoneTTL is how long the manager remembers a task whose ports
	// it released for being unreachable, to notice its return.
	tombstoneTTL = time.Hour
)

// Reconciler turns Marathon's state into port metadata and releases in the
// controller. Its methods are called from one goroutine (the leader loop);
// the introspection accessors may be called from any.
type Reconciler struct {
	cfg     Config
	ctrl    Controller
	src     MarathonSource
	log     *slog.Logger
	clock   Clock
	m       *metrics
	managed map[string]bool

	// containerOf returns the Mesos container id of a task id, "" when
	// unknown; nil without a Mesos master.
	containerOf func(taskID string) string

	mu          sync.Mutex
	specs       map[string]*runSpec
	insts       map[string]*instance
	ports       map[string]PortView
	problems    map[problemKey]*Problem
	sync        SyncState
	last        LastEvent
	nodes       nodeIndex
	existsCache map[string]existsEntry
	// released remembers when tasks had their ports released for being
	// unreachable too long, to notice their return.
	released map[string]time.Time
}

type nodeIndex struct {
	byName map[string]bool
	byIP   map[string]string
	at     time.Time
}

type existsEntry struct {
	ok bool
	at time.Time
}

// newReconciler returns a Reconciler with an empty cache.
func newReconciler(cfg Config, ctrl Controller, src MarathonSource, log *slog.Logger, clock Clock, m *metrics) *Reconciler {
	r := &Reconciler{cfg: cfg, ctrl: ctrl, src: src, log: log, clock: clock, m: m, managed: map[string]bool{}}
	for _, n := range cfg.Networks {
		r.managed[n] = true
	}
	r.reset()
	return r
}

// reset forgets everything cached (leadership lost: the next leader term
// starts from a resync).
func (r *Reconciler) reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.specs = map[string]*runSpec{}
	r.insts = map[string]*instance{}
	r.ports = map[string]PortView{}
	r.problems = map[problemKey]*Problem{}
	r.existsCache = map[string]existsEntry{}
	r.released = map[string]time.Time{}
	r.nodes = nodeIndex{}
	leader := r.sync.Leader
	r.sync = SyncState{Leader: leader}
	r.m.problems.Set(0)
	r.m.pending.Set(0)
}

// --- cache access (copy on write) ---

func (r *Reconciler) getInst(key string) *instance {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.insts[key]
}

// putInst stores i in place of the instance with its key. The count of
// pending instances moves by the difference alone: a resync stores every
// instance, so a recount here would make it quadratic.
func (r *Reconciler) putInst(i *instance) {
	i.Updated = r.clock.Now()
	r.mu.Lock()
	r.setPendingLocked(r.sync.Pending - r.insts[i.Key].pending() + i.pending())
	r.insts[i.Key] = i
	r.mu.Unlock()
}

func (r *Reconciler) dropInst(key string) {
	r.mu.Lock()
	r.setPendingLocked(r.sync.Pending - r.insts[key].pending())
	delete(r.insts, key)
	for k := range r.problems {
		if k.task == key {
			delete(r.problems, k)
		}
	}
	r.m.problems.Set(float64(len(r.problems)))
	r.mu.Unlock()
}

// updatePendingLocked counts the pending instances again, after r.insts
// was replaced as a whole.
func (r *Reconciler) updatePendingLocked() {
	n := 0
	for _, i := range r.insts {
		n += i.pending()
	}
	r.setPendingLocked(n)
}

func (r *Reconciler) setPendingLocked(n int) {
	r.sync.Pending = n
	r.m.pending.Set(float64(n))
}

func (r *Reconciler) instList() []*instance {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]*instance, 0, len(r.insts))
	for _, k := range sortedKeys(r.insts) {
		out = append(out, r.insts[k])
	}
	return out
}

func (r *Reconciler) getSpec(id string) *runSpec {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.specs[id]
}

func (r *Reconciler) putSpec(s *runSpec) {
	r.mu.Lock()
	r.specs[s.ID] = s
	r.mu.Unlock()
}

func (r *Reconciler) notePort(p *api.Port) {
	r.mu.Lock()
	r.ports[p.UUID] = viewOf(p)
	r.mu.Unlock()
}

func (r *Reconciler) forgetPort(uuid string) {
	r.mu.Lock()
	delete(r.ports, uuid)
	r.mu.Unlock()
}

// --- run specs ---

// managedName returns the Marathon network name of an attachment and
// whether the manager looks after it.
func (r *Reconciler) managedName(a marathon.NetworkAttachment) (string, bool) {
	if !a.Managed() {
		return "", false
	}
	name := a.Name
	if name == "" {
		name = r.cfg.DefaultNetwork
	}
	return name, name != "" && r.managed[name]
}

func (r *Reconciler) buildSpec(id, version string, kind marathon.InstanceKind, nets []marathon.NetworkAttachment) *runSpec {
	s := &runSpec{ID: id, Kind: kind, Version: version}
	for _, a := range nets {
		if a.Mode != marathon.NetworkModeContainer {
			continue
		}
		name, ok := r.managedName(a)
		if name == "" {
			name = "(default)"
		}
		s.Networks = append(s.Networks, name)
		if !ok {
			continue
		}
		spec, errs := ParseNetworkLabels(a.Labels)
		s.Managed = append(s.Managed, attachment{Name: name, Source: a.Source, Spec: spec, Errors: errs})
	}
	return s
}

func (r *Reconciler) appSpec(app *marathon.App) *runSpec {
	return r.buildSpec(app.ID, app.Version, marathon.KindAppTask, marathon.AppNetworks(app))
}

func (r *Reconciler) podSpec(ps *marathon.PodStatus) *runSpec {
	version := ""
	if ps.Spec != nil {
		version = ps.Spec.Version
	}
	return r.buildSpec(ps.ID, version, marathon.KindPodInstance, marathon.PodNetworks(ps.Spec))
}

// instanceFrom turns a snapshot instance into the manager's form.
func instanceFrom(si *marathon.Instance) *instance {
	i := &instance{
		Key: si.Key, Kind: si.Kind, AppID: si.RunSpecID, InstanceID: si.InstanceID,
		Host: si.Host, AgentID: si.AgentID, State: si.State, Addresses: slices.Clone(si.Addresses),
	}
	if len(si.TaskIDs) > 0 {
		i.TaskID = si.TaskIDs[0]
	}
	if si.Kind == marathon.KindPodInstance && si.PodInstance != nil && i.TaskID == "" {
		i.TaskID = si.InstanceID
	}
	return i
}

// --- nodes ---

// nodeName maps a Marathon task host to a Weft node name: a node of that
// name, else the node whose underlay address it is. "" when the host is
// not known (no node filter then).
func (r *Reconciler) nodeName(ctx context.Context, host string) string {
	if host == "" || host == "unknown" {
		return ""
	}
	r.mu.Lock()
	idx := r.nodes
	r.mu.Unlock()
	if name, ok := idx.lookup(host); ok {
		return name
	}
	if r.clock.Now().Sub(idx.at) >= nodeCacheTTL {
		if err := r.refreshNodes(ctx); err == nil {
			r.mu.Lock()
			idx = r.nodes
			r.mu.Unlock()
			if name, ok := idx.lookup(host); ok {
				return name
			}
		}
	}
	return host
}

func (idx nodeIndex) lookup(host string) (string, bool) {
	if idx.byName[host] {
		return host, true
	}
	if a, err := netip.ParseAddr(host); err == nil {
		if name, ok := idx.byIP[a.Unmap().String()]; ok {
			return name, true
		}
	}
	return "", false
}

func (r *Reconciler) refreshNodes(ctx context.Context) error {
	nodes, err := r.ctrl.ListNodes(ctx)
	if err != nil {
		r.ctrlErr("list_nodes", err)
		return err
	}
	idx := nodeIndex{byName: map[string]bool{}, byIP: map[string]string{}, at: r.clock.Now()}
	for _, n := range nodes {
		idx.byName[n.Name] = true
		if a, err := netip.ParseAddr(n.UnderlayIP); err == nil {
			idx.byIP[a.Unmap().String()] = n.Name
		}
	}
	r.mu.Lock()
	r.nodes = idx
	r.mu.Unlock()
	return nil
}

// --- matching ---

// matchPorts returns the ports of inst among cands: ports already tagged
// with the task, and untagged ports on its node that hold one of its
// addresses or belong to its Mesos container. Ports tagged with another
// task are never taken.
func matchPorts(inst *instance, node string, cands []api.Port) []api.Port {
	var out []api.Port
	for _, p := range cands {
		if node != "" && p.Node != "" && p.Node != node {
			continue
		}
		if taggedFor(inst, &p) || (p.TaskID == "" && heldBy(inst, &p, node)) {
			out = append(out, p)
		}
	}
	return out
}

// heldBy tells whether an untagged port on node (the task's, "" when not
// known) belongs to inst: it holds one of the task's addresses or is of
// its Mesos container. An address alone identifies a port only on a
// known node: networks may reuse subnets.
func heldBy(inst *instance, p *api.Port, node string) bool {
	return (node != "" && sharesAddress(p, inst.Addresses)) || (inst.ContainerID != "" && p.ContainerID == inst.ContainerID)
}

// taggedFor tells whether the manager tagged p for inst: the app task id,
// or the pod instance id.
func taggedFor(inst *instance, p *api.Port) bool {
	if p.TaskID == "" {
		return false
	}
	if inst.Kind == marathon.KindPodInstance {
		return inst.InstanceID != "" && p.InstanceID == inst.InstanceID
	}
	return p.TaskID == inst.TaskID
}

func sharesAddress(p *api.Port, addrs []netip.Addr) bool {
	for _, ip := range p.IPs {
		a, err := netip.ParseAddr(ip.Address)
		if err != nil {
			continue
		}
		if slices.Contains(addrs, a.Unmap()) {
			return true
		}
	}
	return false
}

// pickAttachment chooses the managed attachment a port belongs to: the
// only one, else the one whose network is the port's, else the one whose
// networks label the port carries (the agent copies the NetworkInfo
// labels), else the first.
func pickAttachment(spec *runSpec, p *api.Port) *attachment {
	if len(spec.Managed) == 1 {
		return &spec.Managed[0]
	}
	for i := range spec.Managed {
		if spec.Managed[i].Spec.Network == p.Network {
			return &spec.Managed[i]
		}
	}
	for i := range spec.Managed {
		if v, ok := spec.Managed[i].Spec.Labels[LabelNetworks]; ok && p.Labels[LabelNetworks] == v {
			return &spec.Managed[i]
		}
	}
	return &spec.Managed[0]
}

// --- reconcile one task ---

// reconcile applies the metadata inst and spec ask for to the task's
// ports. cands are the candidate ports when listed is set; otherwise the
// node's ports are listed. Failures leave the task for a retry; bad labels
// become problems.
func (r *Reconciler) reconcile(ctx context.Context, inst *instance, spec *runSpec, cands []api.Port, listed bool) {
	n := inst.clone()
	if n.ContainerID == "" && r.containerOf != nil {
		n.ContainerID = r.containerOf(n.TaskID)
	}
	probs := labelProblems(n, spec)
	node := r.nodeName(ctx, n.Host)
	if !listed {
		ports, err := r.ctrl.ListPorts(ctx, node)
		if err != nil {
			r.ctrlErr("list_ports", err)
			r.log.Warn("list ports failed; will retry", "task", n.Key, "err", err)
			r.retryLater(n)
			r.putInst(n)
			r.setProblems(n, probs)
			return
		}
		cands = ports
	}
	matched := matchPorts(n, node, cands)
	if len(matched) == 0 {
		n.Ports, n.Synced = nil, false
		if len(n.Addresses) == 0 && n.ContainerID == "" {
			// Nothing to match by yet: the next status update (RUNNING
			// with addresses) brings it.
			n.NextRetry, n.Retries = time.Time{}, 0
		} else if n.Retries >= maxPortWaits {
			n.NextRetry = time.Time{}
			probs = append(probs, Problem{Task: n.Key, App: n.AppID, Message: fmt.Sprintf(
				"no port on node %q holds the task's addresses %v (container %q) after %d tries; the next status update or resync tries again",
				node, n.Addresses, n.ContainerID, n.Retries)})
		} else {
			// The agent writes the port in the background after the
			// attach: it may not be in the controller yet.
			r.retryLater(n)
			r.log.Debug("no port for task yet; will retry", "task", n.Key, "node", node, "addresses", n.Addresses, "retry_at", n.NextRetry)
		}
		r.putInst(n)
		r.setProblems(n, probs)
		return
	}
	var failed error
	var uuids []string
	for _, p := range matched {
		att := pickAttachment(spec, &p)
		want, checkProbs := r.desired(ctx, n, att, &p)
		probs = append(probs, checkProbs...)
		out, gone, err := r.apply(ctx, p, want)
		if err != nil {
			failed = err
			r.log.Warn("write port metadata failed", "task", n.Key, "port", p.UUID, "err", err)
			var ae *api.Error
			if errors.As(err, &ae) && errors.Is(err, api.ErrInvalid) {
				probs = append(probs, Problem{Task: n.Key, App: n.AppID, Label: labelOfField(ae.Field), Message: "the controller refused the port metadata: " + err.Error()})
			}
			continue
		}
		if gone {
			continue
		}
		uuids = append(uuids, out.UUID)
		r.notePort(&out)
		if _, ok := att.Spec.Labels[LabelFloatingIPs]; ok || len(p.FloatingIPs) > 0 {
			fprobs, err := r.syncFloatingIPs(ctx, n, att, &out)
			probs = append(probs, fprobs...)
			if err != nil {
				failed = err
			}
		}
	}
	n.Ports = uuids
	n.Synced = failed == nil
	if failed != nil {
		r.retryLater(n)
	} else {
		n.NextRetry, n.Retries = time.Time{}, 0
	}
	r.putInst(n)
	r.setProblems(n, probs)
}

// labelOfField maps a refused port field to the label behind it.
func labelOfField(field string) string {
	switch {
	case strings.HasPrefix(field, "security_groups"):
		return LabelSecurityGroups
	case strings.HasPrefix(field, "floating_ips"):
		return LabelFloatingIPs
	case strings.HasPrefix(field, "labels"):
		return "labels"
	}
	return ""
}

func (r *Reconciler) retryLater(n *instance) {
	n.Retries++
	d := time.Duration(r.cfg.RetryInterval)
	for i := 1; i < n.Retries && d < maxRetryDelay; i++ {
		d *= 2
	}
	d = min(d, maxRetryDelay)
	n.NextRetry = r.clock.Now().Add(d)
}

// labelProblems are the label errors of the spec's managed networks, as
// problems of the task.
func labelProblems(n *instance, spec *runSpec) []Problem {
	var out []Problem
	for _, a := range spec.Managed {
		for _, e := range a.Errors {
			out = append(out, Problem{Task: n.Key, App: n.AppID, Label: e.Label, Value: e.Value, Message: e.Reason})
		}
	}
	return out
}

// desired returns the function that turns a port as read into the port the
// task wants, and the problems found checking the port against the labels.
func (r *Reconciler) desired(ctx context.Context, n *instance, att *attachment, p *api.Port) (func(api.Port) api.Port, []Problem) {
	var probs []Problem
	prob := func(label, format string, args ...any) {
		probs = append(probs, Problem{Task: n.Key, App: n.AppID, Label: label, Value: att.Spec.Labels[label], Message: fmt.Sprintf(format, args...)})
	}
	spec := att.Spec
	if networkMismatch(spec, p.Network) {
		prob(LabelNetworks, "port %s is on network %s, the label asks for %s (a port cannot move; fix the label or the CNI configuration)", p.FQName, p.Network, spec.Network)
	}
	if len(spec.Subnets) > 0 {
		for _, ip := range p.IPs {
			a, err := netip.ParseAddr(ip.Address)
			if err != nil {
				continue
			}
			if !slices.ContainsFunc(spec.Subnets, func(s netip.Prefix) bool { return s.Contains(a.Unmap()) }) {
				prob(LabelNetworkSubnets, "port %s has address %s outside the subnets the label asks for", p.FQName, a)
			}
		}
	}
	var sgs []string
	if spec.HasSecurityGroups {
		sgs = []string{}
		for _, sg := range spec.SecurityGroups {
			ok, err := r.exists(ctx, api.KindSecurityGroup, sg)
			switch {
			case err != nil:
				// Unknown: keep it; the controller checks it again on write.
				sgs = append(sgs, sg)
			case ok:
				sgs = append(sgs, sg)
			default:
				prob(LabelSecurityGroups, "security group %s does not exist; the port is written without it", sg)
			}
		}
	}
	_, fipGiven := spec.Labels[LabelFloatingIPs]
	var fips []string
	for _, f := range spec.FloatingIPs {
		fips = append(fips, f.String())
	}
	agent := n.AgentID
	want := func(cur api.Port) api.Port {
		next := cur
		next.Labels = maps.Clone(cur.Labels)
		if next.Labels == nil {
			next.Labels = map[string]string{}
		}
		for _, k := range managerLabelKeys {
			delete(next.Labels, k)
		}
		maps.Copy(next.Labels, spec.Labels)
		next.Labels[LabelManagedBy] = ManagedByValue
		if n.Host != "" {
			next.Labels[LabelMarathonHost] = n.Host
		}
		if agent != "" {
			next.Labels[LabelMesosAgentID] = agent
		}
		next.AppID, next.TaskID, next.InstanceID = n.AppID, n.TaskID, n.InstanceID
		if spec.HasSecurityGroups {
			next.SecurityGroups = slices.Clone(sgs)
		}
		switch {
		case spec.HasFloatingIPs:
			next.FloatingIPs = slices.Clone(fips)
		case !fipGiven:
			next.FloatingIPs = nil
		}
		return next
	}
	return want, probs
}

// networkMismatch tells whether a port on network (an fq_name) is not on
// the network the networks label names. An absent or empty label, a uuid,
// or a name that could not be resolved is not checked; a short name
// without project labels is compared by name only, because the CNI
// configuration's project (weft.project) resolves it on the agent.
func networkMismatch(spec NetworkSpec, network string) bool {
	v := strings.TrimSpace(spec.Labels[LabelNetworks])
	if v == "" || spec.Network == "" || api.IsUUID(spec.Network) {
		return false
	}
	_, hasProject := spec.Labels[LabelProjectName]
	_, hasDomain := spec.Labels[LabelDomainName]
	if isShortName(v) && !hasProject && !hasDomain {
		return network[strings.LastIndexByte(network, ':')+1:] != v
	}
	return network != spec.Network
}

// portMetaEqual compares the fields the manager writes.
func portMetaEqual(a, b *api.Port) bool {
	return a.AppID == b.AppID && a.TaskID == b.TaskID && a.InstanceID == b.InstanceID &&
		maps.Equal(a.Labels, b.Labels) && slices.Equal(a.SecurityGroups, b.SecurityGroups) &&
		slices.Equal(a.FloatingIPs, b.FloatingIPs)
}

// apply writes want(cur) when it differs from cur, as a compare-and-swap
// on the port's resource_version; a concurrent change (the agent) makes it
// read the port again and recompute. gone tells that the port no longer
// exists.
func (r *Reconciler) apply(ctx context.Context, cur api.Port, want func(api.Port) api.Port) (out api.Port, gone bool, err error) {
	for attempt := 0; ; attempt++ {
		next := want(cur)
		if portMetaEqual(&cur, &next) {
			return cur, false, nil
		}
		next.ResourceVersion = cur.ResourceVersion
		out, err := r.ctrl.UpdatePort(ctx, next)
		if err == nil {
			r.m.portsUpdated.Inc()
			r.mu.Lock()
			r.sync.PortsUpdated++
			r.mu.Unlock()
			r.log.Info("port metadata written", "port", out.FQName, "uuid", out.UUID, "task", out.TaskID, "app", out.AppID)
			return out, false, nil
		}
		switch {
		case errors.Is(err, api.ErrNotFound):
			return api.Port{}, true, nil
		case errors.Is(err, api.ErrConflict) && attempt+1 < maxUpdateRetries:
			cur, err = r.ctrl.GetPort(ctx, cur.UUID)
			if errors.Is(err, api.ErrNotFound) {
				return api.Port{}, true, nil
			}
			if err != nil {
				r.ctrlErr("get_port", err)
				return api.Port{}, false, fmt.Errorf("read port %s again: %w", next.UUID, err)
			}
			continue
		}
		r.ctrlErr("update_port", err)
		return api.Port{}, false, fmt.Errorf("update port %s: %w", next.UUID, err)
	}
}

// exists tells whether an object exists, with a short cache.
func (r *Reconciler) exists(ctx context.Context, kind api.Kind, fq string) (bool, error) {
	key := string(kind) + "/" + fq
	now := r.clock.Now()
	r.mu.Lock()
	e, ok := r.existsCache[key]
	r.mu.Unlock()
	if ok && now.Sub(e.at) < existsCacheTTL {
		return e.ok, nil
	}
	found, err := r.ctrl.Exists(ctx, kind, fq)
	if err != nil {
		r.ctrlErr("exists", err)
		return false, err
	}
	r.mu.Lock()
	r.existsCache[key] = existsEntry{ok: found, at: now}
	r.mu.Unlock()
	return found, nil
}

// floatingIPName is the name of the i-th floating IP the manager creates
// for a port.
func floatingIPName(portUUID string, i int) string {
	return fmt.Sprintf("mesos-%s-%d", portUUID, i)
}

// syncFloatingIPs makes the manager's floating IPs of port p what the
// floating-ips label asks for: one per item, in its pool, bound to the
// port's fixed address of the same family. Missing pools are problems.
func (r *Reconciler) syncFloatingIPs(ctx context.Context, n *instance, att *attachment, p *api.Port) ([]Problem, error) {
	var probs []Problem
	want := map[string]api.FloatingIP{}
	for i, f := range att.Spec.FloatingIPs {
		ok, err := r.exists(ctx, api.KindFloatingIPPool, f.Pool)
		if err != nil {
			return probs, fmt.Errorf("check floating ip pool %s: %w", f.Pool, err)
		}
		if !ok {
			probs = append(probs, Problem{Task: n.Key, App: n.AppID, Label: LabelFloatingIPs, Value: att.Spec.Labels[LabelFloatingIPs],
				Message: fmt.Sprintf("floating ip pool %s does not exist; no floating ip is created in it", f.Pool)})
			continue
		}
		fip := api.FloatingIP{
			Meta: api.Meta{Kind: api.KindFloatingIP, Name: floatingIPName(p.UUID, i), Parent: f.Pool,
				Labels: map[string]string{LabelManagedBy: ManagedByValue, LabelFloatingIPPort: p.UUID}},
			Port: p.FQName,
		}
		fip.FQName = fip.Parent + ":" + fip.Name
		if f.Address.IsValid() {
			fip.Address = f.Address.String()
		}
		fip.FixedIP = fixedIPFor(p, f.Address)
		want[fip.FQName] = fip
	}
	have, err := r.ctrl.ListFloatingIPs(ctx)
	if err != nil {
		r.ctrlErr("list_floating_ips", err)
		return probs, err
	}
	var errs []error
	for _, h := range have {
		if h.Labels[LabelFloatingIPPort] != p.UUID || h.Labels[LabelManagedBy] != ManagedByValue {
			continue
		}
		w, ok := want[h.FQName]
		if ok && w.Address == h.Address && w.FixedIP == h.FixedIP && w.Port == h.Port {
			delete(want, h.FQName)
			continue
		}
		if err := r.ctrl.DeleteFloatingIP(ctx, h.UUID); err != nil {
			r.ctrlErr("delete_floating_ip", err)
			errs = append(errs, fmt.Errorf("delete floating ip %s: %w", h.FQName, err))
			delete(want, h.FQName)
		}
	}
	for _, fq := range sortedKeys(want) {
		if err := r.ctrl.CreateFloatingIP(ctx, want[fq]); err != nil && !errors.Is(err, api.ErrConflict) {
			r.ctrlErr("create_floating_ip", err)
			if errors.Is(err, api.ErrInvalid) {
				probs = append(probs, Problem{Task: n.Key, App: n.AppID, Label: LabelFloatingIPs, Value: att.Spec.Labels[LabelFloatingIPs],
					Message: fmt.Sprintf("floating ip %s refused: %v", fq, err)})
				continue
			}
			errs = append(errs, fmt.Errorf("create floating ip %s: %w", fq, err))
			continue
		}
		r.m.fipsCreated.Inc()
		r.log.Info("floating ip created", "floating_ip", fq, "port", p.FQName, "task", n.Key)
	}
	return probs, errors.Join(errs...)
}

// fixedIPFor is the port address a floating IP maps to: the first of the
// same family as addr, or the first when addr is not given.
func fixedIPFor(p *api.Port, addr netip.Addr) string {
	for _, ip := range p.IPs {
		a, err := netip.ParseAddr(ip.Address)
		if err != nil {
			continue
		}
		if !addr.IsValid() || a.Is4() == addr.Is4() {
			return a.String()
		}
	}
	return ""
}

// --- release ---

// release deletes the ports of inst and releases their addresses. Ports
// tagged with the task always go; untagged ports on its node that hold one
// of its addresses (or are of its container) go only when byAddress is
// set (the task is on a managed network), and only if they were created
// before notAfter (when given), so that an address given out again is not
// mistaken for the old one.
func (r *Reconciler) release(ctx context.Context, inst *instance, reason string, byAddress bool, notAfter time.Time) error {
	node := r.nodeName(ctx, inst.Host)
	ports, err := r.ctrl.ListPorts(ctx, node)
	if err != nil {
		r.ctrlErr("list_ports", err)
		return fmt.Errorf("list ports of node %q: %w", node, err)
	}
	var errs []error
	seen := map[string]bool{}
	for _, p := range ports {
		if !r.ownedBy(inst, &p, node, byAddress, notAfter) {
			continue
		}
		seen[p.UUID] = true
		if err := r.releasePort(ctx, p, reason); err != nil {
			errs = append(errs, err)
		}
	}
	// Ports matched before but not found on the node (a node renamed?):
	// release them by uuid.
	for _, uuid := range inst.Ports {
		if seen[uuid] {
			continue
		}
		p, err := r.ctrl.GetPort(ctx, uuid)
		if errors.Is(err, api.ErrNotFound) {
			continue
		}
		if err != nil {
			r.ctrlErr("get_port", err)
			errs = append(errs, fmt.Errorf("read port %s: %w", uuid, err))
			continue
		}
		if !taggedFor(inst, &p) {
			continue
		}
		if err := r.releasePort(ctx, p, reason); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (r *Reconciler) ownedBy(inst *instance, p *api.Port, node string, byAddress bool, notAfter time.Time) bool {
	if p.TaskID != "" {
		return taggedFor(inst, p)
	}
	if !byAddress {
		return false
	}
	if node != "" && p.Node != "" && p.Node != node {
		return false
	}
	if !notAfter.IsZero() && !p.CreatedAt.IsZero() && p.CreatedAt.After(notAfter) {
		return false
	}
	return heldBy(inst, p, node)
}

// ownerOf is the IPAM owner of a port's addresses, as the agent takes
// them: "<container-id>/<interface>".
func ownerOf(p *api.Port) string {
	if p.ContainerID == "" || p.Interface == "" {
		return ""
	}
	return p.ContainerID + "/" + p.Interface
}

// releasePort deletes a port (its floating IPs first) and releases its
// addresses. Everything already gone counts as done: the agent may have
// been first.
func (r *Reconciler) releasePort(ctx context.Context, p api.Port, reason string) error {
	if len(p.FloatingIPs) > 0 {
		if err := r.deleteFloatingIPsOf(ctx, p.UUID); err != nil {
			return err
		}
	}
	if err := r.ctrl.DeletePort(ctx, p.UUID); err != nil && !errors.Is(err, api.ErrNotFound) {
		r.ctrlErr("delete_port", err)
		return fmt.Errorf("delete port %s: %w", p.FQName, err)
	}
	if owner := ownerOf(&p); owner != "" {
		err := r.ctrl.Release(ctx, api.ReleaseRequest{Network: p.Network, Owner: owner})
		switch {
		case err == nil, errors.Is(err, api.ErrNotFound):
		case errors.Is(err, api.ErrInvalid):
			// The network is gone, and its reservations with it.
			r.log.Warn("release addresses of a deleted port: network is gone", "port", p.FQName, "network", p.Network, "err", err)
		default:
			r.ctrlErr("release", err)
			return fmt.Errorf("release addresses of %s (port %s): %w", owner, p.FQName, err)
		}
	} else {
		r.log.Warn("port without container id or interface: its addresses are left to the controller's garbage collection", "port", p.FQName)
	}
	r.forgetPort(p.UUID)
	r.m.portsReleased.WithLabelValues(reasonLabel(reason)).Inc()
	r.mu.Lock()
	r.sync.PortsReleased++
	r.mu.Unlock()
	ips := make([]string, 0, len(p.IPs))
	for _, ip := range p.IPs {
		ips = append(ips, ip.Address)
	}
	r.log.Info("port released", "port", p.FQName, "uuid", p.UUID, "task", p.TaskID, "app", p.AppID, "node", p.Node, "ips", ips, "reason", reason)
	return nil
}

func (r *Reconciler) deleteFloatingIPsOf(ctx context.Context, portUUID string) error {
	fips, err := r.ctrl.ListFloatingIPs(ctx)
	if err != nil {
		r.ctrlErr("list_floating_ips", err)
		return fmt.Errorf("list floating ips: %w", err)
	}
	for _, f := range fips {
		if f.Labels[LabelFloatingIPPort] != portUUID || f.Labels[LabelManagedBy] != ManagedByValue {
			continue
		}
		if err := r.ctrl.DeleteFloatingIP(ctx, f.UUID); err != nil {
			r.ctrlErr("delete_floating_ip", err)
			return fmt.Errorf("delete floating ip %s: %w", f.FQName, err)
		}
	}
	return nil
}

// reasonLabel maps a release reason to the metric label.
func reasonLabel(reason string) string {
	for _, l := range []string{"unreachable", "stale", "app_terminated", "agent_removed"} {
		if strings.HasPrefix(reason, l) {
			return l
		}
	}
	return "terminal"
}

// --- problems ---

// setProblems replaces the problems of a task with probs, logging each
// new one once.
func (r *Reconciler) setProblems(n *instance, probs []Problem) {
	now := r.clock.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	keep := map[problemKey]bool{}
	for _, p := range probs {
		k := problemKey{task: p.Task, label: p.Label, message: p.Message}
		keep[k] = true
		if cur, ok := r.problems[k]; ok {
			cur.LastSeen = now
			cur.Count++
			continue
		}
		np := p
		np.Since, np.LastSeen, np.Count = now, now, 1
		r.problems[k] = &np
		if p.Label != "" {
			r.log.Warn("bad label: ignored for this task; everything else is applied", "task", p.Task, "app", p.App, "label", p.Label, "value", p.Value, "problem", p.Message)
		} else {
			r.log.Warn("task problem", "task", p.Task, "app", p.App, "problem", p.Message)
		}
	}
	for k := range r.problems {
		if k.task == n.Key && !keep[k] {
			delete(r.problems, k)
		}
	}
	r.m.problems.Set(float64(len(r.problems)))
}

func (r *Reconciler) ctrlErr(op string, err error) {
	if err != nil && !errors.Is(err, context.Canceled) {
		r.m.controllerErr.WithLabelValues(op).Inc()
	}
}

func containsFold(s, sub string) bool {
	return strings.Contains(strings.ToLower(s), strings.ToLower(sub))
}
